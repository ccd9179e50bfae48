"""DrillOrchestrator: a backup counts only when a restore was seen to work.

For each service: extract its latest archive into scratch space (a temporary dataset below the
view parent, or DRILL_DIR; never a service dataset), and compare every entry with the snapshot
that archive was made from (KEEP_LAST_SNAPSHOT keeps it), read through a read-only view:
type, mode, owner, group, size, content byte for byte, symlink target, hard links. The stack
folder in the archive is compared with the manifest recorded when the archive was made.
Where that snapshot is gone, fall back to `borg check --verify-data` plus the full extract, and
say that no comparison was made. The scratch space and the view are removed afterwards.

Results go to the run state and the drill textfile, through monitoring.publish.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import time
from collections.abc import Sequence
from pathlib import Path

from management.config import COMPOSE_FILES
from management.cycles.context import Cycle
from management.cycles.frame import RunFrame
from management.cycles.history import SNAPSHOT_TIME
from management.errors import OrchestratorError, ValidationError, brief
from management.lock import Interrupted
from management.monitoring.publish import DrillOutcome
from management.results import COMPARED, FAILED, SHOWN, VERIFIED, DrillReport, DrillResult
from management.stacks.compose_file import drill_probe
from management.stacks.sandbox import sandbox_model
from management.stacks.trees import compare_trees, manifest_differences, stack_manifest, walk
from management.state import Kept
from management.tools.borg import STACK_PREFIX, latest_archive

SANDBOX_FILE = ".orchestrator-drill.json"  # the throwaway stack's model, inside the restored copy


class DrillOrchestrator(Cycle):

    def drill(self, services: Sequence[str] | None = None, *, wait: float = 0.0,
              boot: bool | None = None) -> DrillReport:
        """Each service's latest archive extracted and compared; with `boot` (default DRILL_BOOT)
        its restored stack is then started as a throwaway, isolated stack and must come up."""
        self._boot_too = self.s.drill_boot if boot is None else boot
        targets = list(services) if services else list(self.s.services)
        unknown = [t for t in targets if t not in self.s.services]
        if unknown:
            raise ValidationError(f"unknown service(s) {', '.join(map(repr, unknown))}; "
                                  f"known: {', '.join(self.s.services)}")
        self._check_drill_dir()
        report = DrillReport(started_at=self.clock())
        with RunFrame(self, "drill", wait=wait) as frame:
            self._cleanup_leftovers()
            self.zfs.ensure_view_parent(self.s.view_dataset)
            try:
                for service in targets:
                    self.echo(f"{service}: drilling")
                    with self.progress:
                        result = self._one(service)
                    report.results.append(result)
                    self.echo(result.line())
            except Interrupted:
                # a scratch dataset whose `zfs create` the signal cut short may exist all the same,
                # unknown to its step: everything below the view parent is ours while we hold the lock
                self._cleanup_leftovers()
                raise
            report.finished_at = self.clock()
            frame.done(DrillOutcome(report, self.runner.mask), report.finished_at)
        return report

    # -- scratch space -------------------------------------------------------------------

    def _check_drill_dir(self) -> None:
        d = self.s.drill_dir
        if d is None:
            return
        resolved = Path(os.path.realpath(d))
        base = Path(os.path.realpath(self.s.zfs_base_mountpoint))
        if resolved == base or base in resolved.parents:
            raise ValidationError(f"DRILL_DIR {d} is inside ZFS_BASE_MOUNTPOINT {base}: a drill never writes into "
                                  "a service dataset; choose a directory elsewhere")

    def _scratch(self, service: str, stamp: str) -> tuple[Path, str | None]:
        """(path, scratch dataset or None): an empty place to extract into."""
        if self.s.drill_dir is not None:
            path = self.s.drill_dir / f"{service}-{stamp}"
            path.mkdir(parents=True, mode=0o700)
            return path, None
        path = self.s.view_mountpoint / f"drill-{service}"
        dataset = self.zfs.create_scratch(self.s.view_dataset, service, path)
        os.chmod(path, 0o700)
        return path, dataset

    def _remove_scratch(self, path: Path, dataset: str | None) -> None:
        if dataset:
            self.zfs.destroy_scratch(self.s.view_dataset, dataset)
        else:
            shutil.rmtree(path, ignore_errors=True)

    def _cleanup_leftovers(self) -> None:
        """A killed drill's views and scratch datasets (only ours: below the view parent)."""
        for dataset in self.zfs.clear_leftovers(self.s.view_dataset):
            self.echo(f"removed what an earlier run left: {dataset}")
        if self.s.drill_dir is not None and self.s.drill_dir.is_dir():
            ours = re.compile(rf"^({'|'.join(map(re.escape, self.s.services))})-\d{{8}}T\d{{6}}Z$")
            for entry in self.s.drill_dir.iterdir():
                if entry.is_dir() and not entry.is_symlink() and ours.match(entry.name):
                    self.echo(f"removing what an earlier drill left in DRILL_DIR: {entry}")
                    shutil.rmtree(entry, ignore_errors=True)

    # -- one service ---------------------------------------------------------------------

    def _one(self, service: str) -> DrillResult:
        result = DrillResult(service)
        started = time.monotonic()
        stamp = time.strftime(SNAPSHOT_TIME, time.gmtime(self.clock()))
        scratch: tuple[Path, str | None] | None = None
        view = f"{self.s.view_dataset}/{service}"
        view_made = False
        try:
            kept = self.state.kept().get(service) if self.s.keep_last_snapshot else None
            archive = latest_archive(self.borg.list_archives(service), service, kept.archive if kept else None)
            if archive is None:
                raise ValidationError(f"no archive in {self.s.repo(service)}")
            result.archive = archive
            snapshot = f"{self.s.dataset(service)}@{kept.snapshot}" if kept else ""
            why_not = self._why_not_comparable(kept, archive, snapshot)
            scratch = self._scratch(service, stamp)
            try:
                self.borg.extract(service, archive, scratch[0], force=True,
                                  progress=self.progress.start(service, "extract"))
            finally:
                self.progress.finish(service)
            if why_not:
                self.borg.check(service, verify_data=True)
                for _rel, st in walk(scratch[0]):
                    result.entries += 1
                    result.bytes += st.st_size if stat.S_ISREG(st.st_mode) else 0
                result.mode = VERIFIED
                result.message = (f"not compared ({why_not}); borg check --verify-data passed and the archive "
                                  f"extracted fully ({result.entries} entries)")
                if self._boot_too:
                    self._boot(service, scratch[0], result)
                return result
            view_path = self.s.view_mountpoint / service
            self.zfs.create_view(snapshot, view, view_path)
            view_made = True
            result.snapshot = snapshot
            cmp = compare_trees(view_path, scratch[0], frozenset({STACK_PREFIX}))
            differences = list(cmp.differences)
            stack_root = scratch[0] / STACK_PREFIX
            if kept.stack is not None:
                actual = stack_manifest(stack_root, self.state.manifest_key()) if stack_root.is_dir() else {}
                differences += [f"{STACK_PREFIX}/{d}" for d in manifest_differences(kept.stack, actual)]
                result.entries += len(kept.stack)
            result.entries += cmp.entries
            result.bytes = cmp.bytes
            result.differences = len(differences)
            result.first_differences = differences[:SHOWN]
            result.mode = COMPARED if not differences else FAILED
            if differences:
                result.message = f"{len(differences)} difference(s) between {archive} and {snapshot}"
            elif self._boot_too:
                self._boot(service, scratch[0], result)
        except OrchestratorError as exc:
            result.mode = FAILED
            result.message = brief(exc)
        except OSError as exc:
            result.mode = FAILED
            result.message = f"reading the extracted archive failed: {exc}"
        finally:
            result.duration = time.monotonic() - started
            for step in (lambda: self.zfs.destroy_view(view) if view_made else None,
                         lambda: self._remove_scratch(*scratch) if scratch else None):
                try:
                    step()
                except OrchestratorError as exc:
                    result.mode = FAILED
                    result.message = (result.message + "; " if result.message else "") + f"cleanup: {exc}"
        return result

    # -- the boot drill ------------------------------------------------------------------

    def _boot(self, service: str, restored: Path, result: DrillResult) -> None:
        """Start the restored stack as a throwaway, isolated stack (stacks.sandbox) from compose's
        model of the archived stack folder; healthy, and its declared probe passes, or the drill
        fails naming why. Torn down whatever happens; the live stack is never touched."""
        folder = restored / STACK_PREFIX
        if not any((folder / f).is_file() for f in COMPOSE_FILES):
            result.boot = "nothing to boot (no stack folder in the archive)"
            return
        project = "drill-" + re.sub(r"[^a-z0-9_-]", "-", service.lower())
        file = folder / SANDBOX_FILE
        started = time.monotonic()
        fresh_root = restored / ".orchestrator-drill-fresh"

        def fresh(key: str) -> Path:
            path = fresh_root / key
            path.mkdir(parents=True, exist_ok=True)
            return path

        up = False
        try:
            model = self.docker.resolved_model(folder, project)
            sandbox = sandbox_model(model, project=project, base=self.s.zfs_base_mountpoint,
                                    dataset_dir=self.s.mountpoint(service), restored=restored, stack_copy=folder,
                                    fresh=fresh)
            file.write_text(json.dumps(sandbox, indent=2))
            self.echo(f"{service}: booting the restored stack as {project}")
            up = True
            started_up = self.docker.sandbox_up(project, file)
            if not started_up.ok:
                raise OrchestratorError(f"the restored stack did not come up: {started_up.message}")
            probe, problems = drill_probe(model)
            if problems:
                raise ValidationError("; ".join(problems))
            said = ""
            if probe:
                out = self.docker.sandbox_exec(project, file, probe.service, probe.command,
                                               timeout=float(self.s.health_timeout))
                said = f", probe: {(out.strip().splitlines() or [''])[-1][:80]}"
            result.booted = True
            result.boot = f"booted healthy in {time.monotonic() - started:.1f}s{said}"
        except OrchestratorError as exc:
            result.booted = False
            result.boot = f"FAILED: {brief(exc)}"
        finally:
            result.boot_duration = time.monotonic() - started
            if up:
                try:
                    self.docker.sandbox_down(project, file)
                except OrchestratorError as exc:
                    result.booted = False
                    result.boot += f"; teardown: {brief(exc)}"

    def _why_not_comparable(self, kept: Kept | None, archive: str, snapshot: str) -> str:
        if not self.s.keep_last_snapshot:
            return "KEEP_LAST_SNAPSHOT=0: the snapshot of the archive is not kept"
        if not kept:
            return "no kept snapshot is recorded for this service"
        if kept.archive != archive:
            return f"the kept snapshot belongs to {kept.archive or 'another archive'}, not {archive}"
        if not self.zfs.exists(snapshot):
            return f"{snapshot} no longer exists"
        return ""
