"""`doctor`, the runner and the report: every check runs, one that breaks is a warn, and the CLI
prints one line per check."""

import json

from click.testing import CliRunner

import orchestrator
from management.host import autostart
from management.host.doctor import report as doctor
from management.host.doctor.check import FAIL, OK, WARN
from tests.unit.host.doctor.test_check import (
    DOCKER_INFO,
)
from tests.unit.host.doctor.test_check import host as host  # noqa: F401  (the fixture: a host where every check is ok)


def test_a_host_as_designed_is_all_ok_and_nothing_is_changed(host):
    checks = doctor.run_checks(host)
    assert [(c.status, c.name) for c in checks if c.status != OK] == []
    assert len(checks) == len(doctor.all_checks()) == len({c.name for c in checks})
    assert all(not call.mutating for call in host.runner.calls)
    assert host.runner.argvs.count(DOCKER_INFO) == 1 and host.runner.argvs.count(("sshd", "-T")) == 1


def test_a_check_that_breaks_is_a_warn_and_the_others_still_run(host):
    def check_boom(_host):
        raise OSError("boom")

    checks = doctor.run_checks(host, (check_boom, doctor.check_env_mode))
    assert [(c.status, c.name) for c in checks] == [(WARN, "boom"), (OK, ".env mode")]


def cli(host, monkeypatch, *args):
    monkeypatch.setattr(orchestrator.App, "runner", property(lambda self: host.runner))
    monkeypatch.setattr(doctor.Host, "__post_init__", lambda self: setattr(self, "systemd", True))
    return CliRunner().invoke(orchestrator.cli, ["--env-file", str(host.settings.env_file), "doctor",
                                                 "--cron-dir", str(host.cron_dir), "--unit-dir", str(host.unit_dir),
                                                 "--sshd-config", str(host.sshd_config),
                                                 "--zed-dir", str(host.zed_dir), *args])


def test_cli_prints_one_line_per_check_and_fixes_and_exits_1_on_a_fail(host, monkeypatch):
    state = host.settings.state_dir / "last_success.json"
    state.write_text(json.dumps({"git": 1.0, "photo": 1.0}))
    result = cli(host, monkeypatch)
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert [ln.split()[0] for ln in lines if not ln.startswith(" ")][:-1] == [OK] * 23 + [FAIL] + [OK] * 3
    fail = next(i for i, ln in enumerate(lines) if ln.startswith(FAIL))
    assert lines[fail + 1].strip() == "fix: make backup-all, and read its summary (or the cron log) for why the " \
                                      "last one failed"
    assert lines[-1] == "doctor: 26 ok, 0 warn, 1 fail"


def test_cli_warnings_alone_exit_0_and_json(host, monkeypatch):
    (host.unit_dir / autostart.UNIT_NAME).unlink()
    result = cli(host, monkeypatch, "--json")
    assert result.exit_code == 0, result.output
    checks = json.loads(result.output)
    assert [c["name"] for c in checks if c["status"] != OK] == ["boot unit"]
    assert set(checks[0]) == {"status", "name", "detail", "fix"}
