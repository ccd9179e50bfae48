"""The borg phase: one step per service (unchanged, or a view, borg create, the prune and
mass-change guards, prune and compaction), each returning what it did for the cycle to merge."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from management.cycles.backup.common import BackupCycle
from management.cycles.backup.night import (
    APPEND_ONLY_NOTE,
    SKIP_STACK,
    UNKNOWN,
    change_baseline,
    compact_due,
    mass_change,
    night_changes,
    restored_since,
)
from management.cycles.holds import PruneHolds, clock_wait, prune_hold
from management.errors import OrchestratorError, ValidationError, brief
from management.lock import Interrupted
from management.results import FAILED, OK, UNCHANGED, WARNING, DatasetResult, RunReport
from management.stacks.compose_file import ChangeLimit, mass_change_limit
from management.stacks.trees import stack_manifest, tree_manifest
from management.state import ArchiveCount, Kept, MassChange, PruneHold
from management.tools.borg import STACK_PREFIX, Listing
from management.tools.files import Files


@dataclass(frozen=True)
class NightInputs:
    """What every service's borg step reads, read once before the steps start; no step changes it."""

    snap: str
    kept: dict[str, Kept]  # the kept snapshots (KEEP_LAST_SNAPSHOT)
    last_compact: dict[str, float]
    holds: PruneHolds  # the holds from before tonight (merged into by the cycle only)
    dropped: dict[str, str]  # holds dropped tonight (their repository was replaced): service -> why
    previous: dict[str, ArchiveCount]  # the last night's archive of each service: files, bytes
    baselines: dict[str, tuple[int | None, list[int]]]  # change_baseline of each service
    last_night: dict[str, float | None]  # when each service's last recorded night ran (None: never)
    limits: dict[str, ChangeLimit]  # declared mass-change limits


@dataclass
class ServiceStep:
    """What one service's borg step did, for the cycle to merge when every step finished."""

    dataset: DatasetResult  # the step's own copy of its result
    made_view: bool = False
    kept: Kept | None = None  # its new kept snapshot (its backup succeeded)
    hold: PruneHold | None = None  # its prune held tonight
    compacted_at: float | None = None
    errors: list[str] = field(default_factory=list)  # for the report (a view that could not be removed)


class BorgSteps(BackupCycle):
    """Every target's borg step, BORG_PARALLEL at once, and their merge."""

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

    def _archive_gone(self, service: str, last: Kept) -> str | None:
        """Why the archive that held the dataset cannot be trusted to any more (the repository was
        replaced, emptied, rolled back or moved), or None. The tool believes the repository, not
        its own memory: the preflight listed what the repository holds."""
        listing = self.borg.listings.get(service)
        if listing is None:
            return None  # not listed (a dry run): nothing known either way
        archive = last.archive
        recorded = last.repository
        if recorded and listing.repository and recorded != listing.repository:
            return (f"{self.s.repo(service)} is not the repository that held {archive} (its id changed: replaced "
                    "or moved): a full backup tonight")
        if archive and archive not in listing.archives:
            return (f"{archive}, which held it, is not in {self.s.repo(service)} any more (emptied, rolled back "
                    "or pointed elsewhere): a full backup tonight")
        return None

    def _unchanged_by_zfs(self, service: str, last: Kept, snap: str) -> str | None | object:
        """Why the dataset holds exactly what its last archive holds, asked of ZFS alone (no view):
        OpenZFS's `written@` of the kept snapshot is 0. None when something was written or the
        kept snapshot is gone; UNKNOWN where the pool has no `written` (zfs-fuse): then only the
        view's manifest can tell (`_unchanged_by_walk`)."""
        dataset = self.s.dataset(service)
        if not self.zfs.exists(f"{dataset}@{last.snapshot}"):
            return None
        if self._written_supported is False:
            return UNKNOWN
        written = self.zfs.written_since(f"{dataset}@{snap}", last.snapshot)
        self._written_supported = written is not None
        if written is None:
            return UNKNOWN
        return f"nothing written since {last.snapshot}" if written == 0 else None

    def _view_manifest(self, service: str) -> tuple[str, bool]:
        """The change digest of the service's view and whether it is settled (`tree_manifest`):
        one walk of every entry, the cost that grows with the dataset's files on zfs-fuse."""
        return tree_manifest(self._view_path(service), self._snap_time, SKIP_STACK)

    @staticmethod
    def _unchanged_by_walk(last: Kept, walked: tuple[str, bool]) -> str | None:
        """zfs-fuse: the view's manifest (`walked`) equals the one recorded when that archive was
        made (and was settled)."""
        manifest, settled = walked
        if not last.manifest:
            return None
        return f"no file changed since {last.snapshot}" if settled and manifest == last.manifest else None

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
        names = [p.snapshot for p in self.state.history().get(service, []) if p.snapshot != tonight]
        return names[-1] if names else None

    def _borg_phase(self, targets: list[str], snap: str, report: RunReport, new_kept: dict,
                    kept: dict[str, Kept]) -> None:
        """Each target's borg step (`_step`), BORG_PARALLEL at once; the cycle merges what each
        step returns once they all finished (or were interrupted): no step changes shared state."""
        night = self._night_inputs(targets, snap, report, kept)
        self.zfs.ensure_view_parent(self.s.view_dataset)
        by_service = {d.service: d for d in report.datasets}
        workers = max(1, min(self.s.borg_parallel, len(targets)))
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="borg")
        futures = []
        self.progress.__enter__()  # the live display, on a terminal
        try:
            for service in targets:
                futures.append(pool.submit(self._step, service, night, dataclasses.replace(by_service[service])))
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
            done = [f.result() for f in futures if f.done() and not f.cancelled() and f.exception() is None]
            self._merge(done, night, report, new_kept)
        wrote = [d.service for d in report.datasets if d.service in targets and d.result in (OK, WARNING)]
        self._records = self._listing_records(wrote)

    def _night_inputs(self, targets: list[str], snap: str, report: RunReport,
                      kept: dict[str, Kept]) -> NightInputs:
        """What every step reads, read once before they start. A hold whose repository was replaced
        is dropped, and so is its baseline (an archive of that repository: compared with nothing)."""
        last_compact = self.state.last_compact()
        holds = PruneHolds(self.state)
        dropped = holds.drop_stale(self.borg.listings)
        previous = self.state.archive_counts()  # the last night's archive of each service: files, bytes
        for svc, why in dropped.items():
            previous.pop(svc, None)
            report.notes.append(f"{svc}: prune hold dropped: {why}")
        # a hold stays, and is said, every night until a person releases it (an unchanged night too)
        report.held.update({svc: hold.reason for svc, hold in holds.records.items() if svc in targets})
        nights = self.state.nights()
        baselines = {svc: change_baseline(nights.get(svc, [])) for svc in targets}
        last_night = {svc: nights[svc][-1].time if nights.get(svc) else None for svc in targets}
        return NightInputs(snap, kept, last_compact, holds, dropped, previous, baselines, last_night,
                           self._change_limits(targets, report))

    def _merge(self, steps: Sequence[ServiceStep], night: NightInputs, report: RunReport,
               new_kept: dict[str, Kept]) -> None:
        """What the finished steps did, into the report, the kept snapshots, the compaction times
        and the prune holds; then the records that changed are saved."""
        index = {d.service: i for i, d in enumerate(report.datasets)}
        last_compact = dict(night.last_compact)
        for step in steps:
            d = step.dataset
            report.datasets[index[d.service]] = d
            report.errors.extend(step.errors)
            if step.kept is not None:
                new_kept[d.service] = step.kept
            if step.compacted_at is not None:
                last_compact[d.service] = step.compacted_at
            if step.hold is not None:
                hold = night.holds.hold(d.service, step.hold)
                report.held[d.service] = hold.reason
                if step.hold.mass_change is not None:
                    report.mass_changes[d.service] = hold.mass_change
        if self.s.borg_append_only and any(d.archive and d.result in (OK, WARNING) for d in report.datasets):
            report.notes.append(APPEND_ONLY_NOTE)
        if any(d.compacted for d in report.datasets):
            self.state.save_last_compact(last_compact)
        if report.held or night.dropped:
            night.holds.save()

    def _step(self, service: str, night: NightInputs, d: DatasetResult) -> ServiceStep:
        """One service's borg work tonight, on its own copy of its result `d`: unchanged (no
        borg), or a view, borg create, the guards, prune and compaction; the view is removed on
        every way out. One service's failure is its own."""
        step = ServiceStep(d)
        started = time.monotonic()
        try:
            self._back_up(service, night, step)
        except OrchestratorError as exc:
            d.result = FAILED
            d.message = brief(exc)
        finally:
            d.duration = time.monotonic() - started
            view = self._view_dataset(service)
            try:
                if step.made_view:
                    self.zfs.destroy_view(view)
            except OrchestratorError as exc:
                step.errors.append(f"{service}: could not remove view {view}: {exc}")
        return step

    def _back_up(self, service: str, night: NightInputs, step: ServiceStep) -> None:
        d = step.dataset
        staged = self._staged.get(service)
        if isinstance(staged, str):
            raise ValidationError(staged)
        stack_dir = staged if isinstance(staged, Path) else None
        stack_now = stack_manifest(stack_dir, self._key()) if stack_dir else None
        last = night.kept.get(service)
        gone = self._archive_gone(service, last) if last else None
        if gone:
            self.echo(f"{service}: {gone}")
            d.message = gone
        why = self._unchanged_by_zfs(service, last, night.snap) if last and self.s.skip_unchanged and not gone \
            else None
        if why is not UNKNOWN and self._unchanged(d, why, last, stack_now, night):
            return  # known from ZFS alone: no view was made
        # writable until the stack folder is copied in, then read-only for borg
        view = self._view_dataset(service)
        self.zfs.create_view(f"{self.s.dataset(service)}@{night.snap}", view, self._view_path(service),
                             readonly=stack_dir is None)
        step.made_view = True
        # zfs-fuse: the view is walked once; the digest that found it changed is the one recorded
        walked = self._view_manifest(service) if why is UNKNOWN else None
        if walked and self._unchanged(d, self._unchanged_by_walk(last, walked), last, stack_now, night):
            return
        manifest = None
        if self.s.keep_last_snapshot and self.s.skip_unchanged and not self._has_written(service, night.snap):
            digest, settled = walked or self._view_manifest(service)
            manifest = digest if settled else None
        archived_stack = self._add_stack(service, stack_dir, view) if stack_dir else None
        listing = self.borg.listings.get(service)  # before tonight's archive joins it
        created = self._create(d)
        d.changed = night_changes(getattr(created, "added", None), getattr(created, "modified", None),
                                  d.nfiles, sum(v.startswith("file ") for v in (archived_stack or {}).values()),
                                  night.baselines[service][0], d.deduplicated_size)
        if self.s.keep_last_snapshot:
            step.kept = Kept(night.snap, created.archive, manifest, archived_stack, created.repository)
        newest = max((a for a in listing.archives if a.startswith(f"{service}-")), default=None) \
            if listing else None
        if not self._held(step, night, created, newest, last):
            self._prune(step, night, listing)

    def _unchanged(self, d: DatasetResult, why: str | None, last: Kept | None, stack_now: dict | None,
                   night: NightInputs) -> bool:
        """Whether the archive made from the kept snapshot still holds the dataset (`why` says so)
        and its stack folder too: then no borg tonight, and `d` says so."""
        if not why or last is None or last.stack != stack_now:
            return False  # changed, or the data is the same but the stack folder changed
        d.result, d.archive = UNCHANGED, last.archive
        d.message = f"{why}; {d.archive or 'its last archive'} holds it"
        d.changed = {"added": 0, "modified": 0, "deleted": 0, "files": night.baselines[d.service][0], "bytes": 0}
        listing = self.borg.listings.get(d.service)
        d.archives = len(listing.archives) if listing else None  # counted from the repository
        return True

    def _create(self, d: DatasetResult):
        """borg create from the view, into `d`."""
        service = d.service
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
        return created

    def _held(self, step: ServiceStep, night: NightInputs, created, newest: str | None, last: Kept | None) -> bool:
        """The prune guard and the mass-change guard: True (and `step.hold` set) when tonight's
        prune must wait for a person; True too (no hold) while it waits for the clock (clock_wait)."""
        d = step.dataset
        service = d.service
        before_files, past = night.baselines[service]
        wait = clock_wait(created.archive, newest) or night.holds.wait()
        if wait:
            d.result = WARNING if d.result == OK else d.result
            d.message = "; ".join(m for m in (d.message, wait) if m)
            self.echo(f"{service}: {wait}")
        reason = night.holds.reason(service) or prune_hold(
            night.previous.get(service), d.nfiles, d.original_size, created.archive, self.s.prune_guard_shrink)
        changed = self._mass_change(d, before_files, past, night.limits.get(service), night.last_night[service])
        before = None
        if changed:
            before = MassChange(changed, newest or (last.archive if last else None),
                                (last.snapshot if last else None) or self._newest_point(service, night.snap))
            d.result = WARNING
            d.message = "; ".join(m for m in (d.message, changed) if m)
            d.changed["held"] = True
            self.echo(f"{service}: {changed}")
            reason = reason or changed
        if not reason:
            return bool(wait)
        step.hold = PruneHold(reason, self.clock(), created.archive, created.repository, before)
        self.echo(f"{service}: prune held, every archive kept: {reason}; "
                  f"`make release-prune SERVICE_NAME={service}` once the change was meant")
        return True

    def _prune(self, step: ServiceStep, night: NightInputs, listing: Listing | None) -> None:
        """Prune by the retention, and compact when due (BORG_COMPACT_EVERY_DAYS)."""
        d = step.dataset
        service = d.service
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
        last = night.last_compact.get(service)
        if compact_due(last, self.s.borg_compact_every_days, self.clock()) and not (last is None and removed == 0):
            self.borg.compact(service)
            d.compacted = True
            step.compacted_at = self.clock()
