"""`make fleet-status` / `make fleet-backup`: one line per host from what Ansible collected.

Ansible does the fleet work (deploy/ansible/fleet-status.yml, fleet-backup.yml): it runs each
host's own `orchestrator.py status --json` or `backup --json` and writes one file per host into
a results directory: the command's rc, stdout and stderr, or `unreachable` and Ansible's message.
This module only reads those files and summarises them; it starts nothing and talks to no host.

A host that did not answer, or whose command failed, is a row saying so: the others are still
reported. The exit code says whether every host answered (status) or backed up (backup).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from management.text import age


@dataclass
class HostRow:
    host: str
    ok: bool
    cells: dict[str, str]


def load_results(results_dir: Path) -> dict[str, dict]:
    """host -> the record the playbook wrote (one <host>.json each), sorted by host."""
    records = {}
    for path in sorted(results_dir.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            data = {"failed": True, "msg": f"unreadable result {path.name}: {exc}"}
        records[path.stem] = data if isinstance(data, dict) else {"failed": True, "msg": "not a JSON object"}
    return records


def _failure(record: dict) -> str | None:
    """Why the host gave no usable answer, or None when it did."""
    if record.get("unreachable"):
        return "UNREACHABLE: " + _first_line(record.get("msg", ""))
    if record.get("skipped"):
        return "skipped: " + _first_line(record.get("skip_reason", ""))
    if "rc" not in record:
        return "FAILED: " + _first_line(record.get("msg", "no result"))
    return None


def _first_line(text: str) -> str:
    text = (text or "").strip()
    return text.splitlines()[0][:160] if text else ""


def _payload(record: dict) -> dict | None:
    try:
        data = json.loads(record.get("stdout") or "")
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def status_row(host: str, record: dict) -> HostRow:
    """stacks running, oldest last good backup, stale services, last drill, problems."""
    failure = _failure(record)
    report = None if failure else _payload(record)
    if report is None:
        why = failure or f"FAILED rc={record.get('rc')}: " + _first_line(record.get("stderr") or record.get("stdout"))
        return HostRow(host, False, {"note": why})
    services = report.get("services") or []
    stacks = [s["stack"] for s in services if s.get("stack")]
    running = sum(1 for st in stacks if st.get("state") == "running")
    backups = [s["last_backup"] for s in services if s.get("last_backup") is not None]
    ages = [b.get("age_seconds") for b in backups]
    if not backups:
        backup = "-"
    elif any(a is None for a in ages):
        backup = "never"
    else:
        backup = f"{age(max(ages))} ago"
    drills = [s["drill"] for s in services if s.get("drill")]
    if not drills:
        drill = "never"
    else:
        verdict = "ok" if all(d.get("ok") for d in drills) else "FAILED"
        drill = f"{verdict} {age(max(d.get('age_seconds') or 0 for d in drills))} ago"
    stale = report.get("stale") or []
    problems = report.get("problems") or []
    return HostRow(host, True, {
        "stacks": f"{running}/{len(stacks)} running",
        "oldest backup": backup,
        "stale": ",".join(stale) if stale else "-",
        "drill": drill,
        "note": f"{len(problems)} problem(s): {_first_line(problems[0])}" if problems else "",
    })


def backup_row(host: str, record: dict) -> HostRow:
    """ok / FAILED, datasets backed up, downtime, the first error."""
    failure = _failure(record)
    if failure:
        return HostRow(host, False, {"result": failure.split(":")[0], "note": failure})
    report = _payload(record)
    rc = record.get("rc")
    if report is None:
        return HostRow(host, False, {"result": "FAILED",
                                     "note": f"rc={rc}: " + _first_line(record.get("stderr") or record.get("stdout"))})
    datasets = report.get("datasets") or []
    good = [d for d in datasets if d.get("result") in ("ok", "unchanged")]
    ok = bool(report.get("ok")) and rc == 0
    errors = report.get("errors") or [f"{d['service']}: {d.get('message', '')}" for d in datasets if d not in good]
    downtime = report.get("downtime")
    return HostRow(host, ok, {
        "result": "ok" if ok else "FAILED",
        "datasets": f"{len(good)}/{len(datasets)}",
        "downtime": "-" if downtime is None else f"{downtime:.1f}s",
        "note": "" if ok else _first_line(errors[0] if errors else f"rc={rc}"),
    })


def render(rows: list[HostRow]) -> str:
    columns = ["host"] + list(dict.fromkeys(k for r in rows for k in r.cells))
    table = [columns] + [[r.host] + [r.cells.get(c, "") for c in columns[1:]] for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
                     for line in table)


def summarise(kind: str, results_dir: Path, expected: list[str] | None = None) -> tuple[str, int]:
    """The table and the exit code: 0 when every host answered (status) / backed up (backup)."""
    records = load_results(results_dir)
    for host in expected or []:
        records.setdefault(host, {"failed": True, "msg": "no result written (the play stopped before this host)"})
    make_row = status_row if kind == "status" else backup_row
    rows = [make_row(host, records[host]) for host in sorted(records)]
    if not rows:
        return f"fleet-{kind}: no host results in {results_dir}", 1
    bad = [r.host for r in rows if not r.ok]
    verb = "answered" if kind == "status" else "backed up"
    footer = f"fleet-{kind}: {len(rows) - len(bad)}/{len(rows)} host(s) {verb}" + (
        f"; not: {', '.join(bad)}" if bad else "")
    return render(rows) + "\n" + footer, 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 2 or args[0] not in ("status", "backup"):
        print("usage: python -m management.fleet status|backup RESULTS_DIR [HOST...]", file=sys.stderr)
        return 2
    text, code = summarise(args[0], Path(args[1]), args[2:])
    print(text)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
