"""The static status page: one self-contained HTML file (inline CSS, inline SVG charts, no
script), one row per service with its verdict in colour, its last backup's age, its archive
count and its last nights' archive sizes, durations and changed files (modified + deleted, with
the last night's `+added ~modified -deleted`) as small charts; below it, its restore
points (the local history snapshots with their consistency, the newest archives the state
knows) and the commands that get one path back (`make versions` / `make restore-path`).
Pure: rows in, text out; publish writes it into STATUS_PAGE_DIR (atomically), `status --html
FILE` on demand. Nothing here asks borg or zfs: the restore points are what the runs recorded.

Every text that comes from outside (service names, reasons, the host name) is escaped."""

from __future__ import annotations

import html
from dataclasses import dataclass, field

from management.state import CRASH_CONSISTENT, NIGHTS_KEPT, Night
from management.text import age, human_size
from management.verdict import PROTECTED

GREEN, RED = "#1a7f37", "#cf222e"  # the verdict colours (the lab test looks for these exact pixels)
PAGE_FILE = "index.html"
CHART_W, CHART_H = 150, 32
COLUMNS = 7  # the table's columns (the restore points span them)


@dataclass
class PageRow:
    service: str
    verdict: str  # PROTECTED or AT RISK
    risks: list[str] = field(default_factory=list)
    last_backup_age: float | None = None  # seconds; None: never
    archives: int | None = None
    nights: list[Night] = field(default_factory=list)  # StateStore.nights() entries, oldest first
    # restore points (publish.restore_points): history snapshots {snapshot, consistency, archive,
    # age_seconds}, oldest first, and the newest archive names the state knows, oldest first
    snapshots: list[dict] = field(default_factory=list)
    archive_names: list[str] = field(default_factory=list)


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def sparkline(values: list[float | None], label: str, fmt) -> str:
    """A small SVG bar chart of `values`, oldest left, one slot per night of NIGHTS_KEPT with the
    newest at the right edge (so rows line up), scaled to the largest; None (a night without a
    value) leaves its slot empty. The newest value is written after it; a dash when there is
    nothing to draw."""
    known = [v for v in values if v is not None]
    if not known:
        return '<span class="none">-</span>'
    values = values[-NIGHTS_KEPT:]
    top = max(known) or 1.0
    slot = CHART_W / NIGHTS_KEPT
    bars = []
    for i, v in enumerate(values):
        if v is None:
            continue
        h = max(1.0, v / top * (CHART_H - 2))
        x = CHART_W - (len(values) - i) * slot
        colour = "#0969da" if i == len(values) - 1 else "#8c959f"
        bars.append(f'<rect x="{x:.1f}" y="{CHART_H - h:.1f}" width="{slot - 1:.1f}" height="{h:.1f}" '
                    f'fill="{colour}"/>')
    title = f"{label}: {len(known)} night(s), last {fmt(known[-1])}, max {fmt(top)}"
    return (f'<svg class="spark" width="{CHART_W}" height="{CHART_H}" viewBox="0 0 {CHART_W} {CHART_H}" '
            f'role="img" aria-label="{_e(title)}"><title>{_e(title)}</title>{"".join(bars)}</svg>'
            f'<span class="val">{_e(fmt(known[-1]))}</span>')


def _seconds(value: float) -> str:
    if value < 10:
        return f"{value:.1f}s"
    return f"{value:.0f}s" if value < 120 else age(value)


def _touched(night: Night) -> int | None:
    """A night's modified + deleted files (what the mass-change guard weighs), None when unrecorded."""
    return None if night.changed is None else night.changed.touched


def changes(nights: list[Night]) -> str:
    """The modified + deleted files of each night as a chart, then the last night's `+added
    ~modified -deleted`, marked when the mass-change guard held it."""
    last = next((n.changed for n in reversed(nights) if n.changed is not None), None)
    if last is None:
        return '<span class="none">-</span>'
    deleted = "?" if last.deleted is None else f"{last.deleted:,}"
    text = f"+{last.added or 0:,} ~{last.modified or 0:,} -{deleted}"
    chart = sparkline([_touched(n) for n in nights], "files modified or deleted", lambda v: f"{int(v):,}")
    mark = ' <span class="mass">mass change</span>' if last.held else ""
    return f'{chart}<span class="val">{_e(text)}</span>{mark}'


def _row(r: PageRow) -> str:
    ok = r.verdict == PROTECTED
    badge = f'<span class="badge {"ok" if ok else "risk"}">{_e(r.verdict)}</span>'
    why = "".join(f"<li>{_e(reason)}</li>" for reason in r.risks)
    backup = "never" if r.last_backup_age is None else f"{age(r.last_backup_age)} ago"
    sizes = sparkline([n.bytes for n in r.nights], "archive size", lambda v: human_size(int(v)))
    durations = sparkline([n.duration for n in r.nights], "duration", _seconds)
    return (f'<tr class="service"><th scope="row">{_e(r.service)}</th>'
            f'<td>{badge}{f"<ul>{why}</ul>" if why else ""}</td>'
            f"<td>{_e(backup)}</td><td>{_e('-' if r.archives is None else r.archives)}</td>"
            f'<td class="chart">{sizes}</td><td class="chart">{durations}</td>'
            f'<td class="chart">{changes(r.nights)}</td></tr>')


def restore_points(r: PageRow, columns: int) -> str:
    """The service's restore points under its row, folded (`<details>`: no script), and the
    commands that bring one path back."""
    snaps = r.snapshots
    crash = sum(p.get("consistency") == CRASH_CONSISTENT for p in snaps)
    summary = (f"Restore points: {len(snaps)} snapshot(s) on this machine"
               + (f" ({crash} crash-consistent)" if crash else "")
               + f", {len(r.archive_names)} newest archive(s)")
    items = []
    for p in reversed(snaps):  # newest first
        consistency = p.get("consistency") or "consistent"
        note = " (taken with the stack running)" if consistency == CRASH_CONSISTENT else ""
        when = "?" if p.get("age_seconds") is None else f"{age(p['age_seconds'])} ago"
        items.append(f'<li>snapshot <code>{_e(p.get("snapshot"))}</code>, {_e(when)}, '
                     f'<span class="{"crash" if note else "cons"}">{_e(consistency)}</span>{_e(note)}</li>')
    for name in reversed(r.archive_names):
        items.append(f"<li>archive <code>{_e(name)}</code></li>")
    listing = f"<ul class=\"points\">{''.join(items)}</ul>" if items else '<p class="none">none recorded yet</p>'
    svc = _e(r.service)
    commands = (f'<p class="cmd">One path back: <code>make versions SERVICE_NAME={svc} FILE=&lt;path&gt;</code>, '
                f"then <code>make restore-path SERVICE_NAME={svc} FILE=&lt;path&gt; [WHEN=&lt;snapshot or archive"
                "&gt;]</code></p>")
    return (f'<tr class="restore"><td colspan="{columns}"><details><summary>{_e(summary)}</summary>'
            f"{listing}{commands}</details></td></tr>")


CSS = f"""
body {{ font: 15px/1.4 system-ui, sans-serif; margin: 2rem; color: #1f2328; background: #fff; }}
h1 {{ font-size: 1.4rem; margin: 0 0 .2rem; }}
p.meta {{ color: #57606a; margin: 0 0 1.2rem; }}
table {{ border-collapse: collapse; }}
th, td {{ text-align: left; vertical-align: top; padding: .55rem .9rem; border-bottom: 1px solid #d0d7de; }}
thead th {{ font-size: .8rem; text-transform: uppercase; color: #57606a; }}
.badge {{ display: inline-block; padding: .25rem .7rem; border-radius: 4px; color: #fff; font-weight: 700; }}
.badge.ok {{ background: {GREEN}; }}
.badge.risk {{ background: {RED}; }}
ul {{ margin: .3rem 0 0; padding-left: 1.1rem; color: {RED}; font-size: .85rem; }}
.chart {{ white-space: nowrap; }}
.spark {{ vertical-align: bottom; }}
.val {{ margin-left: .4rem; font-size: .85rem; color: #57606a; }}
.none {{ color: #8c959f; }}
.mass {{ color: {RED}; font-weight: 700; font-size: .85rem; }}
tr.restore td {{ padding-top: 0; font-size: .85rem; }}
ul.points {{ color: #1f2328; margin: .3rem 0; }}
.crash {{ color: #9a6700; }}
.cmd code, ul.points code {{ font-size: .8rem; }}
"""


def render(rows: list[PageRow], *, host: str, generated: str) -> str:
    """The whole page. `generated`: when, as the reader should see it (UTC text)."""
    at_risk = sum(r.verdict != PROTECTED for r in rows)
    summary = (f"{len(rows)} service(s), {at_risk} at risk" if at_risk
               else f"{len(rows)} service(s), all protected")
    body = "\n".join(_row(r) + restore_points(r, COLUMNS) for r in rows)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Backups: {_e(host)}</title>
<style>{CSS}</style>
</head>
<body>
<h1>Backups on {_e(host)}</h1>
<p class="meta">{_e(summary)} &middot; written {_e(generated)} &middot; charts: the last nights, oldest left</p>
<table>
<thead><tr><th>Service</th><th>Verdict</th><th>Last backup</th><th>Archives</th><th>Archive size</th>
<th>Duration</th><th>Changed</th></tr></thead>
<tbody>
{body}
</tbody>
</table>
</body>
</html>
"""
