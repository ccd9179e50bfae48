"""The Prometheus textfiles: one renderer, one escaping rule, one naming rule, and what each run
kind exports."""

from __future__ import annotations

from pathlib import Path

from management.monitoring.metrics import (
    BACKUP,
    DRILL,
    UPDATE,
    Family,
    backup_families,
    drill_families,
    render,
    textfile,
    update_families,
)
from management.results import OK, ROLLED_BACK, DatasetResult, RunReport
from management.state import DrillRecord, MassChange, UpdateRecord
from tests.unit.test_results import report


def test_backup_metrics_keep_the_last_success_of_a_failed_service():
    text = render(backup_families(report(), {"git": 100.0, "photo": 50.0}))
    assert 'orchestrator_backup_success{service="photo"} 0' in text
    assert 'orchestrator_backup_last_success_timestamp_seconds{service="photo"} 50.0' in text
    assert 'orchestrator_backup_downtime_seconds{service="git"} 3.25' in text
    assert 'orchestrator_backup_files{service="photo"}' not in text  # unknown is left out


def test_drill_metrics_keep_the_last_success_of_a_failed_drill():
    text = render(drill_families({"git": DrillRecord(200.0, False, last_success=100.0, differences=3,
                                                         entries=70, bytes=5)}))
    assert 'orchestrator_drill_success{service="git"} 0' in text
    assert 'orchestrator_drill_last_success_timestamp_seconds{service="git"} 100.0' in text
    assert 'orchestrator_drill_differences{service="git"} 3' in text


def test_update_metrics_one_for_the_result_and_zero_for_the_others():
    text = render(update_families({"app": UpdateRecord(5.4, ROLLED_BACK)}))
    assert 'orchestrator_update_last_result{stack="app",result="rolled_back"} 1' in text
    assert 'orchestrator_update_last_result{stack="app",result="updated"} 0' in text
    assert 'orchestrator_update_last_run_timestamp_seconds{stack="app"} 5' in text


def test_every_label_value_is_escaped_the_same_way_whatever_the_run_kind():
    odd = 'we"ird\\name\nx'
    escaped = 'we\\"ird\\\\name\\nx'
    backup = RunReport(started_at=0.0, datasets=[DatasetResult(odd, OK)])
    for text in (render(backup_families(backup, {})),
                 render(drill_families({odd: DrillRecord(None, True)})),
                 render(update_families({odd: UpdateRecord(1.0, ROLLED_BACK)}))):
        samples = [line for line in text.splitlines() if not line.startswith("#")]
        assert samples and all(escaped in line and "\n" not in line for line in samples)


def test_render_gives_help_and_type_even_without_samples_and_leaves_none_out():
    text = render([Family("x_total", "Things.", [({"a": "1"}, None), ({"a": "2"}, True)])])
    assert text.splitlines() == ["# HELP x_total Things.", "# TYPE x_total gauge", 'x_total{a="2"} 1']


def test_each_kind_has_its_file_beside_the_backup_one():
    base = Path("/t/orchestrator.prom")
    assert textfile(base, BACKUP) == base
    assert textfile(base, DRILL) == Path("/t/orchestrator_drill.prom")
    assert textfile(base, UPDATE) == Path("/t/orchestrator_update.prom")
    assert textfile(Path("/t/metrics"), DRILL) == Path("/t/metrics_drill.prom")


def test_verdict_metrics_one_when_protected_and_one_series_per_reason():
    from management.monitoring.metrics import VERDICT, verdict_families
    from management.verdict import RISK_CODES
    text = render(verdict_families({"git": [], "photo": ["never_drilled", "repo_local"]}))
    assert 'orchestrator_service_protected{service="git"} 1' in text
    assert 'orchestrator_service_protected{service="photo"} 0' in text
    assert 'orchestrator_service_risk{service="photo",reason="never_drilled"} 1' in text
    assert 'orchestrator_service_risk{service="photo",reason="stale"} 0' in text
    assert 'orchestrator_service_risk{service="git",reason="never_drilled"} 0' in text
    assert text.count("orchestrator_service_risk{") == 2 * len(RISK_CODES)
    assert textfile(Path("/t/orchestrator.prom"), VERDICT) == Path("/t/orchestrator_verdict.prom")


def test_the_files_each_night_changed_are_a_metric_per_kind():
    changed = {"added": 5, "modified": 2, "deleted": None, "files": 9}
    report = RunReport(0.0, datasets=[DatasetResult("photo", OK, changed=changed), DatasetResult("git", OK)],
                       mass_changes={"photo": MassChange("mass change")})
    text = render(backup_families(report, {}))
    assert 'orchestrator_backup_files_changed{service="photo",kind="added"} 5' in text
    assert 'orchestrator_backup_files_changed{service="photo",kind="modified"} 2' in text
    assert 'kind="deleted"' not in text and 'service="git",kind' not in text  # unknown: left out
    assert 'orchestrator_backup_mass_change{service="photo"} 1' in text
    assert 'orchestrator_backup_mass_change{service="git"} 0' in text
