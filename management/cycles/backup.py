"""BackupOrchestrator: the nightly cycle.

    lock -> preflight -> stop stacks (hub last) -> ONE recursive atomic snapshot
    -> start stacks (hub first) -> per dataset: read-only view at a stable path,
    borg create, prune, compact when due, remove the view -> destroy the snapshot -> report

Promises (each has a test):
- a failed preflight stops nothing;
- stacks that were running are started again on every way out of the stop window
  (error, SIGINT, SIGTERM); stacks that were stopped before stay stopped;
- one dataset's failure does not stop the others; views and the snapshot are removed anyway;
- only snapshots with the tool's prefix and views under VIEW_DATASET are ever destroyed.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from management.cycles.context import Cycle, RunContext
from management.cycles.history import SAFETY_PREFIX, History, consistency_of
from management.errors import OrchestratorError, ValidationError, brief
from management.lock import Interrupted, RunLock, SignalGuard
from management.monitoring.notify import notify, trusted_prune_message
from management.monitoring.publish import BackupOutcome, publish, push
from management.results import FAILED, OK, SKIPPED, UNCHANGED, WARNING, DatasetResult, RunReport
from management.stacks.compose_file import LIVE, ChangeLimit, Policy, mass_change_limit, policy_of
from management.stacks.coverage import problems
from management.stacks.trees import stack_manifest, tree_manifest
from management.state import HistoryPoint, Kept
from management.tools.borg import STACK_PREFIX, Listing
from management.tools.files import Files

log = logging.getLogger("orchestrator.backup")


def snapshot_name(prefix: str, now: float) -> str:
    """`<prefix>-YYYYmmddTHHMMSSZ`: sortable, unique per second, and marks the snapshot as ours."""
    return f"{prefix}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(now))}"


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


def prune_hold(previous: dict | None, files: int | None, size: int | None, archive: str,
               newest: str | None, shrink: int) -> str | None:
    """Why this service's prune must wait for a person, or None: its new archive is empty after
    a non-empty one, has `shrink` percent fewer bytes or files than the previous one, or is
    older than the newest archive already there (a wrong clock). `previous` is what the last
    night recorded ({files, bytes}); `newest` the newest archive name in the repository."""
    if shrink == 0:
        return None
    if newest and archive < newest:
        return f"{archive} is older than {newest}, already in the repository: is the clock wrong?"
    if not previous:
        return None
    before_files, before_bytes = previous.get("files") or 0, previous.get("bytes") or 0
    if before_files and files == 0:
        return f"{archive} is empty; the one before held {before_files} files"
    for what, before, now in (("files", before_files, files), ("bytes", before_bytes, size)):
        if before and now is not None and now < before * (100 - shrink) / 100:
            return (f"{archive} holds {now} {what}, {100 - now * 100 // before}% fewer than the {before} before it "
                    f"(PRUNE_GUARD_SHRINK={shrink})")
    return None


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


def change_baseline(nights: Sequence[dict]) -> tuple[int | None, list[int]]:
    """From a service's recorded nights (StateStore.nights, oldest first): the data's files in the
    last archive (None when that night recorded no changes), and the modified + deleted files of
    every night that recorded them, those the guard held and those after a restore left out (a
    change released as meant, or a restore's rewrite, does not raise the bar for the next)."""
    before = None
    for night in reversed(nights):
        if night.get("files") is not None:  # the last night that made (or kept) an archive
            changed = night.get("changed")
            before = changed.get("files") if isinstance(changed, dict) else None
            break
    past = [int(c.get("modified") or 0) + int(c.get("deleted") or 0) for n in nights
            if isinstance(c := n.get("changed"), dict) and not c.get("held") and not c.get("restored")]
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


def stale_hold(hold: dict, listing: Listing | None) -> str | None:
    """Why a prune hold no longer applies, or None: it was set on a repository that has since been
    replaced (another id), or the archive it names is no longer in the repository's listing. Such
    a hold would name a missing archive and fail every night until release-prune."""
    if listing is None:
        return None  # the repository was not listed: nothing is known against the hold
    if hold.get("repository") and listing.repository and hold["repository"] != listing.repository:
        return (f"it was set on repository {hold['repository']}, and the repository is now {listing.repository} "
                "(replaced)")
    if hold.get("archive") and hold["archive"] not in listing.archives:
        return f"the archive it names, {hold['archive']}, is no longer in the repository"
    return None


APPEND_ONLY_NOTE = ("prune/compact left to the trusted machine (BORG_APPEND_ONLY=1): "
                    "`make prune-trusted` there, with the full-access key")


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


def listing_record(fingerprint: str, listing: Listing) -> dict:
    """What the state keeps of a repository (StateStore.repositories): its fingerprint and what
    borg said it held at that fingerprint."""
    return {"fingerprint": fingerprint, "repository": listing.repository, "archives": list(listing.archives)}


def compact_due(last: float | None, every_days: int, now: float) -> bool:
    return every_days == 0 or last is None or now - last >= every_days * 86400 - 3600


UNKNOWN = object()  # a question ZFS cannot answer on this pool (zfs-fuse has no `written`)


class BackupOrchestrator(Cycle):
    def __init__(self, ctx: RunContext):
        super().__init__(ctx)
        self._snap_time = 0.0  # when tonight's snapshot was taken (for 1-second timestamps)
        self._written_supported: bool | None = None
        self._staged: dict[str, Path | str] = {}  # service -> its stack folder's copy, or why there is none
        self._listed: dict[str, str | None] = {}  # service -> its repository's fingerprint when borg listed it
        self._records: dict[str, dict] = {}  # service -> what its repository holds, for the next night
        self.history = History(ctx)

    # -- helpers --------------------------------------------------------------------------

    def _targets(self, services: Sequence[str] | None) -> list[str]:
        if not services:
            return list(self.s.services)
        unknown = [s for s in services if s not in self.s.services]
        if unknown:
            raise ValidationError(
                f"unknown service(s) {', '.join(map(repr, unknown))}; known: {', '.join(self.s.services)}"
            )
        return list(services)

    def _view_path(self, service: str) -> Path:
        return self.s.view_mountpoint / service

    def _view_dataset(self, service: str) -> str:
        return f"{self.s.view_dataset}/{service}"

    def _stack_dir(self, service: str) -> Path | None:
        """The service's stack folder under SERVICES_DIR, when there is one (a symlinked folder is
        followed: its contents are what compose reads)."""
        path = self.s.services_dir / service
        return path if path.is_dir() else None

    def _key(self) -> bytes:
        return self.state.manifest_key()

    def _add_stack(self, service: str, stack_dir: Path, view: str) -> dict[str, str]:
        """Copy the stack folder into the view under STACK_PREFIX (owners, modes, links and times
        kept), make the view read-only, and return the manifest of what borg will read."""
        target = self._view_path(service) / STACK_PREFIX
        if os.path.lexists(target):
            raise ValidationError(f"{self.s.dataset(service)} has {STACK_PREFIX} at its root, a name this tool "
                                  "keeps for the stack folder in the archive; rename it")
        Files(self.runner).copy_tree(stack_dir, target)
        self.zfs.set_readonly(view)
        return stack_manifest(target, self._key())

    def _staging(self, snap: str) -> Path:
        return self.state.stack_copies() / snap

    def _stage_stacks(self, targets: list[str], snap: str) -> None:
        """Copy each stack folder while its stack is stopped (or, for a live stack, right before
        the snapshot), so the archive holds the folder as it was at the snapshot: a database in
        a `./relative` bind is copied whole, not torn. Its cost is part of the window: one `cp`
        for every folder; only when that fails is each copied alone, to name the one that fails."""
        root = self._staging(snap)
        folders = {service: folder for service in targets if (folder := self._stack_dir(service)) is not None}
        if not folders:
            return
        try:
            root.mkdir(parents=True, exist_ok=True)
            Files(self.runner).copy_trees(list(folders.values()), root)
            self._staged.update({service: root / folder.name for service, folder in folders.items()})
            return
        except (OrchestratorError, OSError):
            pass
        for service, folder in folders.items():
            target = root / folder.name
            try:
                if target.exists():
                    self._remove_tree(target)
                Files(self.runner).copy_trees([folder], root)
                self._staged[service] = target
            except (OrchestratorError, OSError) as exc:
                self._staged[service] = f"copying the stack folder {folder} failed: " + (
                    brief(exc) if isinstance(exc, OrchestratorError) else str(exc))

    def _unstage(self, snap: str, report: RunReport) -> None:
        root = self._staging(snap)
        if root.exists():
            try:
                self._remove_tree(root)
            except OrchestratorError as exc:
                report.errors.append(f"cleanup: stack folder copies in {root}: {brief(exc)}")

    def _remove_tree(self, path: Path) -> None:
        Files(self.runner).remove_tree(path)

    # -- the last backed-up snapshot of each dataset (KEEP_LAST_SNAPSHOT) ------------------

    def kept(self) -> dict[str, Kept]:
        return self.state.kept()

    def cleanup_leftovers(self) -> list[str]:
        """Remove views and prefixed snapshots a killed run left behind. Only ours, and never
        the kept last snapshot of a dataset."""
        removed: list[str] = []
        for view in self.zfs.list_views(self.s.view_dataset):
            self.zfs.destroy_view(view)
            removed.append(view)
        staging = self.state.stack_copies()
        for left in sorted(staging.glob(f"{self.s.snapshot_prefix}-*")) if staging.is_dir() else []:
            self._remove_tree(left)
            removed.append(str(left))
        # the kept snapshots, the versions before a mass change, and the local history (thinned
        # after a night, by SNAPSHOT_RETENTION)
        keep = self.history.protected() | self.history.all_snapshots()
        ours = [snap for snap in self.zfs.list_snapshots(self.s.zfs_parent_dataset)
                if snap.partition("@")[2].startswith(self.s.snapshot_prefix + "-") and snap not in keep]
        if keep:  # one by one: a recursive destroy would take a kept namesake below with it
            for snap in ours:
                self.zfs.destroy_ours(snap, prefix=self.s.snapshot_prefix)
                removed.append(snap)
            return removed
        # Shallowest first: a recursive destroy of parent@name also removes child@name, and
        # children snapshotted alone (backup-one) carry the prefix too.
        done: list[tuple[str, str]] = []
        for dataset, name in sorted((s.partition("@")[::2] for s in ours), key=lambda dn: dn[0].count("/")):
            if any(n == name and (dataset == d or dataset.startswith(d + "/")) for d, n in done):
                continue
            self.zfs.destroy_recursive_snapshot(dataset, name, prefix=self.s.snapshot_prefix)
            done.append((dataset, name))
            removed.append(f"{dataset}@{name}")
        if not self.s.keep_last_snapshot:
            self.state.forget_kept()
        return removed

    def preflight(self, targets: Sequence[str]) -> tuple[list[str], dict[str, str]]:
        """Everything that must hold before any downtime. Changes nothing on the services (it
        may initialise a missing borg repository).

        Returns (blocking, per_service): a blocking problem (a dataset not mounted: the stacks
        would write to the OS disk) stops the whole run before anything is stopped; a
        repository that cannot be used fails only its own service, the others go on. A stack
        folder that SERVICE_VOLUME_PATHS_AND_OWNERS does not name gets its dataset here."""
        blocking: list[str] = []
        mounted = self.zfs.mounted_below(self.s.zfs_parent_dataset)  # one question for every dataset
        for service in targets:
            dataset = self.s.dataset(service)
            if service not in self.s.listed_services and dataset not in mounted and not self.zfs.exists(dataset):
                # a stack folder no listed path names: its stack keeps nothing on the dataset yet,
                # but its folder is backed up like any other, so it gets the dataset now
                self.echo(f"{service}: a stack folder without a dataset; creating {dataset}")
                self.zfs.create_dataset(dataset)
                if self.zfs.is_mounted(dataset):
                    mounted.add(dataset)
            if dataset not in mounted:
                blocking.append(f"{service}: dataset {dataset} is not mounted (or does not exist); "
                                "run `make setup-storage` or `zfs mount` it")
        if blocking:
            return blocking, {}
        records = self.state.repositories()

        def probe(service: str) -> str | None:
            mount = self.s.mount_dir / service
            if os.path.ismount(mount):  # borg mount holds the repository's lock: create would fail later
                return (f"its repository is mounted at {mount} (`make mount`) and borg cannot write to it while "
                        f"it is: `make umount SERVICE_NAME={service}`, then `make backup-one SERVICE_NAME={service}`")
            if self._listing_from_record(service, records.get(service)):
                return None
            try:
                self._listed[service] = self.borg.fingerprint(service)  # before the listing: never newer
                self.borg.init_repo(service)
            except OrchestratorError as exc:
                return f"repository {self.s.repo(service)} is not usable: {brief(exc)}"
            return None

        # one `borg list --json` (an ssh round trip each) per repository: ask them all at once
        workers = max(1, min(len(targets), PREFLIGHT_PARALLEL))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="preflight") as pool:
            problems = dict(zip(targets, pool.map(probe, targets), strict=True))
        return blocking, {svc: msg for svc, msg in problems.items() if msg}

    def _listing_from_record(self, service: str, record: dict | None) -> bool:
        """A local repository no one wrote to since this tool recorded it (its fingerprint, the
        id and last transaction read from its files, is the same): it holds what the record
        says, so borg is not asked. Nothing is asked of borg for a dataset that will not run,
        nor, on the first night, for a repository `init-repos` made or listed. A remote
        repository, or any change (another machine's prune, a rollback, a repository put in
        its place), is listed by borg as before."""
        fingerprint = (record or {}).get("fingerprint")
        if not fingerprint or self.borg.fingerprint(service) != fingerprint:
            return False
        self.borg.listings[service] = Listing(str(record.get("repository") or ""),
                                              tuple(str(a) for a in record.get("archives") or ()))
        return True

    def _listing_records(self, wrote: Sequence[str]) -> dict[str, dict]:
        """What to remember of each repository for the next night: for those borg wrote tonight
        (`wrote`), the fingerprint now and the listing as create and prune left it; for those
        only listed, the fingerprint taken before the listing. None where either is unknown."""
        records = {}
        for service, listing in self.borg.listings.items():
            fingerprint = self.borg.fingerprint(service) if service in wrote else self._listed.get(service)
            if fingerprint:
                records[service] = listing_record(fingerprint, listing)
        return records

    def _remember(self, records: dict[str, dict]) -> None:
        """Add `records` to what is known of the repositories (the others' records stay)."""
        known = self.state.repositories()
        known.update(records)
        self.state.save_repositories(known)

    def init_repo(self, service: str) -> bool:
        """`init-repos` for one service: borg creates the repository unless it exists (True when
        it did; an existing one is listed, which proves our passphrase opens it), and what it
        holds is recorded with its fingerprint, so the first night need not list it again."""
        before = self.borg.fingerprint(service)  # before the listing: never newer
        created = self.borg.init_repo(service)
        fingerprint = self.borg.fingerprint(service) if created else before
        listing = self.borg.listings.get(service)
        if fingerprint and listing is not None and not self.runner.dry_run:
            self._remember({service: listing_record(fingerprint, listing)})
        return created

    # -- the cycle ------------------------------------------------------------------------

    def backup(self, services: Sequence[str] | None = None) -> RunReport:
        targets = self._targets(services)
        report = RunReport(started_at=self.clock())
        with RunLock(self.s.lock_file, "backup"), SignalGuard() as guard:
            warning = push(self.s.push_url, "start")
            if warning:
                self.echo(f"warning: {warning}")
            try:
                self._cycle(targets, report, guard)
            except Interrupted as exc:
                report.interrupted = str(exc)
            finally:
                report.finished_at = self.clock()
                self._publish(report)
        return report

    def _cycle(self, targets: list[str], report: RunReport, guard: SignalGuard) -> None:
        report.datasets = [DatasetResult(s) for s in targets]
        leftovers = self.cleanup_leftovers()
        if leftovers:
            self.echo(f"removed leftovers of an earlier run: {', '.join(leftovers)}")
        blocking, repo_problems = self.preflight(targets)
        if blocking:
            report.errors.extend(f"preflight: {p}" for p in blocking)
            for d in report.datasets:
                d.message = "preflight failed; nothing was stopped"
            return
        for d in report.datasets:
            if d.service in repo_problems:
                d.result, d.message = FAILED, repo_problems[d.service]
                self.echo(f"{d.service}: {d.message}")
        self._coverage(targets, report)
        usable = [t for t in targets if t not in repo_problems]
        if not usable:
            report.errors.append("preflight: no repository is usable; nothing was stopped")
            return
        backup_all = list(targets) == list(self.s.services)
        snap_root = self.s.zfs_parent_dataset if backup_all else None
        snap = snapshot_name(self.s.snapshot_prefix, self.clock())
        snapshotted: list[str] = []  # datasets holding our snapshot, for cleanup
        new_kept: dict[str, dict] = {}  # services whose new snapshot stays (their backup succeeded)
        try:
            self._window(targets, snap, snap_root, report, guard, snapshotted)
            if report.errors or not snapshotted:
                return  # no borg without a complete snapshot
            self._borg_phase(usable, snap, report, new_kept)
        finally:
            with guard.critical():
                self._cleanup(targets, snap, snapshotted, report, new_kept)

    def _coverage(self, targets: list[str], report: RunReport) -> None:
        """Data the stacks keep where no backup reaches (a docker volume, a writable bind elsewhere
        on the host, or in the folder of a live stack, copied while it runs): named in the report,
        which is then not OK. A writable bind in a stopped stack's folder is not: the folder's copy
        below holds it whole.
        compose's models are read here, outside the downtime window, and kept for it."""
        names = [n for n in self.docker.discover_names() if n in targets]
        for stack, coverage in self.docker.coverage(names).items():
            bad = problems(coverage)
            if bad:
                report.uncovered[stack] = [c.line().split(": ", 1)[1] for c in bad]
                self.echo(f"{stack}: {len(bad)} mount(s) not backed up (make check-stacks shows each with its fix)")

    def _window(self, targets, snap, snap_root, report, guard, snapshotted) -> None:
        """Stop -> snapshot -> start, all of it with SIGINT/SIGTERM held back.

        Stacks whose compose file says `x-orchestrator: {consistency: live}` are not stopped:
        their before-snapshot commands run right before the snapshot; one that fails stops its
        stack for this night instead (never a skipped snapshot). The window lasts seconds. A
        signal arriving inside it skips the snapshot if it has not been taken yet, the stacks
        are started again, and only then is the signal raised. An error takes the same way
        out. So no signal can leave services down.
        """
        hub = self.s.hub_service
        with guard.critical():
            stacks = self.docker.discover_names()
            wanted = stacks if snap_root else [s for s in stacks if s in targets]
            running = set(self.docker.running_stacks())
            # compose's model of each stack, read now: outside the downtime window
            models = {st.name: st for st in self.docker.stacks([s for s in wanted if s in running])}
            live: dict[str, Policy] = {}
            for name, st in models.items():
                if st.error:
                    report.stack_failures.append(f"{name}: not stopped, compose cannot read it ({st.file}: "
                                                 f"{st.error}); {CRASH_CONSISTENT}")
                    continue
                policy, problems = policy_of(st)
                for problem in problems:
                    report.notes.append(f"{name}: {problem} ({st.file}); stopped for the snapshot")
                if policy.consistency == LIVE:
                    live[name] = policy
            to_stop = stop_order([s for s in wanted if s in running and s not in live and not models[s].error], hub)
            skipped = [s for s in wanted if s not in running]
            if skipped:
                self.echo(f"not running, left stopped: {', '.join(skipped)}")
            stopped_at: dict[str, float] = {}
            t0 = time.monotonic()
            try:
                self.echo(f"stopping {len(to_stop)} stack(s): {', '.join(to_stop) or '-'}")
                self._stop(to_stop, report, stopped_at)
                if guard.pending:
                    self.echo("interrupted while stopping: no snapshot, starting stacks again")
                    return
                fallback = self._before_snapshot(live, models, report)
                if fallback:
                    self.echo(f"stopping {', '.join(fallback)} instead (a before-snapshot command failed)")
                    to_stop += fallback
                    self._stop(fallback, report, stopped_at)
                report.live_stacks = [s for s in live if s not in fallback]
                if guard.pending:
                    self.echo("interrupted before the snapshot: no snapshot, starting stacks again")
                    return
                self._stage_stacks(targets, snap)
                self.echo(f"snapshot {snap}")
                self._snap_time = self.clock()
                for dataset in [snap_root] if snap_root else [self.s.dataset(t) for t in targets]:
                    self.zfs.snapshot(dataset, snap, recursive=True)
                    snapshotted.append(dataset)
                report.snapshot = ", ".join(f"{d}@{snap}" for d in snapshotted)
            except OrchestratorError as exc:
                report.errors.append(f"snapshot: {exc}")
            finally:
                order = start_order(to_stop, hub)
                if order:
                    self.echo(f"starting {len(order)} stack(s): {', '.join(order)}")
                    for result in self.docker.start(order):
                        if result.ok:
                            report.restarted_stacks.append(result.stack)
                        else:
                            report.stack_failures.append(f"{result.stack}: start failed: {result.message}")
                        if result.stack in stopped_at:  # stop issued .. healthy again, for this stack
                            downtime = result.finished_at - stopped_at[result.stack]
                            report.stack_downtime[result.stack] = round(downtime, 3)
                for name in report.live_stacks:
                    report.stack_downtime[name] = 0.0
                report.stopped_stacks = list(to_stop)
                report.downtime = time.monotonic() - t0 if to_stop else None
                if report.downtime is not None:
                    self.echo(f"downtime: {report.downtime:.1f}s")

    def _stop(self, names: list[str], report: RunReport, stopped_at: dict[str, float]) -> None:
        for result in self.docker.stop(names):
            stopped_at[result.stack] = result.started_at
            if not result.ok:
                report.stack_failures.append(f"{result.stack}: stop failed: {result.message}; {CRASH_CONSISTENT}")

    def _before_snapshot(self, live: dict[str, Policy], models: dict, report: RunReport) -> list[str]:
        """Each live stack's before-snapshot commands, in order (stacks in parallel), each bounded
        by HOOK_TIMEOUT, output logged masked. Returns the stacks whose command failed: they are
        stopped for this night's snapshot, and the report says so."""
        def run(name: str) -> str | None:
            for hook in live[name].before_snapshot:
                try:
                    out = self.docker.run_hook(models[name], hook.service, hook.command, self.s.hook_timeout)
                    log.info("%s: before-snapshot in %s: %s", name, hook.service, self.runner.mask(out.strip()))
                except OrchestratorError as exc:
                    return f"{name}: before-snapshot {' '.join(hook.command)!r} in {hook.service} failed " \
                           f"({brief(exc)}); stopped for the snapshot instead (stop mode this night)"
            return None

        if not live:
            return []
        with ThreadPoolExecutor(max_workers=max(1, min(len(live), self.s.compose_parallel)),
                                thread_name_prefix="hook") as pool:
            outcomes = dict(zip(live, pool.map(run, list(live)), strict=True))
        failed = [name for name, why in outcomes.items() if why]
        for name in failed:
            self.echo(outcomes[name])
            report.notes.append(self.runner.mask(outcomes[name]))
        return stop_order(failed, self.s.hub_service)

    def _archive_gone(self, service: str, last: Kept) -> str | None:
        """Why the archive that held the dataset cannot be trusted to any more (the repository was
        replaced, emptied, rolled back or moved), or None. The tool believes the repository, not
        its own memory: the preflight listed what the repository holds."""
        listing = self.borg.listings.get(service)
        if listing is None:
            return None  # not listed (a dry run): nothing known either way
        archive = last.get("archive", "")
        recorded = last.get("repository")
        if recorded and listing.repository and recorded != listing.repository:
            return (f"{self.s.repo(service)} is not the repository that held {archive} (its id changed: replaced "
                    "or moved): a full backup tonight")
        if archive and archive not in listing.archives:
            return (f"{archive}, which held it, is not in {self.s.repo(service)} any more (emptied, rolled back "
                    "or pointed elsewhere): a full backup tonight")
        return None

    def _unchanged_by_zfs(self, service: str, last: dict, snap: str) -> str | None | object:
        """Why the dataset holds exactly what its last archive holds, asked of ZFS alone (no view):
        OpenZFS's `written@` of the kept snapshot is 0. None when something was written or the
        kept snapshot is gone; UNKNOWN where the pool has no `written` (zfs-fuse): then only the
        view's manifest can tell (`_unchanged_by_walk`)."""
        dataset = self.s.dataset(service)
        if not self.zfs.exists(f"{dataset}@{last['snapshot']}"):
            return None
        if self._written_supported is False:
            return UNKNOWN
        written = self.zfs.written_since(f"{dataset}@{snap}", last["snapshot"])
        self._written_supported = written is not None
        if written is None:
            return UNKNOWN
        return f"nothing written since {last['snapshot']}" if written == 0 else None

    def _unchanged_by_walk(self, service: str, last: dict) -> str | None:
        """zfs-fuse: the view's manifest equals the one recorded when that archive was made (and
        was settled)."""
        if not last.get("manifest"):
            return None
        manifest, settled = tree_manifest(self._view_path(service), self._snap_time, SKIP_STACK)
        return f"no file changed since {last['snapshot']}" if settled and manifest == last["manifest"] else None

    def _has_written(self, service: str, snap: str) -> bool:
        """Whether this pool knows `written@` (OpenZFS) or not (zfs-fuse): asked once per run."""
        if self._written_supported is None:
            self._written_supported = self.zfs.written_since(f"{self.s.dataset(service)}@{snap}", snap) is not None
        return self._written_supported

    def _change_limits(self, targets: list[str], report: RunReport) -> dict[str, ChangeLimit]:
        """Each target stack's declared mass-change limit (`x-orchestrator: {mass-change: ...}`),
        from the compose models the run read already; a declaration with a problem is noted and
        the default limit applies."""
        try:
            names = [n for n in self.docker.discover_names() if n in targets]
            models = self.docker.stacks(names) if names else []
        except OrchestratorError:
            return {}
        limits = {}
        for st in models:
            if st.error:
                continue
            limit, problems = mass_change_limit(st.extensions)
            for problem in problems:
                report.notes.append(f"{st.name}: {problem} ({st.file}); CHANGE_GUARD_PERCENT applies")
            if limit:
                limits[st.name] = limit
        return limits

    def _mass_change(self, d: DatasetResult, before_files: int | None, past: list[int],
                     limit: ChangeLimit | None, last_night: float | None) -> str | None:
        """Why tonight's changes of `d` trip the mass-change guard, or None. A night that would
        trip is looked at once more (only then: one zfs call): after a restore it is not weighed."""
        if not d.changed or (limit is not None and limit.percent is None):
            return None
        why = mass_change(d.changed, before_files, past,
                          percent=limit.percent if limit else self.s.change_guard_percent,
                          factor=self.s.change_guard_factor, floor=self.s.change_guard_min_files)
        if why and (safety := restored_since(self.zfs.snapshots(self.s.dataset(d.service)), last_night)):
            note = (f"not weighed by the mass-change guard: restored since the last night ({safety}), and borg "
                    f"lists every file a restore brought back as modified ({why.removeprefix('mass change: ')})")
            d.message = "; ".join(m for m in (d.message, note) if m)
            d.changed["restored"] = True  # nor does it raise the bar for the nights after (change_baseline)
            self.echo(f"{d.service}: {note}")
            return None
        return f"{why}; declared limit {limit.percent}%: {limit.reason}" if why and limit else why

    def _newest_point(self, service: str, tonight: str) -> str | None:
        """The newest local history snapshot of `service` before tonight's, or None."""
        names = [p["snapshot"] for p in self.state.history().get(service, []) if p["snapshot"] != tonight]
        return names[-1] if names else None

    def _borg_phase(self, targets: list[str], snap: str, report: RunReport, new_kept: dict | None = None) -> None:
        new_kept = {} if new_kept is None else new_kept
        kept = self.kept() if self.s.keep_last_snapshot else {}
        by_service = {d.service: d for d in report.datasets}
        last_compact = self.state.last_compact()
        holds = self.state.prune_holds()
        stale = {svc: why for svc, hold in holds.items() if (why := stale_hold(hold, self.borg.listings.get(svc)))}
        previous = self.state.archive_counts()  # the last night's archive of each service: files, bytes
        for svc, why in stale.items():  # its baseline was an archive of that repository: compared with nothing
            del holds[svc]
            previous.pop(svc, None)
            report.notes.append(f"{svc}: prune hold dropped: {why}")
        # a hold stays, and is said, every night until a person releases it (an unchanged night too)
        report.held.update({svc: hold.get("reason", "") for svc, hold in holds.items() if svc in targets})
        nights = self.state.nights()
        baselines = {svc: change_baseline(nights.get(svc, [])) for svc in targets}
        limits = self._change_limits(targets, report)

        self.zfs.ensure_view_parent(self.s.view_dataset)

        def one(service: str) -> None:
            d = by_service[service]
            started = time.monotonic()
            view = self._view_dataset(service)
            staged = self._staged.get(service)
            stack_dir = staged if isinstance(staged, Path) else None
            made_view = False

            def unchanged(why: str | None) -> bool:
                if not why or last.get("stack") != stack_now:
                    return False  # changed, or the data is the same but the stack folder changed
                # the archive made from the kept snapshot still holds it: no borg tonight
                d.result, d.archive = UNCHANGED, last.get("archive", "")
                d.message = f"{why}; {d.archive or 'its last archive'} holds it"
                d.changed = {"added": 0, "modified": 0, "deleted": 0, "files": baselines[service][0], "bytes": 0}
                listing = self.borg.listings.get(service)
                d.archives = len(listing.archives) if listing else None  # counted from the repository
                return True

            try:
                if isinstance(staged, str):
                    raise ValidationError(staged)
                stack_now = stack_manifest(stack_dir, self._key()) if stack_dir else None
                last = kept.get(service)
                gone = self._archive_gone(service, last) if last else None
                if gone:
                    self.echo(f"{service}: {gone}")
                    d.message = gone
                why = self._unchanged_by_zfs(service, last, snap) if last and self.s.skip_unchanged and not gone \
                    else None
                if why is not UNKNOWN and unchanged(why):
                    return  # known from ZFS alone: no view was made
                # writable until the stack folder is copied in, then read-only for borg
                self.zfs.create_view(f"{self.s.dataset(service)}@{snap}", view, self._view_path(service),
                                     readonly=stack_dir is None)
                made_view = True
                if why is UNKNOWN and unchanged(self._unchanged_by_walk(service, last)):
                    return
                manifest = None
                if self.s.keep_last_snapshot and self.s.skip_unchanged and not self._has_written(service, snap):
                    digest, settled = tree_manifest(self._view_path(service), self._snap_time, SKIP_STACK)
                    manifest = digest if settled else None
                archived_stack = self._add_stack(service, stack_dir, view) if stack_dir else None
                listing = self.borg.listings.get(service)  # before tonight's archive joins it
                try:
                    created = self.borg.create(service, self._view_path(service),
                                               progress=self.progress.start(service, "backup"))
                finally:
                    self.progress.finish(service)
                d.archive = created.archive
                d.nfiles = created.nfiles
                d.original_size = created.original_size
                d.deduplicated_size = created.deduplicated_size
                d.files_read = getattr(created, "files_read", None)
                d.result = WARNING if created.warning else OK
                d.message = "; ".join(m for m in (d.message, created.warning) if m)
                before_files, past = baselines[service]
                d.changed = night_changes(getattr(created, "added", None), getattr(created, "modified", None),
                                          d.nfiles, sum(v.startswith("file ") for v in (archived_stack or {}).values()),
                                          before_files, d.deduplicated_size)
                if self.s.keep_last_snapshot:
                    new_kept[service] = {"snapshot": snap, "archive": created.archive, "manifest": manifest,
                                         "stack": archived_stack, "repository": created.repository}
                newest = max((a for a in listing.archives if a.startswith(f"{service}-")), default=None) \
                    if listing else None
                reason = holds.get(service, {}).get("reason") or prune_hold(
                    previous.get(service), d.nfiles, d.original_size, created.archive, newest,
                    self.s.prune_guard_shrink)
                changed = self._mass_change(d, before_files, past, limits.get(service),
                                            (nights.get(service) or [{}])[-1].get("time"))
                if changed:
                    before = {"text": changed, "archive": newest or (last or {}).get("archive"),
                              "snapshot": (last or {}).get("snapshot") or self._newest_point(service, snap)}
                    d.result = WARNING
                    d.message = "; ".join(m for m in (d.message, changed) if m)
                    d.changed["held"] = True
                    self.echo(f"{service}: {changed}")
                    reason = reason or changed
                if reason:
                    hold = holds.setdefault(service, {"reason": reason, "since": self.clock(),
                                                      "archive": created.archive, "repository": created.repository})
                    if changed:  # the first mass change's version before stays the one to go back to
                        before = hold.setdefault("mass_change", before)
                        report.mass_changes[service] = before
                    report.held[service] = hold["reason"]
                    self.echo(f"{service}: prune held, every archive kept: {reason}; "
                              f"`make release-prune SERVICE_NAME={service}` once the change was meant")
                    return
                if self.s.borg_append_only:  # this key cannot really delete: the trusted machine prunes
                    d.archives = len(listing.archives) + 1 if listing else None
                    return
                d.archives = self.borg.prune(service)
                d.pruned = True
                # a repository this tool never compacted, from which nothing was ever pruned (its
                # first nights): nothing to free yet, so its compaction schedule starts with the
                # first prune that removes an archive
                removed = None if listing is None or d.archives is None else \
                    sum(a.startswith(f"{service}-") for a in listing.archives) + 1 - d.archives
                never = last_compact.get(service) is None
                if compact_due(last_compact.get(service), self.s.borg_compact_every_days, self.clock()) \
                        and not (never and removed == 0):
                    self.borg.compact(service)
                    d.compacted = True
                    last_compact[service] = self.clock()
            except OrchestratorError as exc:
                d.result = FAILED
                d.message = brief(exc)
            finally:
                d.duration = time.monotonic() - started
                try:
                    if made_view:
                        self.zfs.destroy_view(view)
                except OrchestratorError as exc:
                    report.errors.append(f"{service}: could not remove view {view}: {exc}")

        workers = max(1, min(self.s.borg_parallel, len(targets)))
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="borg")
        futures = []
        self.progress.__enter__()  # the live display, on a terminal
        try:
            for service in targets:
                futures.append(pool.submit(one, service))
            for future in futures:
                while True:
                    try:
                        future.result(timeout=0.5)  # short waits so signals are handled promptly
                        break
                    except TimeoutError:
                        continue
        except Interrupted:
            for f in futures:
                f.cancel()
            self.runner.terminate_running({"borg"})
            raise
        finally:
            pool.shutdown(wait=True)
            self.progress.__exit__(None, None, None)
            if self.s.borg_append_only and any(d.archive and d.result in (OK, WARNING) for d in report.datasets):
                report.notes.append(APPEND_ONLY_NOTE)
            if any(d.compacted for d in report.datasets):
                self.state.save_last_compact(last_compact)
            if report.held or stale:
                self.state.save_prune_holds(holds)
        wrote = [d.service for d in report.datasets if d.service in targets and d.result in (OK, WARNING)]
        self._records = self._listing_records(wrote)

    def _cleanup(self, targets, snap, snapshotted, report, new_kept: dict | None = None) -> None:
        try:
            left = set(self.zfs.list_views(self.s.view_dataset))  # one query, not one per service
        except OrchestratorError as exc:
            left = set()
            report.errors.append(f"cleanup: cannot list views under {self.s.view_dataset}: {exc}")
        for view in [self._view_dataset(s) for s in targets]:
            if view not in left:
                continue
            try:
                self.zfs.destroy_view(view)
            except OrchestratorError as exc:
                report.errors.append(f"cleanup: view {view}: {exc}")
        keep = {f"{self.s.dataset(svc)}@{snap}" for svc in (new_kept or {})}
        points = self._history_points(targets, snap, report) if snapshotted and not report.errors else {}
        keep |= {f"{self.s.dataset(svc)}@{snap}" for svc in points}
        for dataset in snapshotted:
            try:
                if not keep:
                    self.zfs.destroy_recursive_snapshot(dataset, snap, prefix=self.s.snapshot_prefix)
                    continue
                for full in self.zfs.list_snapshots(dataset):
                    if full.endswith(f"@{snap}") and full not in keep:
                        self.zfs.destroy_ours(full, prefix=self.s.snapshot_prefix)
            except OrchestratorError as exc:
                report.errors.append(f"cleanup: snapshot {dataset}@{snap}: {exc}")
        try:
            self.history.record(points)
        except OSError as exc:
            report.errors.append(f"could not record the local history: {exc}")
        if new_kept:
            self._supersede(new_kept, report)
        if self.history.on or self.state.history():  # switched off: what it kept goes now
            self._thin_history(targets, report)
        if self._records:
            try:
                self._remember(self._records)
            except OSError as exc:
                report.errors.append(f"could not record what the repositories hold: {exc}")
        self._unstage(snap, report)
        for d in report.datasets:
            if d.result == SKIPPED and not d.message:
                d.message = "not backed up (see errors)"

    def _supersede(self, new_kept: dict[str, dict], report: RunReport) -> None:
        """Each dataset whose backup succeeded tonight keeps tonight's snapshot; only now is its
        previous one destroyed. The record is written first: a crash in between leaves an extra
        snapshot of ours for the next run's cleanup, never a record of a missing one."""
        kept = self.kept()
        previous = {svc: kept.get(svc) for svc in new_kept}
        kept.update(new_kept)
        try:
            self.state.save_kept(kept)
        except OSError as exc:
            report.errors.append(f"could not record the kept snapshots: {exc}")
            return
        held, history = self.history.held(), self.history.all_snapshots()  # state read once, not per service
        for svc, prev in previous.items():
            if not prev or prev["snapshot"] == new_kept[svc]["snapshot"]:
                continue
            if f"{self.s.dataset(svc)}@{prev['snapshot']}" in history:
                continue  # the history keeps it until SNAPSHOT_RETENTION thins it
            full = f"{self.s.dataset(svc)}@{prev['snapshot']}"
            if full in held:
                continue  # the version before a mass change: kept until release-prune
            try:
                if self.zfs.exists(full):
                    self.zfs.destroy_ours(full, prefix=self.s.snapshot_prefix)
            except OrchestratorError as exc:
                report.errors.append(f"cleanup: previous snapshot {full}: {exc}")

    def _history_points(self, targets: list[str], snap: str, report: RunReport) -> dict[str, HistoryPoint]:
        """Tonight's snapshot of each target dataset, to stay as local history (SNAPSHOT_RETENTION),
        whatever borg made of it: consistent where the stack was stopped (or not running),
        crash-consistent where it ran on; with the archive that holds the same data, if any."""
        if not self.history.on:
            return {}
        archives = {d.service: d.archive for d in report.datasets if d.archive}
        return {svc: HistoryPoint(snapshot=snap, time=self._snap_time or self.clock(),
                                  consistency=consistency_of(svc, report.live_stacks, report.stack_failures),
                                  archive=archives.get(svc))
                for svc in targets}

    def _thin_history(self, targets: list[str], report: RunReport) -> None:
        try:
            for note in self.history.thin(targets, self.history.protected()):
                self.echo(note)
                report.notes.append(note)
        except (OrchestratorError, OSError) as exc:
            why = brief(exc) if isinstance(exc, OrchestratorError) else str(exc)
            report.errors.append(f"cleanup: thinning the local history: {why}")

    def _publish(self, report: RunReport) -> None:
        publish(BackupOutcome(report), self.s, self.state, self.runner.mask, self.echo, self.clock(),
                self.pool_health)


class TrustedPrune(Cycle):
    """`prune-trusted`: prune and compact every repository from a trusted machine holding the
    full-access key, while the VM's own key is append-only (BORG_APPEND_ONLY=1 there). The same
    prune and compact as the night, behind two guards: the prune guard (the newest archive against
    the one before it, PRUNE_GUARD_SHRINK) and archives that vanished since the last trusted prune.
    A held service keeps every archive (no prune, no compact) until `release-prune` on this machine."""

    def run(self, services: Sequence[str] | None = None) -> RunReport:
        unknown = [s for s in services or () if s not in self.s.services]
        if unknown:
            raise ValidationError(f"unknown service(s) {', '.join(map(repr, unknown))}; known: "
                                  f"{', '.join(self.s.services)}")
        targets = list(services or self.s.services)
        report = RunReport(started_at=self.clock())
        report.datasets = [DatasetResult(s) for s in targets]
        with RunLock(self.s.lock_file, "prune-trusted"):
            holds = self.state.prune_holds()
            seen = self.state.trusted_kept()
            for d in report.datasets:
                self._one(d, holds, seen, report)
            self.state.save_prune_holds(holds)
            self.state.save_trusted_kept(seen)
        report.finished_at = self.clock()
        notify(self.s, trusted_prune_message(report), self.runner.mask, self.echo)  # a hold says so loudly
        return report

    def _one(self, d: DatasetResult, holds: dict, seen: dict, report: RunReport) -> None:
        service = d.service
        started = time.monotonic()
        try:
            present = [str(a.get("name", "")) for a in self.borg.list_archives(service)]
            reason = holds.get(service, {}).get("reason") or vanished(seen.get(service, []), present)
            if not reason:
                # every archive made since the last trusted prune against the one before it (a night
                # this machine missed is compared too), or only the newest when there is no record
                new = [a for a in present if a.startswith(f"{service}-") and a not in seen.get(service, [])]
                last = self.borg.last_archives(service, max(2, len(new) + 1))
                for before, after in zip(last, last[1:], strict=False):
                    reason = prune_hold({"files": before["nfiles"], "bytes": before["original_size"]},
                                        after["nfiles"], after["original_size"], after["name"], None,
                                        self.s.prune_guard_shrink)
                    if reason:
                        break
            if reason:
                holds.setdefault(service, {"reason": reason, "since": self.clock(),
                                           "archive": max(present, default="")})
                report.held[service] = reason
                d.result, d.message, d.archives = SKIPPED, f"prune held, every archive kept: {reason}", len(present)
                self.echo(f"{service}: {d.message}; `make release-prune SERVICE_NAME={service}` here once it "
                          "was meant")
                return
            d.archives = self.borg.prune(service)
            d.pruned = True
            self.borg.compact(service)
            d.compacted = True
            if not self.runner.dry_run:
                seen[service] = [str(a.get("name", "")) for a in self.borg.list_archives(service)]
                d.archives = len(seen[service])
            d.result = OK
            d.message = f"pruned and compacted: {d.archives} archive(s) kept"
            self.echo(f"{service}: {d.message}")
        except OrchestratorError as exc:
            d.result, d.message = FAILED, brief(exc)
            self.echo(f"{service}: {d.message}")
        finally:
            d.duration = time.monotonic() - started
