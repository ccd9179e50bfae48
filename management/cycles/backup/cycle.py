"""BackupOrchestrator: the nightly cycle, put together from its parts (see the package)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from management.cycles.backup.cleanup import Cleanup
from management.cycles.backup.night import (
    PREFLIGHT_PARALLEL,
    listing_record,
    snapshot_name,
)
from management.cycles.backup.steps import BorgSteps
from management.cycles.backup.window import Window
from management.cycles.frame import RunFrame
from management.errors import OrchestratorError, brief
from management.lock import Interrupted, SignalGuard
from management.monitoring.publish import BackupOutcome
from management.results import FAILED, DatasetResult, RunReport
from management.state import Kept, RepositoryRecord
from management.tools.borg import Listing


class BackupOrchestrator(Window, BorgSteps, Cleanup):
    """The night: preflight -> the window (Window) -> each service's borg step (BorgSteps) ->
    cleanup (Cleanup), in one run frame; and init-repos."""

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

    def _listing_from_record(self, service: str, record: RepositoryRecord | None) -> bool:
        """A local repository no one wrote to since this tool recorded it (its fingerprint, the
        id and last transaction read from its files, is the same): it holds what the record
        says, so borg is not asked. Nothing is asked of borg for a dataset that will not run,
        nor, on the first night, for a repository `init-repos` made or listed. A remote
        repository, or any change (another machine's prune, a rollback, a repository put in
        its place), is listed by borg as before."""
        if record is None or not record.fingerprint or self.borg.fingerprint(service) != record.fingerprint:
            return False
        self.borg.listings[service] = Listing(record.repository, record.archives)
        return True

    def _listing_records(self, wrote: Sequence[str]) -> dict[str, RepositoryRecord]:
        """What to remember of each repository for the next night: for those borg wrote tonight
        (`wrote`), the fingerprint now and the listing as create and prune left it; for those
        only listed, the fingerprint taken before the listing. None where either is unknown."""
        records = {}
        for service, listing in self.borg.listings.items():
            fingerprint = self.borg.fingerprint(service) if service in wrote else self._listed.get(service)
            if fingerprint:
                records[service] = listing_record(fingerprint, listing)
        return records

    def init_repo(self, service: str) -> bool:
        """`init-repos` for one service: borg creates the repository unless it exists (True when
        it did; an existing one is listed, which proves our passphrase opens it), and what it
        holds is recorded with its fingerprint, so the first night need not list it again."""
        before = self.borg.fingerprint(service)  # before the listing: never newer
        created = self.borg.init_repo(service)
        fingerprint = self.borg.fingerprint(service) if created else before
        listing = self.borg.listings.get(service)
        if fingerprint and listing is not None and not self.runner.dry_run:
            self.state.record_repositories({service: listing_record(fingerprint, listing)})
        return created

    # -- the cycle ------------------------------------------------------------------------

    def backup(self, services: Sequence[str] | None = None) -> RunReport:
        targets = self._targets(services)
        report = RunReport(started_at=self.clock())
        with RunFrame(self, "backup", ping=BackupOutcome) as frame:
            frame.done(BackupOutcome(report))  # published however the night ends
            try:
                self._cycle(targets, report, frame.guard)
            except Interrupted as exc:
                report.interrupted = str(exc)
            finally:
                report.finished_at = self.clock()
        return report

    def _cycle(self, targets: list[str], report: RunReport, guard: SignalGuard) -> None:
        report.datasets = [DatasetResult(s) for s in targets]
        for name in self.state.damaged():  # cut short by a crash or a full disk: it reads as empty
            report.notes.append(f"{self.state.path(name)} does not parse: read as empty")
            self.echo(f"note: {report.notes[-1]}")
        rebuilt = self.history.recover()  # before the leftover cleanup, which would take its snapshots
        if rebuilt:
            report.notes.append(rebuilt)
            self.echo(f"note: {rebuilt}")
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
        new_kept: dict[str, Kept] = {}  # services whose new snapshot stays (their backup succeeded)
        # read once a night, after the leftovers went: what the run replaces at its end is what it
        # started from (a second read could meet a file broken meanwhile and drop what it held)
        kept = self.kept() if self.s.keep_last_snapshot else {}
        try:
            self._window(targets, snap, snap_root, report, guard, snapshotted)
            if report.errors or not snapshotted:
                return  # no borg without a complete snapshot
            self._borg_phase(usable, snap, report, new_kept, kept)
        finally:
            with guard.critical():
                self._cleanup(targets, snap, snapshotted, report, new_kept, kept)
