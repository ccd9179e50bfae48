"""The backup run's summary table, as `make backup-all` prints it."""

from __future__ import annotations

from management.results import FAILED, RunReport
from management.text import human_size


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
    for service, reason in sorted(report.held.items()):
        lines.append(f"prune held: {service}: {reason}; every archive kept until "
                     f"`make release-prune SERVICE_NAME={service}`")
    for stack in sorted(report.uncovered):
        lines += [f"not backed up: {line}" for line in report.uncovered[stack]]
    for failure in report.stack_failures:
        lines.append(f"stack problem: {failure}")
    for error in report.errors:
        lines.append(f"error: {error}")
    if report.interrupted:
        lines.append(f"interrupted: {report.interrupted}")
    failed = [d.service for d in report.datasets if d.result == FAILED] + \
        [f"{s}: data not backed up" for s in sorted(report.uncovered)] + \
        [f"{s}: prune held" for s in sorted(report.held)]
    verdict = "OK" if report.ok else "FAILED" + (f" ({', '.join(failed)})" if failed else "")
    lines.append(f"result: {verdict}")
    return "\n".join(lines)
