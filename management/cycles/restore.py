"""RestoreOrchestrator: a whole service back from one archive (its data and its stack folder),
and every service at once onto a new machine.

    lock -> stop the stack -> safety snapshot `restore-safety-<time>` -> extract the data into a
    hidden directory on the dataset and swap it in -> extract the stack folder beside
    SERVICES_DIR/<service>, keep the current one aside as .<service>.before-restore-<time>, swap
    -> start the stack (`up -d`: the restored compose file decides)

Promises (each has a test):
- any failure puts both halves back (zfs rollback to the safety snapshot, the folder kept aside
  renamed back) and starts the stack again if it was running: the service is as it was;
- nothing this tool did not make is destroyed: the safety snapshot and the folder kept aside
  stay until the user removes them (the output says how);
- the stack folder holds `.env` secrets: it is extracted, never printed.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from management.config import Settings
from management.cycles.context import Cycle
from management.cycles.frame import RunFrame
from management.cycles.history import SAFETY_PREFIX, SNAPSHOT_TIME
from management.errors import OrchestratorError, ValidationError
from management.lock import SignalGuard
from management.tools.borg import STACK_PREFIX, latest_archive

DATA, STACK = "data", "stack"


@dataclass
class Restored:
    service: str
    archive: str
    safety_snapshot: str = ""  # dataset@restore-safety-<time>, when the data was restored
    stack_aside: str = ""  # where the stack folder that was replaced now is
    stack_restored: bool = False
    notes: list[str] = field(default_factory=list)
    not_started: str = ""  # why the stack did not come up after the restore (the restore itself held)

    def undo(self, settings: Settings) -> str:
        steps = []
        if self.safety_snapshot:
            steps.append(f"zfs rollback -r {self.safety_snapshot}")
        if self.stack_aside:
            steps.append(f"mv {settings.services_dir / self.service} <elsewhere> && "
                         f"mv {self.stack_aside} {settings.services_dir / self.service}")
        return "; ".join(steps)


class RestoreOrchestrator(Cycle):

    def restore(self, service: str, archive: str, only: str | None = None) -> Restored:
        """Restore `service` from `archive`: data and stack folder, or `only` one of them; the
        stack is started afterwards."""
        if only not in (None, DATA, STACK):
            raise ValidationError(f"only must be {DATA!r} or {STACK!r}, not {only!r}")
        with RunFrame(self, "restore") as frame:
            done = self._restore(service, archive, only, frame.guard, start=True)
        self._tell(done)
        if done.not_started:  # restored, but the service is not back: not a success (chaos, seed 37)
            raise OrchestratorError(f"{service}: restored from {archive}, but its stack did not start: "
                                    f"{done.not_started}; the undo above puts the data and folder back")
        return done

    def restore_all(self) -> tuple[list[Restored], list[str]]:
        """Every service from its latest archive, then every stack up (hub first). One service's
        failure is reported and the others go on. Returns (restored, failures)."""
        restored: list[Restored] = []
        failures: list[str] = []
        with RunFrame(self, "restore-all") as frame:
            kept = self.state.kept()  # this machine's record of each service's newest archive, if it has one
            for service in self.s.services:
                try:
                    made = kept[service].archive if service in kept else None
                    archive = latest_archive(self.borg.list_archives(service), service, made)
                    if archive is None:
                        raise ValidationError(f"no archive in {self.s.repo(service)}")
                    self.echo(f"{service}: restoring {archive}")
                    restored.append(self._restore(service, archive, None, frame.guard, start=False))
                except OrchestratorError as exc:
                    failures.append(f"{service}: {self.runner.mask(str(exc)).splitlines()[0]}")
                    self.echo(f"{service}: FAILED: {failures[-1]}")
            names = [r.service for r in restored if r.service in self.docker.discover_names()]
            self.docker.forget(names)  # their folders were replaced: read compose's model anew
            if names:
                self.echo(f"starting {len(names)} stack(s), hub first: {', '.join(names)}")
                for result in self.docker.up(names):
                    if not result.ok:
                        failures.append(f"{result.stack}: restored but did not start: {result.message}")
        for done in restored:
            self._tell(done)
        return restored, failures

    # -- one service ---------------------------------------------------------------------

    def _restore(self, service: str, archive: str, only: str | None, guard: SignalGuard, *, start: bool) -> Restored:
        if service not in self.s.services:
            raise ValidationError(f"unknown service {service!r}; known: {', '.join(self.s.services)}")
        want_data, want_stack = only in (None, DATA), only in (None, STACK)
        names = [a.get("name") for a in self.borg.list_archives(service)]
        if archive not in names:
            recent = ", ".join(names[-5:]) or "none"
            raise ValidationError(f"{service}: no archive {archive!r} in {self.s.repo(service)} (latest: {recent})")
        dataset, mountpoint = self.s.dataset(service), self.s.mountpoint(service)
        if want_data and not self.zfs.is_mounted(dataset):
            raise ValidationError(f"{service}: dataset {dataset} is not mounted; nothing was changed")
        stamp = time.strftime(SNAPSHOT_TIME, time.gmtime(self.clock()))
        done = Restored(service, archive)
        folder = self.s.services_dir / service
        with guard.critical():
            stopped = self._stop(service, folder)
        data_swapped = False
        ok = False
        try:
            if want_data:
                safety = f"{SAFETY_PREFIX}-{stamp}"
                self.zfs.snapshot(dataset, safety, recursive=False)
                done.safety_snapshot = f"{dataset}@{safety}"
                self.echo(f"{service}: safety snapshot {done.safety_snapshot}")
                staging = mountpoint / f".orchestrator-restore-{stamp}"
                self.echo(f"{service}: extracting the data of {archive}")
                data_swapped = True  # from here on a failure rolls the dataset back
                try:
                    with self.progress:
                        self.borg.extract(service, archive, staging, excludes=(STACK_PREFIX,),
                                          progress=self.progress.start(service, "restore"))
                finally:
                    self.progress.finish(service)
                with guard.critical():  # the swap is quick; never leave it half done
                    _swap_contents(mountpoint, staging)
            if want_stack:
                self._restore_stack(service, archive, folder, stamp, done, guard, required=only == STACK)
            ok = True
        except BaseException:
            self.echo(f"{service}: restore failed; putting everything back")
            aside = Path(done.stack_aside) if done.stack_aside else None
            if aside is not None and aside.exists():
                if folder.exists() and done.stack_restored:
                    shutil.rmtree(folder)
                if not folder.exists():
                    aside.rename(folder)
                    done.stack_aside = ""
            if data_swapped:
                self.zfs.rollback(dataset, done.safety_snapshot.partition("@")[2])
            raise
        finally:
            if (ok and start) or (stopped and not ok):
                with guard.critical():
                    done.not_started = self._start(service, folder, stopped if not ok else None)
        return done

    def _stop(self, service: str, folder: Path) -> list[str] | bool:
        """Stop the service's containers. With its folder: `compose stop`. Without (deleted), the
        project's running containers by label. Returns what to start again on failure."""
        if folder.is_dir() and service in self.docker.discover_names():
            if service not in self.docker.running_stacks():
                return False
            self.echo(f"{service}: stopping the stack")
            failed = [r for r in self.docker.stop([service]) if not r.ok]
            if failed:
                self.docker.start([service])
                raise OrchestratorError(f"{service}: could not stop the stack: {failed[0].message}; "
                                        "nothing was changed")
            return True
        ids = self.docker.containers.running(service)
        if ids:
            self.echo(f"{service}: stopping {len(ids)} container(s) of project {service} (its folder is gone)")
            self.docker.containers.stop(ids)
        return ids

    def _start(self, service: str, folder: Path, containers: list[str] | bool | None) -> str:
        """Start the service again; returns why it did not come up ("" when it did)."""
        self.docker.forget([service])
        if isinstance(containers, list) and not folder.is_dir():
            self.docker.containers.start(containers)
            return ""
        if not folder.is_dir():
            return ""
        self.echo(f"{service}: starting the stack")
        for r in self.docker.up([service]):
            if not r.ok:
                self.echo(f"warning: {service} did not start: {r.message}")
                return r.message
        return ""

    def _restore_stack(self, service: str, archive: str, folder: Path, stamp: str, done: Restored,
                       guard: SignalGuard, *, required: bool) -> None:
        """Extract the archive's stack folder beside SERVICES_DIR/<service> and swap it in; the
        current folder is kept aside (done.stack_aside)."""
        services_dir = self.s.services_dir
        services_dir.mkdir(parents=True, exist_ok=True)
        staging = services_dir / f".{service}.restore-{stamp}"
        staging.mkdir(mode=0o700)
        try:
            self.echo(f"{service}: extracting the stack folder of {archive}")
            if not self.borg.extract(service, archive, staging, paths=(STACK_PREFIX,)):
                why = (f"{archive} holds no stack folder (it was made before stack folders went into the "
                       "archives); the stack folder was left as it is")
                if required:
                    raise ValidationError(f"{service}: {why}")
                done.notes.append(why)
                return
            with guard.critical():
                if folder.exists() or folder.is_symlink():
                    aside = services_dir / f".{service}.before-restore-{stamp}"
                    folder.rename(aside)
                    done.stack_aside = str(aside)
                (staging / STACK_PREFIX).rename(folder)
                done.stack_restored = True
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _tell(self, done: Restored) -> None:
        parts = [p for p, on in (("data", bool(done.safety_snapshot)), ("stack folder", done.stack_restored)) if on]
        self.echo(f"restored {done.service} ({' and '.join(parts) or 'nothing'}) from {done.archive}")
        for note in done.notes:
            self.echo(f"note: {note}")
        undo = done.undo(self.s)
        if undo:
            self.echo(f"undo: {undo}")
        if done.safety_snapshot:
            snap = done.safety_snapshot.partition("@")[2]
            self.echo(f"when satisfied: make destroy-snapshot SERVICE_NAME={done.service} SNAPSHOT_NAME={snap}"
                      + (f"; rm -r {done.stack_aside}" if done.stack_aside else ""))
        elif done.stack_aside:
            self.echo(f"when satisfied: rm -r {done.stack_aside}")


def _swap_contents(mountpoint: Path, staging: Path) -> None:
    """Replace everything in `mountpoint` but `staging` with what is in `staging`."""
    for entry in list(mountpoint.iterdir()):
        if entry == staging:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    for entry in list(staging.iterdir()):
        entry.rename(mountpoint / entry.name)
    staging.rmdir()
