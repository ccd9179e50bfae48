"""What a backup run reports: the summary table, JSON, a Prometheus textfile and push pings.

Pure functions over a `RunReport`, plus two small writers (textfile, push URL) whose
failures are warnings: monitoring must never turn a good backup into a failed one.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

log = logging.getLogger("orchestrator.report")

OK, WARNING, FAILED, SKIPPED, UNCHANGED = "ok", "warning", "failed", "skipped", "unchanged"
GOOD = (OK, WARNING, UNCHANGED)  # the dataset is held by an archive as it is now


@dataclass
class DatasetResult:
    service: str
    result: str = SKIPPED
    archive: str = ""
    duration: float = 0.0
    nfiles: int | None = None
    original_size: int | None = None
    deduplicated_size: int | None = None
    files_read: int | None = None  # files borg read (the rest were skipped by its files cache)
    pruned: bool = False
    compacted: bool = False
    message: str = ""
    archives: int | None = None  # the service's archives after prune


@dataclass
class RunReport:
    started_at: float
    snapshot: str = ""
    downtime: float | None = None
    stopped_stacks: list[str] = field(default_factory=list)
    restarted_stacks: list[str] = field(default_factory=list)
    stack_failures: list[str] = field(default_factory=list)
    live_stacks: list[str] = field(default_factory=list)  # backed up running (x-orchestrator consistency: live)
    stack_downtime: dict[str, float] = field(default_factory=dict)  # stack -> stop issued .. healthy again
    notes: list[str] = field(default_factory=list)  # worth reading, not a failure (a live stack fell back)
    datasets: list[DatasetResult] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    finished_at: float | None = None
    interrupted: str = ""

    @property
    def ok(self) -> bool:
        return (
            not self.errors
            and not self.stack_failures
            and not self.interrupted
            and all(d.result in GOOD for d in self.datasets)
        )

    def to_dict(self) -> dict:
        data = asdict(self)
        data["ok"] = self.ok
        return data


def human_size(n: int | None) -> str:
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(size) < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"  # pragma: no cover


def age(seconds: float | None) -> str:
    """'42m', '5h', '35h', '3d': hours up to three days, so 36 h reads as hours. (Standard
    library only, like this module: `management.fleet` uses it on the controller.)"""
    if seconds is None:
        return "?"
    seconds = max(0.0, seconds)
    if seconds < 3600:
        return f"{int(seconds // 60)}m"
    if seconds < 72 * 3600:
        return f"{int(seconds // 3600)}h"
    return f"{int(seconds // 86400)}d"


def render_table(report: RunReport) -> str:
    header = ("service", "result", "duration", "files", "original", "deduplicated", "note")
    rows = [header]
    for d in report.datasets:
        note = d.message.splitlines()[0] if d.message else ""
        files = "-" if d.nfiles is None else str(d.nfiles)
        if d.files_read is not None and d.nfiles is not None:
            files += f" ({d.files_read} read)"
        size, dedup = human_size(d.original_size), human_size(d.deduplicated_size)
        rows.append((d.service, d.result, f"{d.duration:.1f}s", files, size, dedup, note))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    downtime = "n/a (stacks not stopped)" if report.downtime is None else f"{report.downtime:.1f}s"
    lines.append("")
    lines.append(f"snapshot: {report.snapshot or '-'}    downtime: {downtime}    "
                 f"stacks stopped/restarted: {len(report.stopped_stacks)}/{len(report.restarted_stacks)}")
    if report.live_stacks:
        lines.append(f"live (not stopped): {', '.join(report.live_stacks)}")
    if report.stack_downtime:
        per_stack = ", ".join(f"{k} {v:.1f}s" for k, v in sorted(report.stack_downtime.items()))
        lines.append(f"downtime per stack: {per_stack}")
    for note in report.notes:
        lines.append(f"note: {note}")
    for failure in report.stack_failures:
        lines.append(f"stack problem: {failure}")
    for error in report.errors:
        lines.append(f"error: {error}")
    if report.interrupted:
        lines.append(f"interrupted: {report.interrupted}")
    failed = [d.service for d in report.datasets if d.result == FAILED]
    verdict = "OK" if report.ok else "FAILED" + (f" ({', '.join(failed)})" if failed else "")
    lines.append(f"result: {verdict}")
    return "\n".join(lines)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def prometheus_text(report: RunReport, last_success: dict[str, float]) -> str:
    """node_exporter textfile collector format. `last_success` carries earlier successes so
    a failed night does not reset a service's last-success time."""
    metrics = {
        "orchestrator_backup_success": ("gauge", "1 if the last backup of the service succeeded"),
        "orchestrator_backup_last_success_timestamp_seconds": ("gauge", "Unix time of the last successful backup"),
        "orchestrator_backup_duration_seconds": ("gauge", "Seconds borg create/prune took in the last run"),
        "orchestrator_backup_files": ("gauge", "Files in the last archive"),
        "orchestrator_backup_original_bytes": ("gauge", "Original size of the last archive"),
        "orchestrator_backup_deduplicated_bytes": ("gauge", "Bytes the last archive added to the repository"),
        "orchestrator_backup_downtime_seconds": ("gauge", "Stacks down time of the last run (stop to start)"),
    }
    lines: list[str] = []
    for name, (kind, help_text) in metrics.items():
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        for d in report.datasets:
            label = f'{{service="{_escape(d.service)}"}}'
            value: float | int | None
            if name == "orchestrator_backup_success":
                value = int(d.result in GOOD)
            elif name == "orchestrator_backup_last_success_timestamp_seconds":
                value = last_success.get(d.service)
            elif name == "orchestrator_backup_duration_seconds":
                value = round(d.duration, 3)
            elif name == "orchestrator_backup_files":
                value = d.nfiles
            elif name == "orchestrator_backup_original_bytes":
                value = d.original_size
            elif name == "orchestrator_backup_deduplicated_bytes":
                value = d.deduplicated_size
            else:
                value = None if report.downtime is None else round(report.downtime, 3)
            if value is not None:
                lines.append(f"{name}{label} {value}")
    return "\n".join(lines) + "\n"


def write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    """Write via a temp file in the same directory and rename: never a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def read_state(path: Path) -> dict:
    """A JSON state file as a dict; a missing or unreadable one is empty (no run wrote it yet)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def load_last_success(state_file: Path) -> dict[str, float]:
    try:
        return {str(k): float(v) for k, v in read_state(state_file).items()}
    except (TypeError, ValueError):
        return {}


def push_url_for(base: str, event: str) -> str:
    """healthchecks.io / Uptime Kuma style: start -> <url>/start, failure -> <url>/fail,
    success -> <url>. A URL with a query string (Uptime Kuma's ?status=up) gets status=down
    on failure instead."""
    if "?" in base:
        if event == "start":
            return ""
        return base.replace("status=up", "status=down") if event == "fail" else base
    base = base.rstrip("/")
    return {"start": f"{base}/start", "fail": f"{base}/fail"}.get(event, base)


def push(base: str | None, event: str, body: str = "", timeout: float = 10.0) -> str | None:
    """Ping the push URL. Returns a warning (without the URL: it carries a token) or None."""
    if not base:
        return None
    url = push_url_for(base, event)
    if not url:
        return None
    try:
        request = urllib.request.Request(url, data=body.encode()[:10000] or None, method="POST" if body else "GET")
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - http(s) checked in config
            response.read(1024)
        return None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or type(exc).__name__
        return f"push ({event}) failed: {reason}"
