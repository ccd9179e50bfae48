"""The prune holds: the guards that set them and their one owner during a run.

A service's prune is held (every archive kept, no prune, no compact) when its new archive
shrank past PRUNE_GUARD_SHRINK, was empty, rewrote most of its
files (the mass-change guard, backup), or when archives vanished since the last trusted prune
(prune-trusted). A hold stays until a person runs `release-prune`, or until the repository it
was set on is replaced. The record is state.PruneHold; `PruneHolds` is the only code that sets
or drops one in a run (release-prune removes it through StateStore.release_prune).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from management.state import PRUNE_HOLDS, ArchiveCount, PruneHold, StateStore
from management.tools.borg import Listing


def clock_wait(archive: str, newest: str | None) -> str | None:
    """Why tonight's prune waits for the clock, or None. An archive already in the repository is
    dated after tonight's (a night made it while the clock ran ahead, or this clock is behind
    now): borg prunes by date, so pruning now could drop tonight's archive as the older one of
    its day. Not a hold: nothing for a person to release, it lifts itself the first night the
    clock is past `newest`, and until then every archive is kept."""
    if newest and archive < newest:
        return (f"prune waits: {newest}, already in the repository, is dated after tonight's {archive} "
                "(made while the clock ran ahead, or this clock is behind now); every archive is kept until "
                "this machine's clock passes it: check `date` if it should have")
    return None


def prune_hold(previous: ArchiveCount | None, files: int | None, size: int | None, archive: str,
               shrink: int) -> str | None:
    """Why this service's prune must wait for a person, or None: its new archive is empty after
    a non-empty one, or has `shrink` percent fewer bytes or files than the previous one.
    `previous` is what the last night recorded (its ArchiveCount: files, bytes)."""
    if shrink == 0:
        return None
    if not previous:
        return None
    before_files, before_bytes = previous.files or 0, previous.bytes or 0
    if before_files and files == 0:
        return f"{archive} is empty; the one before held {before_files} files"
    for what, before, now in (("files", before_files, files), ("bytes", before_bytes, size)):
        if before and now is not None and now < before * (100 - shrink) / 100:
            return (f"{archive} holds {now} {what}, {100 - now * 100 // before}% fewer than the {before} before it "
                    f"(PRUNE_GUARD_SHRINK={shrink})")
    return None


def stale_hold(hold: PruneHold, listing: Listing | None) -> str | None:
    """Why a prune hold no longer applies, or None: it was set on a repository that has since been
    replaced (another id), or the archive it names is no longer in the repository's listing. Such
    a hold would name a missing archive and fail every night until release-prune."""
    if listing is None:
        return None  # the repository was not listed: nothing is known against the hold
    if hold.repository and listing.repository and hold.repository != listing.repository:
        return (f"it was set on repository {hold.repository}, and the repository is now {listing.repository} "
                "(replaced)")
    if hold.archive and hold.archive not in listing.archives:
        return f"the archive it names, {hold.archive}, is no longer in the repository"
    return None


def vanished(recorded: Sequence[str], present: Sequence[str]) -> str | None:
    """Why a trusted prune must wait: archives the last trusted prune left in the repository are
    gone (deleted through another key: a compromised VM's append-only deletes can still be rolled
    back, and this run's compact would make them final). None when every one is still there."""
    gone = [a for a in recorded if a not in set(present)]
    if not gone:
        return None
    shown = ", ".join(gone[:3]) + (f" and {len(gone) - 3} more" if len(gone) > 3 else "")
    return (f"{len(gone)} archive(s) the last trusted prune kept are gone ({shown}): deleted through another key? "
            "Roll the repository back (docs/security.md) before anything compacts it")


class PruneHolds:
    """The prune holds as one run reads and changes them: read once, changed in memory, saved once."""

    def __init__(self, state: StateStore):
        self.state = state
        self.records = state.prune_holds()
        # cut short: a hold it held is unknown, so every prune waits, and nothing overwrites it
        self.unreadable = state.unreadable(PRUNE_HOLDS)

    def wait(self) -> str | None:
        """Why every prune waits tonight, with no hold recorded: the holds cannot be read."""
        if not self.unreadable:
            return None
        return (f"prune waits: {self.state.path(PRUNE_HOLDS)} does not parse, so a hold it held is unknown; "
                "put it back from a copy of STATE_DIR, or remove it to lift every hold")

    def reason(self, service: str) -> str | None:
        """Why the service's prune is held already (it stays held, and says so, until released)."""
        hold = self.records.get(service)
        return hold.reason if hold else None

    def drop_stale(self, listings: Mapping[str, Listing]) -> dict[str, str]:
        """Drop the holds set on a repository since replaced, or naming an archive it no longer
        holds (stale_hold); returns service -> why each was dropped."""
        stale = {svc: why for svc, hold in self.records.items() if (why := stale_hold(hold, listings.get(svc)))}
        for service in stale:
            del self.records[service]
        return stale

    def hold(self, service: str, new: PruneHold) -> PruneHold:
        """Hold the service's prune with `new`, unless it is held already: the first reason stays
        until release-prune, and so does the first mass change's version before. Returns the hold."""
        hold = self.records.setdefault(service, new)
        if hold is not new and hold.mass_change is None and new.mass_change is not None:
            hold.mass_change = new.mass_change
        return hold

    def save(self) -> None:
        if not self.unreadable:
            self.state.save_prune_holds(self.records)
