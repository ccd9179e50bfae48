"""DrillOrchestrator: a backup counts only when a restore was seen to work.

For each service: extract its latest archive into scratch space (a temporary dataset below the
view parent, or DRILL_DIR; never a service dataset), and compare every entry with the snapshot
that archive was made from (KEEP_LAST_SNAPSHOT keeps it), read through a read-only view:
type, mode, owner, group, size, content byte for byte, symlink target, hard links. The stack
folder in the archive is compared with the manifest recorded when the archive was made.
Where that snapshot is gone, fall back to `borg check --verify-data` plus the full extract, and
say that no comparison was made. The scratch space and the view are removed afterwards.

Results go to STATE_DIR/drills.json and, beside PROMETHEUS_TEXTFILE, <name>_drill.prom.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .backup_manager import brief, load_kept
from .borg_manager import STACK_PREFIX
from .config import Settings
from .errors import OrchestratorError, ValidationError
from .lock import RunLock
from .notify import drill_message, notify
from .progress import Progress
from .report import _escape, human_size, read_state, write_atomic
from .restore_manager import latest_archive
from .trees import compare_trees, manifest_differences, manifest_key, stack_manifest, walk

COMPARED, VERIFIED, FAILED = "compared", "verified", "failed"
SHOWN = 5  # differences named per service; the count says how many there were


@dataclass
class DrillResult:
    service: str
    archive: str = ""
    snapshot: str = ""
    mode: str = FAILED  # compared (with the snapshot) | verified (check + extract only) | failed
    entries: int = 0
    bytes: int = 0
    differences: int = 0
    first_differences: list[str] = field(default_factory=list)
    duration: float = 0.0
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.mode != FAILED

    def line(self) -> str:
        head = f"{self.service}: {'OK' if self.ok else 'FAILED'}"
        if self.mode == COMPARED:
            body = (f"{self.archive} == {self.snapshot}: {self.entries} entries, {human_size(self.bytes)} compared"
                    if not self.differences else
                    f"{self.archive} != {self.snapshot}: {self.differences} difference(s) in {self.entries} entries: "
                    + "; ".join(self.first_differences))
        elif self.mode == VERIFIED:
            body = f"{self.archive}: {self.message}"
        else:
            body = (f"{self.archive}: " if self.archive else "") + (self.message or "failed") + (
                (": " + "; ".join(self.first_differences)) if self.first_differences else "")
        return f"{head} {body} ({self.duration:.1f}s)"


@dataclass
class DrillReport:
    results: list[DrillResult] = field(default_factory=list)
    started_at: float = 0.0
    finished_at: float = 0.0

    @property
    def ok(self) -> bool:
        return bool(self.results) and all(r.ok for r in self.results)

    def to_dict(self) -> dict:
        return {"ok": self.ok, "started_at": self.started_at, "finished_at": self.finished_at,
                "services": [{**asdict(r), "ok": r.ok} for r in self.results]}

    def summary(self) -> str:
        failed = [r.service for r in self.results if not r.ok]
        lines = [r.line() for r in self.results]
        lines.append("drill: OK" if self.ok else f"drill: FAILED ({', '.join(failed) or 'nothing drilled'})")
        return "\n".join(lines)


def drill_textfile(backup_textfile: Path) -> Path:
    """Beside the backup metrics: <name>_drill.prom."""
    return backup_textfile.with_name(f"{backup_textfile.stem}_drill{backup_textfile.suffix or '.prom'}")


def drill_prometheus_text(state: dict[str, dict]) -> str:
    """node_exporter textfile format, one series per service from STATE_DIR/drills.json."""
    metrics = (
        ("orchestrator_drill_success", "1 if the last restore drill of the service passed", "ok"),
        ("orchestrator_drill_last_run_timestamp_seconds", "Unix time of the last restore drill", "time"),
        ("orchestrator_drill_last_success_timestamp_seconds", "Unix time of the last passed restore drill",
         "last_success"),
        ("orchestrator_drill_differences", "Entries that differed in the last restore drill", "differences"),
        ("orchestrator_drill_entries", "Entries compared in the last restore drill", "entries"),
        ("orchestrator_drill_bytes", "Bytes compared in the last restore drill", "bytes"),
    )
    lines: list[str] = []
    for name, help_text, key in metrics:
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
        for service, entry in sorted(state.items()):
            value = entry.get(key)
            if value is None:
                continue
            lines.append(f'{name}{{service="{_escape(service)}"}} {int(value) if isinstance(value, bool) else value}')
    return "\n".join(lines) + "\n"


def load_drills(state_dir: Path) -> dict[str, dict]:
    data = read_state(state_dir / "drills.json")
    return {k: v for k, v in data.items() if isinstance(v, dict)}


class DrillOrchestrator:
    def __init__(self, settings: Settings, runner, zfs, borg,
                 echo: Callable[[str], None] = print, clock: Callable[[], float] = time.time,
                 progress: Progress | None = None):
        self.s = settings
        self.runner = runner
        self.zfs = zfs
        self.borg = borg
        self.echo = echo
        self.clock = clock
        self.progress = progress or Progress(echo, interval=settings.progress_interval)

    def drill(self, services: Sequence[str] | None = None, *, wait: float = 0.0) -> DrillReport:
        targets = list(services) if services else list(self.s.services)
        unknown = [t for t in targets if t not in self.s.services]
        if unknown:
            raise ValidationError(f"unknown service(s) {', '.join(map(repr, unknown))}; "
                                  f"known: {', '.join(self.s.services)}")
        self._check_drill_dir()
        report = DrillReport(started_at=self.clock())
        with RunLock(self.s.lock_file, "drill", wait=wait):
            self._cleanup_leftovers()
            self.zfs.ensure_view_parent(self.s.view_dataset)
            for service in targets:
                self.echo(f"{service}: drilling")
                with self.progress:
                    result = self._one(service)
                report.results.append(result)
                self.echo(result.line())
        report.finished_at = self.clock()
        self._publish(report)
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
        for view in self.zfs.list_views(self.s.view_dataset):
            self.zfs.destroy_view(view)
        for dataset in self.zfs.list_scratch(self.s.view_dataset):
            self.echo(f"removing a scratch dataset an earlier drill left: {dataset}")
            self.zfs.destroy_scratch(self.s.view_dataset, dataset)
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
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self.clock()))
        scratch: tuple[Path, str | None] | None = None
        view = f"{self.s.view_dataset}/{service}"
        view_made = False
        try:
            archive = latest_archive(self.borg.list_archives(service), service)
            if archive is None:
                raise ValidationError(f"no archive in {self.s.repo(service)}")
            result.archive = archive
            kept = load_kept(self.s.state_dir).get(service) if self.s.keep_last_snapshot else None
            snapshot = f"{self.s.dataset(service)}@{kept['snapshot']}" if kept else ""
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
                return result
            view_path = self.s.view_mountpoint / service
            self.zfs.create_view(snapshot, view, view_path)
            view_made = True
            result.snapshot = snapshot
            cmp = compare_trees(view_path, scratch[0], frozenset({STACK_PREFIX}))
            differences = list(cmp.differences)
            stack_root = scratch[0] / STACK_PREFIX
            if kept.get("stack") is not None:
                actual = stack_manifest(stack_root, manifest_key(self.s.state_dir)) if stack_root.is_dir() else {}
                differences += [f"{STACK_PREFIX}/{d}" for d in manifest_differences(kept["stack"], actual)]
                result.entries += len(kept["stack"])
            result.entries += cmp.entries
            result.bytes = cmp.bytes
            result.differences = len(differences)
            result.first_differences = differences[:SHOWN]
            result.mode = COMPARED if not differences else FAILED
            if differences:
                result.message = f"{len(differences)} difference(s) between {archive} and {snapshot}"
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

    def _why_not_comparable(self, kept: dict | None, archive: str, snapshot: str) -> str:
        if not self.s.keep_last_snapshot:
            return "KEEP_LAST_SNAPSHOT=0: the snapshot of the archive is not kept"
        if not kept:
            return "no kept snapshot is recorded for this service"
        if kept.get("archive") != archive:
            return f"the kept snapshot belongs to {kept.get('archive') or 'another archive'}, not {archive}"
        if not self.zfs.exists(snapshot):
            return f"{snapshot} no longer exists"
        return ""

    # -- results -------------------------------------------------------------------------

    def _publish(self, report: DrillReport) -> None:
        state = load_drills(self.s.state_dir)
        for r in report.results:
            previous = state.get(r.service, {})
            state[r.service] = {
                "time": report.finished_at, "ok": r.ok, "mode": r.mode, "archive": r.archive,
                "entries": r.entries, "bytes": r.bytes, "differences": r.differences,
                "message": self.runner.mask(r.message),
                "last_success": report.finished_at if r.ok else previous.get("last_success"),
            }
        try:
            write_atomic(self.s.state_dir / "drills.json", json.dumps(state, indent=2))
            if self.s.prometheus_textfile:
                write_atomic(drill_textfile(self.s.prometheus_textfile), drill_prometheus_text(state))
        except OSError as exc:
            self.echo(f"warning: could not write the drill state: {exc}")
        notify(self.s, drill_message(report), self.runner.mask, self.echo)
