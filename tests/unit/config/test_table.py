"""The settings table: every setting declared once, with its defaults."""

from __future__ import annotations

from pathlib import Path

from management.config import (
    SETTINGS,
)
from tests.unit.config.test_load import BASE, problems, settings_with


def test_defaults_including_those_derived_from_other_settings(tmp_path):
    s = settings_with(tmp_path)
    assert (s.health_timeout, s.borg_timeout, s.keep_last_snapshot, s.compose_command) == (120, 21600, 1, "auto")
    assert s.borg_base_dir == Path("/home/runner/management/.borg")
    assert s.borg_keys_dir == Path("/home/runner/management/borg_keys")
    assert s.borg_excludes_file == Path("/home/runner/management/borg_excludes.txt")
    assert s.view_dataset == "datapool/orchestrator-views"
    assert (s.borg_rsh, s.push_url, s.drill_dir, s.docker_restart_command) == (None, None, None, "")
    s = settings_with(tmp_path, "BORG_BASE_DIR=/srv/borg\nVIEW_DATASET=tank/views\nHEALTH_TIMEOUT= 30 \n")
    assert (s.borg_base_dir, s.view_dataset, s.health_timeout) == (Path("/srv/borg"), "tank/views", 30)


def test_drill_schedule_defaults_weekly_and_empty_or_off_disables_it(tmp_path):
    assert settings_with(tmp_path).drill_schedule == "0 5 * * 0"
    assert settings_with(tmp_path, "DRILL_SCHEDULE=\n").drill_schedule == ""
    assert settings_with(tmp_path, "DRILL_SCHEDULE=Off\n").drill_schedule == ""
    assert settings_with(tmp_path, "DRILL_SCHEDULE=@weekly\n").drill_schedule == "@weekly"
    assert settings_with(tmp_path, "UPDATE_SCHEDULE=\n").update_schedule == ""
    found = problems(tmp_path, BASE + "DRILL_SCHEDULE=sundays\nUPDATE_SCHEDULE=off\n")
    assert "DRILL_SCHEDULE: 'sundays' is not five cron fields (e.g. '0 5 * * 0'), @weekly or off" in found
    assert any(p.startswith("UPDATE_SCHEDULE: 'off' is not five cron fields") for p in found)


def test_each_setting_is_declared_once_with_a_doc_line():
    for field in ("key", "name"):
        names = [getattr(s, field) for s in SETTINGS]
        assert len(names) == len(set(names)), field
    assert all(s.doc and "\n" not in s.doc for s in SETTINGS)
    assert [s.key for s in SETTINGS if s.secret] == ["BORG_PASSPHRASE", "UPDATE_PUSH_URL", "PUSH_URL", "NOTIFY_URLS"]
