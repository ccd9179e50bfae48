"""The repository check: every service checked, one's damage is that service's failure, and the
result goes through the publish path (state, its textfile) into status."""

from __future__ import annotations

from pathlib import Path

from management.cycles.check import CheckOrchestrator
from management.cycles.context import RunContext
from management.errors import CommandError
from management.host.schedule import render_cron
from management.state import CheckRecord, StateStore
from tests.fakes import FakeRunner
from tests.unit.config.test_load import settings_with


class Borg:
    def __init__(self, damaged=()):
        self.damaged, self.calls = set(damaged), []

    def check(self, service, verify_data=False, repository_only=False):
        self.calls.append((service, verify_data, repository_only))
        if service in self.damaged:
            raise CommandError("borg check --repository-only", 1,
                               "Data integrity error: Segment entry checksum mismatch [segment 1, offset 8]")


def run(tmp_path, damaged=(), **kw):
    settings = settings_with(tmp_path, f"LOCK_FILE={tmp_path}/lock\nSTATE_DIR={tmp_path}/state\n"
                                       f"PROMETHEUS_TEXTFILE={tmp_path}/m/orchestrator.prom\n")
    borg = Borg(damaged)
    ctx = RunContext(settings, FakeRunner(), None, None, borg, echo=lambda _m: None, clock=lambda: 500.0)
    return settings, borg, CheckOrchestrator(ctx).check(**kw)


def test_damage_fails_its_service_and_the_others_are_checked_all_the_same(tmp_path):
    settings, borg, report = run(tmp_path, damaged={"git"}, repository_only=True)
    assert [c[0] for c in borg.calls] == list(settings.services) and all(c[2] for c in borg.calls)
    assert not report.ok
    by = {r.service: r for r in report.results}
    assert not by["git"].ok and "checksum mismatch" in by["git"].message and by["photo"].ok
    assert by["git"].mode == "repository"
    state = StateStore(settings.state_dir).checks()
    assert state["git"].ok is False and state["git"].last_success is None
    assert state["photo"] == CheckRecord(500.0, True, "repository", "", 500.0)
    text = (tmp_path / "m" / "orchestrator_check.prom").read_text()
    assert 'orchestrator_repo_check_success{service="git"} 0' in text


def test_verify_data_is_its_own_mode(tmp_path):
    _settings, borg, report = run(tmp_path, verify_data=True)
    assert report.ok and all(c[1] and not c[2] for c in borg.calls)
    assert {r.mode for r in report.results} == {"verify-data"}


def test_the_cron_file_has_the_monthly_check_waiting_for_a_backup_and_none_when_off():
    args = ("30 3 * * *", Path("/v/bin/python"), Path("/m/o.py"), Path("/m/.env"), Path("/var/log/o.log"))
    text = render_cron(*args, drill_wait=7200, check_schedule="0 4 1 * *")
    assert "0 4 1 * * root /v/bin/python /m/o.py --env-file /m/.env check-repos --repository-only --wait 7200" in text
    assert "check-repos" not in render_cron(*args, check_schedule="")
    assert "check-repos --verify-data" in render_cron(*args, check_schedule="@monthly", check_verify_data=True)
