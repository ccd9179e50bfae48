"""The backup night's pure parts: names, orders, the mass-change arithmetic, small records."""

from __future__ import annotations

import time
from collections.abc import Sequence

from management.cycles.history import SAFETY_PREFIX, SNAPSHOT_TIME
from management.state import Night, RepositoryRecord
from management.tools.borg import STACK_PREFIX, Listing


def snapshot_name(prefix: str, now: float) -> str:
    """`<prefix>-YYYYmmddTHHMMSSZ`: sortable, unique per second, and marks the snapshot as ours."""
    return f"{prefix}-{time.strftime(SNAPSHOT_TIME, time.gmtime(now))}"


def stop_order(stacks: Sequence[str], hub: str) -> list[str]:
    """Hub last: it keeps serving (error pages) until every spoke is down."""
    return [s for s in stacks if s != hub] + ([hub] if hub in stacks else [])


def start_order(stacks: Sequence[str], hub: str) -> list[str]:
    """Hub first."""
    return ([hub] if hub in stacks else []) + [s for s in stacks if s != hub]


# What happens to the data of a stack that could not be stopped: the one atomic snapshot still
# covers it (docs/backup.md), as a power cut would have caught it.
CRASH_CONSISTENT = "its dataset is in the snapshot as it was while running (crash-consistent)"


SKIP_STACK = frozenset({STACK_PREFIX})  # the data's change digest leaves the stack copy out


PREFLIGHT_PARALLEL = 4  # repositories probed at once before the window (ssh round trips)


def night_changes(added: int | None, modified: int | None, nfiles: int | None, stack_files: int,
                  before_files: int | None, written: int | None) -> dict | None:
    """What changed in a service's data against its archive before, from what borg create said
    (no file is read again): files `added` and `modified` (its per-file A and M lines, the stack
    folder's copy left out), `files` in the data now (the archive's nfiles less the stack folder's
    `stack_files`), `deleted` = the files before + added - the files now (None when the archive
    before is not known), and `bytes`: what the archive added to the repository. None when borg
    said nothing of it (a dry run)."""
    if added is None or modified is None or nfiles is None:
        return None
    files = max(0, nfiles - stack_files)
    deleted = None if before_files is None else max(0, before_files + added - files)
    return {"added": added, "modified": modified, "deleted": deleted, "files": files, "bytes": written}


def change_baseline(nights: Sequence[Night]) -> tuple[int | None, list[int]]:
    """From a service's recorded nights (StateStore.nights, oldest first): the data's files in the
    last archive (None when that night recorded no changes), and the modified + deleted files of
    every night that recorded them, those the guard held and those after a restore left out (a
    change released as meant, or a restore's rewrite, does not raise the bar for the next)."""
    before = None
    for night in reversed(nights):
        if night.files is not None:  # the last night that made (or kept) an archive
            before = night.changed.files if night.changed else None
            break
    past = [n.changed.touched for n in nights if n.changed and not n.changed.held and not n.changed.restored]
    return before, past


def mass_change(changed: dict, before_files: int | None, past: Sequence[int], *, percent: int, factor: int,
                floor: int) -> str | None:
    """Why a night's changes look like ransomware or a runaway app, or None: its modified +
    deleted files are `floor` or more, and over `percent` percent of the files the archive before
    held, or over `factor` times the most of `past` (the last nights'; never less than `floor`).
    0 turns a rule off."""
    modified, deleted = int(changed.get("modified") or 0), int(changed.get("deleted") or 0)
    touched = modified + deleted
    if touched < max(1, floor):
        return None
    if percent and before_files and touched * 100 > percent * before_files:
        rule = f"over {percent}% of its files"
    elif factor and past and touched > factor * max(max(past), floor):
        rule = f"over {factor} times the most of its last {len(past)} night(s), {max(past):,}"
    else:
        return None
    of = f" of {before_files:,}" if before_files else ""
    words = [f"{modified:,}{of} files modified"] + ([f"{deleted:,} deleted"] if deleted else []) + \
        ([f"{int(changed['added']):,} added"] if changed.get("added") else [])
    return f"mass change: {', '.join(words)} ({rule})"


def restored_since(snapshots: Sequence, since: float | None) -> str | None:
    """The newest `restore-safety-*` snapshot (of one dataset) made after `since`, the service's
    last night, or None. A restore, whole or of a path, gives every file it brings back a new
    inode and ctime: borg's next night lists each as modified (measured: 63 of 63 files after a
    `restore`), though no byte of their content is new. That night is not weighed by the guard."""
    if since is None:
        return None
    made = [s for s in snapshots if s.snap.startswith(SAFETY_PREFIX + "-") and s.creation >= int(since)]
    return made[-1].snap if made else None


APPEND_ONLY_NOTE = ("prune/compact left to the trusted machine (BORG_APPEND_ONLY=1): "
                    "`make prune-trusted` there, with the full-access key")


def listing_record(fingerprint: str, listing: Listing) -> RepositoryRecord:
    """What the state keeps of a repository (StateStore.repositories): its fingerprint and what
    borg said it held at that fingerprint."""
    return RepositoryRecord(fingerprint, listing.repository, tuple(listing.archives))


def compact_due(last: float | None, every_days: int, now: float) -> bool:
    return every_days == 0 or last is None or now - last >= every_days * 86400 - 3600


UNKNOWN = object()  # a question ZFS cannot answer on this pool (zfs-fuse has no `written`)
