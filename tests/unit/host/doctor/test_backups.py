"""`doctor`, the nightly runs: cron, the boot unit, the last backup, coverage."""

import json

from management.host import autostart, schedule
from management.host.doctor import backups as doctor
from management.host.doctor.check import FAIL, OK, WARN
from management.runner import Result
from tests.unit.host.doctor.test_check import (
    GIT_CONFIG,
    NOW,
    H,
    answer,
    git_model,
)
from tests.unit.host.doctor.test_check import host as host  # noqa: F401  (the fixture: a host where every check is ok)


def test_no_cron_entry_fails_someone_elses_warns_another_env_warns(host):
    path = host.cron_dir / schedule.CRON_NAME
    assert "backup at '30 3 * * *'" in doctor.check_cron(host).detail
    text = path.read_text()
    path.write_text(text.replace(str(host.settings.env_file.resolve()), "/other/.env"))
    c = doctor.check_cron(host)
    assert c.status == WARN and "another .env" in c.detail
    path.write_text("30 3 * * * root backup.sh\n")
    assert doctor.check_cron(host).status == WARN
    path.unlink()
    c = doctor.check_cron(host)
    assert c.status == FAIL and c.fix == "make install-cron"


def test_boot_unit_missing_disabled_or_unknown_warns(host):
    answer(host, ("systemctl", "is-enabled", autostart.UNIT_NAME), Result((), 1, "disabled\n"))
    c = doctor.check_boot_unit(host)
    assert c.status == WARN and "disabled" in c.detail and c.fix == f"systemctl enable {autostart.UNIT_NAME}"
    host.systemd = False
    assert "cannot tell whether it is enabled" in doctor.check_boot_unit(host).detail
    (host.unit_dir / autostart.UNIT_NAME).unlink()
    c = doctor.check_boot_unit(host)
    assert c.status == WARN and c.fix == "make install-autostart"


def test_last_backup_stale_or_never_fails(host):
    assert "oldest 20h ago" in doctor.check_last_backup(host).detail
    state = host.settings.state_dir / "last_success.json"
    state.write_text(json.dumps({"git": NOW - 37 * H}))
    c = doctor.check_last_backup(host)
    assert c.status == FAIL and "git 37h ago" in c.detail and "photo never" in c.detail


def test_data_no_backup_reaches_fails_with_each_mount_named(host):
    answer(host, GIT_CONFIG, json.dumps(git_model({"type": "volume", "source": "pgdata", "target": "/pg"})))
    c = doctor.check_coverage(host)
    assert c.status == FAIL and "git: volume pgdata -> /pg (docker volume on the OS disk)" in c.detail
    assert "make check-stacks" in c.fix


def test_coverage_ok_names_how_many_mounts_were_looked_at(host):
    c = doctor.check_coverage(host)
    assert c.status == OK and c.detail.endswith("(1 mounts)")
