"""Borg argv builders, retention, the manager's environment (secrets never in argv), and the
cron/logrotate rendering."""

from __future__ import annotations

from pathlib import Path

import pytest

from management.errors import ValidationError
from management.host import schedule
from management.host.schedule import render_cron
from tests.unit.config.test_load import settings_with


def test_cron_and_logrotate(tmp_path):
    text = schedule.render_cron("30 3 * * *", Path("/v/bin/python"), Path("/m/orchestrator.py"), Path("/m/.env"),
                                Path("/var/log/o.log"))
    assert "30 3 * * * root /v/bin/python /m/orchestrator.py --env-file /m/.env backup >> /var/log/o.log 2>&1" in text
    assert " update " not in text  # no update schedule unless asked
    weekly = schedule.render_cron("30 3 * * *", Path("/v/bin/python"), Path("/m/orchestrator.py"), Path("/m/.env"),
                                  Path("/var/log/o.log"), update_schedule="0 5 * * 0")
    assert "0 5 * * 0 root /v/bin/python /m/orchestrator.py --env-file /m/.env update --yes >> /var/log/o.log" in weekly
    with pytest.raises(ValidationError):
        schedule.render_cron("30 3 * *\n* * * * * root rm -rf /", Path("p"), Path("o"), Path("e"), Path("l"))
    with pytest.raises(ValidationError):
        schedule.render_cron("30 3 * * *", Path("p"), Path("o"), Path("e"), Path("l"), update_schedule="weekly")
    cron_dir, rot_dir = tmp_path / "cron.d", tmp_path / "logrotate.d"
    written = schedule.install(cron_dir, rot_dir, text, schedule.render_logrotate(Path("/var/log/o.log")))
    assert [p.name for p in written] == ["orchestrator-backup"] * 2
    assert oct(written[0].stat().st_mode & 0o777) == "0o644"
    (cron_dir / "orchestrator-backup").write_text("someone else's\n")
    with pytest.raises(ValidationError, match="not written by this tool"):
        schedule.uninstall(cron_dir, rot_dir)
    (cron_dir / "orchestrator-backup").write_text(text)
    assert len(schedule.uninstall(cron_dir, rot_dir)) == 2 and not list(cron_dir.iterdir())


def test_cron_has_the_weekly_drill_waiting_for_a_running_backup_and_none_when_off():
    args = ("30 3 * * *", Path("/v/bin/python"), Path("/m/orchestrator.py"), Path("/m/.env"), Path("/var/log/o.log"))
    cron = render_cron(*args, drill_schedule="0 5 * * 0", drill_wait=21600)
    assert "0 5 * * 0 root /v/bin/python /m/orchestrator.py --env-file /m/.env drill --wait 21600 >>" in cron
    assert "drill" not in render_cron(*args, drill_schedule="")



def test_drill_schedule_defaults_to_weekly_and_can_be_switched_off(tmp_path):
    assert settings_with(tmp_path).drill_schedule == "0 5 * * 0"
    assert settings_with(tmp_path, "DRILL_SCHEDULE=off\n").drill_schedule == ""


def test_cron_takes_history_snapshots_between_nights_only_when_scheduled():
    args = ("30 3 * * *", Path("/v/bin/python"), Path("/m/orchestrator.py"), Path("/m/.env"), Path("/var/log/o.log"))
    cron = render_cron(*args, snapshot_schedule="0 9-21/3 * * *")
    line = next(line for line in cron.splitlines() if "snapshot-history" in line)
    assert line.startswith("0 9-21/3 * * * root /v/bin/python /m/orchestrator.py --env-file /m/.env snapshot-history")
    assert "snapshot-history" not in render_cron(*args, snapshot_schedule="")
