"""After the night: views and tonight's snapshot removed (the kept and history ones stay), the
previous kept snapshots superseded, the local history recorded and thinned; and what a killed
run left behind."""

from __future__ import annotations

from management.cycles.backup.common import BackupCycle
from management.cycles.history import consistency_of
from management.errors import OrchestratorError, brief
from management.results import SKIPPED, RunReport
from management.state import HistoryPoint, Kept


class Cleanup(BackupCycle):
    """What the night leaves behind, and what it removes."""

    def cleanup_leftovers(self) -> list[str]:
        """Remove views, a drill's scratch datasets and prefixed snapshots a killed run left
        behind. Only ours, and never the kept last snapshot of a dataset."""
        removed: list[str] = self.zfs.clear_leftovers(self.s.view_dataset)
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

    def _cleanup(self, targets, snap, snapshotted, report, new_kept: dict[str, Kept],
                 kept: dict[str, Kept]) -> None:
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
        keep = {f"{self.s.dataset(svc)}@{snap}" for svc in new_kept}
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
            self._supersede(new_kept, report, kept)
        if self.history.on or self.state.history():  # switched off: what it kept goes now
            self._thin_history(targets, report)
        if self._records:
            try:
                self.state.record_repositories(self._records)
            except OSError as exc:
                report.errors.append(f"could not record what the repositories hold: {exc}")
        self._unstage(snap, report)
        for d in report.datasets:
            if d.result == SKIPPED and not d.message:
                d.message = "not backed up (see errors)"

    def _supersede(self, new_kept: dict[str, Kept], report: RunReport, before: dict[str, Kept]) -> None:
        """Each dataset whose backup succeeded tonight keeps tonight's snapshot; only now is its
        previous one destroyed. The record is written first: a crash in between leaves an extra
        snapshot of ours for the next run's cleanup, never a record of a missing one. `before` is
        the record as the night read it at its start."""
        kept = dict(before)
        previous = {svc: kept.get(svc) for svc in new_kept}
        kept.update(new_kept)
        try:
            self.state.save_kept(kept)
        except OSError as exc:
            report.errors.append(f"could not record the kept snapshots: {exc}")
            return
        held, history = self.history.held(), self.history.all_snapshots()  # state read once, not per service
        for svc, prev in previous.items():
            if not prev or prev.snapshot == new_kept[svc].snapshot:
                continue
            if f"{self.s.dataset(svc)}@{prev.snapshot}" in history:
                continue  # the history keeps it until SNAPSHOT_RETENTION thins it
            full = f"{self.s.dataset(svc)}@{prev.snapshot}"
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
