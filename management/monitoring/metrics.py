"""The Prometheus textfiles (node_exporter's textfile collector): one renderer with one escaping
rule and one naming rule for the files, and what each run kind exports.

PROMETHEUS_TEXTFILE names the backup's file; the drill's, the update's, the repository check's and
the verdict's sit beside it as <name>_drill.prom, <name>_update.prom, <name>_check.prom and
<name>_verdict.prom (the verdict is rewritten by every run, so it lives in one file of its own).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from management.results import FAILED, GOOD, ROLLED_BACK, UNCHANGED, UPDATED, RunReport
from management.state import CheckRecord, DrillRecord, UpdateRecord
from management.text import escape_label
from management.verdict import RISK_CODES

BACKUP, DRILL, UPDATE, CHECK, VERDICT = "backup", "drill", "update", "check", "verdict"


@dataclass
class Family:
    """One gauge: its name, help text and samples (labels, value); a None value is left out."""

    name: str
    help: str
    samples: list[tuple[dict[str, str], float | int | bool | None]] = field(default_factory=list)


def _value(value: float | int | bool) -> str:
    return str(int(value)) if isinstance(value, bool) else str(value)


def render(families: Iterable[Family]) -> str:
    lines: list[str] = []
    for f in families:
        lines += [f"# HELP {f.name} {f.help}", f"# TYPE {f.name} gauge"]
        for labels, value in f.samples:
            if value is None:
                continue
            text = ",".join(f'{k}="{escape_label(v)}"' for k, v in labels.items())
            lines.append(f"{f.name}{{{text}}} {_value(value)}")
    return "\n".join(lines) + "\n"


def textfile(base: Path, kind: str) -> Path:
    """Where a run kind's metrics go: the backup's at PROMETHEUS_TEXTFILE, the others beside it."""
    if kind == BACKUP:
        return base
    return base.with_name(f"{base.stem}_{kind}{base.suffix or '.prom'}")


def backup_families(report: RunReport, last_success: dict[str, float]) -> list[Family]:
    """`last_success` carries earlier successes so a failed night does not reset a service's
    last-success time."""
    downtime = None if report.downtime is None else round(report.downtime, 3)
    columns = (
        ("orchestrator_backup_success", "1 if the last backup of the service succeeded",
         lambda d: int(d.result in GOOD)),
        ("orchestrator_backup_last_success_timestamp_seconds", "Unix time of the last successful backup",
         lambda d: last_success.get(d.service)),
        ("orchestrator_backup_duration_seconds", "Seconds borg create/prune took in the last run",
         lambda d: round(d.duration, 3)),
        ("orchestrator_backup_files", "Files in the last archive", lambda d: d.nfiles),
        ("orchestrator_backup_original_bytes", "Original size of the last archive", lambda d: d.original_size),
        ("orchestrator_backup_deduplicated_bytes", "Bytes the last archive added to the repository",
         lambda d: d.deduplicated_size),
        ("orchestrator_backup_downtime_seconds", "Stacks down time of the last run (stop to start)",
         lambda d: downtime),
    )
    families = [Family(name, text, [({"service": d.service}, get(d)) for d in report.datasets])
                for name, text, get in columns]
    families.append(Family("orchestrator_backup_uncovered_mounts",
                           "Mounts of the service's stack whose data no backup reaches (make check-stacks)",
                           [({"service": d.service}, len(report.uncovered.get(d.service, [])))
                            for d in report.datasets]))
    changed = Family("orchestrator_backup_files_changed",
                     "Files the last archive found added, modified or deleted against the one before")
    for d in report.datasets:
        if isinstance(d.changed, dict):
            changed.samples += [({"service": d.service, "kind": kind}, d.changed.get(kind))
                                for kind in ("added", "modified", "deleted")]
    families.append(changed)
    families.append(Family("orchestrator_backup_mass_change",
                           "1 when the last night modified or deleted most of the service's files (the "
                           "mass-change guard held its prune)",
                           [({"service": d.service}, int(d.service in report.mass_changes)) for d in report.datasets]))
    families.append(Family("orchestrator_backup_prune_held",
                           "1 while the service's prune is held by the prune guard (make release-prune)",
                           [({"service": d.service}, int(d.service in report.held)) for d in report.datasets]))
    return families


def _per_service(state: Mapping[str, DrillRecord | CheckRecord], columns) -> list[Family]:
    """One gauge per (name, help, field) column, one sample per service from its state record."""
    return [Family(name, text, [({"service": svc}, getattr(entry, key)) for svc, entry in sorted(state.items())])
            for name, text, key in columns]


def drill_families(state: Mapping[str, DrillRecord]) -> list[Family]:
    """One series per service from the drill state (StateStore.drills)."""
    columns = (
        ("orchestrator_drill_success", "1 if the last restore drill of the service passed", "ok"),
        ("orchestrator_drill_last_run_timestamp_seconds", "Unix time of the last restore drill", "time"),
        ("orchestrator_drill_last_success_timestamp_seconds", "Unix time of the last passed restore drill",
         "last_success"),
        ("orchestrator_drill_differences", "Entries that differed in the last restore drill", "differences"),
        ("orchestrator_drill_entries", "Entries compared in the last restore drill", "entries"),
        ("orchestrator_drill_bytes", "Bytes compared in the last restore drill", "bytes"),
    )
    return _per_service(state, columns)


def update_families(state: Mapping[str, UpdateRecord]) -> list[Family]:
    """Per stack from the update state (StateStore.last_update): when it last ran, and a 1
    for its result among updated / unchanged / rolled_back / failed."""
    ran = Family("orchestrator_update_last_run_timestamp_seconds", "When the last update of a stack ran.",
                 [({"stack": stack}, round(s.time)) for stack, s in sorted(state.items())])
    result = Family("orchestrator_update_last_result", "1 for the result of the last update of a stack.")
    for stack, s in sorted(state.items()):
        for name in (UPDATED, UNCHANGED, ROLLED_BACK, FAILED):
            result.samples.append(({"stack": stack, "result": name.replace(" ", "_")}, int(s.result == name)))
    return [ran, result]


def check_families(state: Mapping[str, CheckRecord]) -> list[Family]:
    """One series per service from the repository check state (StateStore.checks)."""
    columns = (
        ("orchestrator_repo_check_success", "1 if the last check of the service's repository passed", "ok"),
        ("orchestrator_repo_check_last_run_timestamp_seconds", "Unix time of the last repository check", "time"),
        ("orchestrator_repo_check_last_success_timestamp_seconds", "Unix time of the last passed repository check",
         "last_success"),
    )
    return _per_service(state, columns)



def verdict_families(risks: dict[str, list[str]]) -> list[Family]:
    """Per service from its verdict (management.verdict): 1 when PROTECTED, and one series per
    reason code, 1 for each reason it is at risk; `risks` maps service -> its reason codes."""
    protected = Family("orchestrator_service_protected",
                       "1 if the service is PROTECTED, 0 if it is AT RISK (make status names the reasons)",
                       [({"service": svc}, int(not codes)) for svc, codes in sorted(risks.items())])
    reason = Family("orchestrator_service_risk", "1 for each reason the service is AT RISK")
    for svc, codes in sorted(risks.items()):
        reason.samples += [({"service": svc, "reason": code}, int(code in codes)) for code in RISK_CODES]
    return [protected, reason]
