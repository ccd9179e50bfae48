"""monitoring/: the alert rules pass promtool (syntax and their own unit tests), and the rules and
the Grafana dashboard ask only for metrics the tool writes.

The tool's metric names and labels are not listed here: they come from calling the functions
that write the textfiles (management.monitoring.metrics: backup_families, update_families and
drill_families, check_families and verdict_families, through render), so renaming a metric there fails this test.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from management.config import SETTINGS
from management.monitoring.metrics import (
    backup_families,
    check_families,
    drill_families,
    render,
    update_families,
    verdict_families,
)
from management.results import OK, ROLLED_BACK, DatasetResult, RunReport
from management.state import CheckRecord, DrillRecord, UpdateRecord
from tests.conftest import IN_CI, ROOT

MONITORING = ROOT / "monitoring"
ALERTS = MONITORING / "alerts.yml"
ALERTS_TEST = MONITORING / "alerts_test.yml"
DASHBOARD = MONITORING / "grafana-dashboard.json"

SCRAPE_LABELS = {"instance", "job"}  # added by Prometheus when it scrapes node_exporter
NODE_TEXTFILE_PREFIX = "node_textfile_"  # node_exporter's own metrics about the textfiles
# the OrchestratorBackupStale threshold: STALE_AFTER's declared default (hours)
STALE_AFTER_DEFAULT_SECONDS = next(s.default for s in SETTINGS if s.key == "STALE_AFTER") * 3600


# --- the metrics the tool writes -------------------------------------------------------------

_SAMPLE = re.compile(r"^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+\S+$")
_LABEL_PAIR = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def exposition(text: str) -> dict[str, dict[str, set[str]]]:
    """Text exposition format -> {metric: {label: values seen}} (names from # TYPE lines and samples)."""
    metrics: dict[str, dict[str, set[str]]] = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            metrics.setdefault(line.split()[2], {})
        elif line and not line.startswith("#"):
            match = _SAMPLE.match(line)
            assert match, f"not a sample line: {line!r}"
            labels = metrics.setdefault(match.group(1), {})
            for key, value in _LABEL_PAIR.findall(match.group(2) or ""):
                labels.setdefault(key, set()).add(value)
    return metrics


def backup_metrics() -> dict[str, dict[str, set[str]]]:
    report = RunReport(started_at=0.0, downtime=1.5,
                       datasets=[DatasetResult("git", OK, "git-x", 2.0, 10, 1000, 100)])
    return exposition(render(backup_families(report, {"git": 1.0})))


def update_textfile_metrics() -> dict[str, dict[str, set[str]]]:
    return exposition(render(update_families({"git": UpdateRecord(1.0, ROLLED_BACK, "")})))


def drill_metrics() -> dict[str, dict[str, set[str]]]:
    """The drill textfile, from the drill state (STATE_DIR/drills.json)."""
    state = {"git": DrillRecord.from_json({"time": 2.0, "ok": True, "mode": "compared", "archive": "git-x",
                                           "last_success": 2.0, "differences": 0, "entries": 12, "bytes": 3456,
                                           "message": ""})}
    return exposition(render(drill_families(state)))


def check_metrics() -> dict[str, dict[str, set[str]]]:
    """The repository check textfile, from its state (STATE_DIR/checks.json)."""
    state = {"git": CheckRecord(3.0, False, "repository", "x", 1.0)}
    return exposition(render(check_families(state)))


def verdict_metrics() -> dict[str, dict[str, set[str]]]:
    """The verdict textfile, from every service's reason codes (publish.service_risks)."""
    return exposition(render(verdict_families({"git": [], "photo": ["never_drilled"]})))


@pytest.fixture(scope="module")
def written() -> dict[str, dict[str, set[str]]]:
    metrics = {**backup_metrics(), **update_textfile_metrics(), **drill_metrics(), **check_metrics(),
               **verdict_metrics()}
    assert "orchestrator_backup_success" in metrics and "orchestrator_update_last_result" in metrics
    return metrics


# --- metric names and matchers in PromQL -------------------------------------------------------

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GRAFANA_VAR = re.compile(r"\$(?:\{\w+\}|\w+)")
_LABEL_LIST = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"(?<![\w:.])[a-zA-Z_:][\w:]*(?![\w:])(?!\s*\()")
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
             "offset", "atan2", "inf", "nan"}
_SELECTOR = re.compile(r"(?<![\w:])([a-zA-Z_:][\w:]*)\s*\{([^}]*)\}")
_MATCHER = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*"|`[^`]*`)')


def promql_metric_names(expr: str) -> set[str]:
    """The metric names an expression selects: identifiers outside strings, label matchers, ranges and
    label lists that are neither a function call nor a keyword."""
    text = _STRING.sub('""', expr)
    text = _GRAFANA_VAR.sub("", text)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = _LABEL_LIST.sub(" ", text)
    return {name for name in _IDENT.findall(text) if name.lower() not in _KEYWORDS}


def promql_matchers(expr: str) -> list[tuple[str, str, str, str]]:
    """(metric, label, operator, value) of every matcher of a selector with a metric name."""
    out = []
    for metric, body in _SELECTOR.findall(expr):
        for label, op, quoted in _MATCHER.findall(body):
            out.append((metric, label, op, quoted[1:-1]))
    return out


def test_promql_helpers_find_names_and_matchers():
    expr = ('sum by (service) (rate(a_b{x="y", z=~"$v"}[5m])) / on(job) group_left(result) '
            'c:d offset 1h > bool 3 and time() - e unless label_replace(f, "dst", "$1", "src", "(.*)")')
    assert promql_metric_names(expr) == {"a_b", "c:d", "e", "f"}
    assert promql_matchers(expr) == [("a_b", "x", "=", "y"), ("a_b", "z", "=~", "$v")]


def check_expr(expr: str, written: dict[str, dict[str, set[str]]], where: str) -> set[str]:
    """Every metric the expression reads is written by the tool (or is node_exporter's textfile
    metric); every label matcher on the tool's metrics names a label it writes, and an exact value
    (or alternative of a|b) is one it writes."""
    names = promql_metric_names(expr)
    assert names, f"{where}: no metric name found in {expr!r}"
    unknown = {n for n in names if n not in written and not n.startswith(NODE_TEXTFILE_PREFIX)}
    assert not unknown, f"{where}: {sorted(unknown)} not written by the tool (it writes {sorted(written)})"
    for metric, label, op, value in promql_matchers(expr):
        if metric not in written or label in SCRAPE_LABELS:
            continue
        labels = written[metric]
        assert label in labels, f"{where}: {metric} has no label {label!r} (it has {sorted(labels)})"
        literal = op == "=" or (op == "=~" and re.fullmatch(r"[\w|]+", value))
        if literal and "$" not in value:
            for alternative in value.split("|"):
                assert alternative in labels[label], (
                    f"{where}: {metric}{{{label}={alternative!r}}} is never written "
                    f"(values: {sorted(labels[label])})")
    return names


# --- alerts.yml --------------------------------------------------------------------------------

def promtool() -> str:
    path = shutil.which("promtool")
    if path:
        return path
    if IN_CI:
        pytest.fail("CI=true but promtool is missing: tests/lab/lab.sh up installs it (Debian package prometheus)")
    pytest.skip("promtool not installed (Debian: apt-get install prometheus)")


def run_promtool(*args: str, cwd: Path = MONITORING) -> None:
    proc = subprocess.run([promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"promtool {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}"


def alert_rules() -> list[dict]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert rules and all("alert" in rule for rule in rules), "alerts.yml holds alerting rules only"
    return rules


def test_promtool_check_rules_accepts_alerts():
    run_promtool("check", "rules", ALERTS.name)


def test_promtool_unit_tests_of_the_alerts_pass():
    run_promtool("test", "rules", ALERTS_TEST.name)


def test_every_alert_has_a_firing_and_a_quiet_case():
    cases: dict[str, list[bool]] = {}
    for group in yaml.safe_load(ALERTS_TEST.read_text())["tests"]:
        for case in group.get("alert_rule_test", []):
            cases.setdefault(case["alertname"], []).append(bool(case.get("exp_alerts")))
    for rule in alert_rules():
        seen = cases.get(rule["alert"], [])
        assert True in seen, f"{rule['alert']}: no case in alerts_test.yml where it fires"
        assert False in seen, f"{rule['alert']}: no case in alerts_test.yml where it stays quiet"


def test_alerts_read_only_metrics_the_tool_writes(written):
    for rule in alert_rules():
        check_expr(rule["expr"], written, f"alert {rule['alert']}")


def test_alerts_have_a_severity_and_name_what_they_are_about(written):
    for rule in alert_rules():
        name = rule["alert"]
        assert rule.get("labels", {}).get("severity") in ("critical", "warning"), f"{name}: severity"
        annotations = rule.get("annotations", {})
        assert annotations.get("summary") and annotations.get("description"), f"{name}: summary and description"
        if rule["expr"].lstrip().startswith("absent("):
            continue  # no series, no labels to name
        labels = set().union(*(written.get(m, {}).keys() for m in promql_metric_names(rule["expr"])))
        for label in ("service", "stack", "file"):
            if label in labels or (label == "file" and "node_textfile_mtime_seconds" in rule["expr"]):
                assert f"$labels.{label}" in annotations["summary"], f"{name}: the summary names the {label}"


def test_the_stale_backup_threshold_is_stale_afters_default():
    (rule,) = [r for r in alert_rules() if r["alert"] == "OrchestratorBackupStale"]
    threshold = re.search(r">\s*([\d\s*]+)$", rule["expr"].strip()).group(1)
    assert eval(threshold, {"__builtins__": {}}) == STALE_AFTER_DEFAULT_SECONDS  # noqa: S307 - digits and *


# --- grafana-dashboard.json --------------------------------------------------------------------

def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def all_panels(panels: list[dict]) -> list[dict]:
    out = []
    for panel in panels:
        out.append(panel)
        out.extend(all_panels(panel.get("panels", [])))  # a collapsed row holds its panels
    return out


def panel_exprs() -> list[tuple[str, str]]:
    exprs = []
    for panel in all_panels(dashboard()["panels"]):
        for target in panel.get("targets", []):
            exprs.append((f"panel {panel['title']!r} {target['refId']}", target["expr"]))
    return exprs


def test_dashboard_is_a_grafana_dashboard_with_the_datasource_as_a_variable():
    board = dashboard()
    assert board["uid"] and board["title"] and board["schemaVersion"] >= 36 and board["id"] is None
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"
    ids = [p["id"] for p in all_panels(board["panels"])]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    for panel in all_panels(board["panels"]):
        assert {"h", "w", "x", "y"} <= panel["gridPos"].keys(), panel["title"]
        for item in [panel, *panel.get("targets", [])]:
            if panel["type"] != "row":
                assert item["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}, panel["title"]


def test_dashboard_has_the_panels_asked_for():
    exprs = " ".join(expr for _, expr in panel_exprs())
    for metric in ("orchestrator_backup_last_success_timestamp_seconds", "orchestrator_backup_success",
                   "orchestrator_backup_duration_seconds", "orchestrator_backup_original_bytes",
                   "orchestrator_backup_deduplicated_bytes", "orchestrator_backup_downtime_seconds",
                   "orchestrator_drill_success", "orchestrator_drill_last_success_timestamp_seconds",
                   "orchestrator_update_last_result"):
        assert metric in exprs, f"no panel shows {metric}"


def test_dashboard_reads_only_metrics_the_tool_writes(written):
    exprs = panel_exprs()
    assert len(exprs) >= 10
    for where, expr in exprs:
        check_expr(expr, written, where)
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            metric = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", variable["query"]["query"])
            assert metric, f"variable {variable['name']}: a label_values(metric, label) query"
            assert metric.group(1) in written and metric.group(2) in written[metric.group(1)], variable["name"]


def test_dashboard_queries_are_valid_promql(tmp_path):
    """promtool parses each panel query (Grafana's variables replaced) as a recording rule."""
    values = {"service": ".*", "stack": ".*", "__rate_interval": "5m", "__interval": "1m", "__range": "1d"}
    rules = []
    for i, (_, expr) in enumerate(panel_exprs()):
        concrete = re.sub(r"\$\{?(\w+)\}?", lambda m: values[m.group(1)], expr)
        rules.append({"record": f"dashboard:query_{i}", "expr": concrete})
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    run_promtool("check", "rules", str(path), cwd=tmp_path)
