"""The downtime window: stop -> snapshot -> start, with the stack folders copied while their
stacks are stopped, and the live stacks' before-snapshot commands."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from management.cycles.backup.common import BackupCycle
from management.cycles.backup.night import (
    CRASH_CONSISTENT,
    start_order,
    stop_order,
)
from management.errors import OrchestratorError, brief
from management.results import RunReport
from management.stacks.compose_file import LIVE, Policy, policy_of
from management.stacks.coverage import problems
from management.tools.files import Files

log = logging.getLogger("orchestrator.backup")



class Window(BackupCycle):
    """The window of the night (BackupOrchestrator._window) and the stack folder copies."""

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

    def _made_anyway(self, dataset: str, snap: str) -> bool:
        """Whether a `zfs snapshot` that failed made the snapshot all the same: the command was
        killed (or timed out) after ZFS had taken it (chaos: SIGKILL of `zfs snapshot -r`)."""
        try:
            return self.zfs.exists(f"{dataset}@{snap}")
        except OrchestratorError:
            return False  # cannot tell: the next run's leftover cleanup removes it if it is there

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
                    try:
                        self.zfs.snapshot(dataset, snap, recursive=True)
                    except OrchestratorError:
                        if self._made_anyway(dataset, snap):
                            snapshotted.append(dataset)  # so that the cleanup destroys it
                        raise
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
