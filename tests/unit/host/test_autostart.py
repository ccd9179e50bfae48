"""The boot unit: rendered by a pure function, installed only over a file this tool wrote."""

from pathlib import Path

import pytest
from click.testing import CliRunner

import orchestrator
from management.errors import ValidationError
from management.host import autostart
from tests.unit.config.test_load import BASE

PY, ORCH, ENV = Path("/opt/o/.venv/bin/python"), Path("/opt/o/orchestrator.py"), Path("/opt/o/.env")


def test_unit_is_a_oneshot_after_docker_and_zfs_that_runs_docker_up():
    unit = autostart.render_unit(PY, ORCH, ENV)
    lines = unit.splitlines()
    assert lines[0] == autostart.UNIT_MARKER
    assert "Type=oneshot" in lines and "RemainAfterExit=yes" in lines
    assert "Requires=docker.service" in lines
    after = next(line for line in lines if line.startswith("After=")).split("=", 1)[1].split()
    assert {"docker.service", "zfs-mount.service", "network-online.target"} <= set(after)
    assert "ExecStart=/opt/o/.venv/bin/python /opt/o/orchestrator.py --env-file /opt/o/.env docker-up" in lines
    assert "ExecStop=/opt/o/.venv/bin/python /opt/o/orchestrator.py --env-file /opt/o/.env docker-stop" in lines
    assert "WantedBy=multi-user.target" in lines


def test_paths_with_spaces_are_quoted_and_relative_paths_refused():
    unit = autostart.render_unit(PY, Path("/opt/my tools/orchestrator.py"), ENV)
    assert 'ExecStart=/opt/o/.venv/bin/python "/opt/my tools/orchestrator.py" --env-file' in unit
    with pytest.raises(ValidationError, match="absolute"):
        autostart.render_unit(PY, ORCH, Path(".env"))


def test_docker_dropin_orders_after_zfs_and_waits_for_storage_when_asked():
    dropin = autostart.render_docker_dropin(PY, ORCH, ENV, 300).splitlines()
    after = next(line for line in dropin if line.startswith("After=")).split("=", 1)[1].split()
    assert {"zfs-mount.service", "zfs-import.target"} <= set(after)
    assert "ExecStartPre=/opt/o/.venv/bin/python /opt/o/orchestrator.py --env-file /opt/o/.env wait-storage" in dropin
    ordered_only = autostart.render_docker_dropin(PY, ORCH, ENV, 0)
    assert "ExecStartPre" not in ordered_only and "[Service]" not in ordered_only
    with pytest.raises(ValidationError, match="absolute"):
        autostart.render_docker_dropin(PY, ORCH, Path(".env"), 300)


def test_install_replaces_only_our_unit_and_uninstall_removes_only_ours(tmp_path):
    text = autostart.render_unit(PY, ORCH, ENV)
    dropin_text = autostart.render_docker_dropin(PY, ORCH, ENV, 300)
    path, dropin = autostart.install_unit(tmp_path, text, dropin_text)
    assert path.read_text() == text and oct(path.stat().st_mode & 0o777) == "0o644"
    assert dropin == tmp_path / "docker.service.d" / "orchestrator-after-zfs.conf"
    assert dropin.read_text() == dropin_text
    assert autostart.install_unit(tmp_path, text, dropin_text) == [path, dropin]  # again: same files
    assert autostart.uninstall_unit(tmp_path) == [path, dropin] and not path.exists()
    assert not dropin.parent.exists()
    assert autostart.uninstall_unit(tmp_path) == []
    path.write_text("[Unit]\nDescription=someone else's\n")
    with pytest.raises(ValidationError, match="not written by this tool"):
        autostart.install_unit(tmp_path, text, dropin_text)
    with pytest.raises(ValidationError, match="not written by this tool"):
        autostart.uninstall_unit(tmp_path)
    assert "someone else's" in path.read_text()


def test_cli_dry_run_prints_the_unit_and_writes_nothing(tmp_path):
    env = tmp_path / ".env"
    env.write_text(BASE)
    env.chmod(0o600)
    result = CliRunner().invoke(orchestrator.cli, ["--env-file", str(env), "--dry-run", "install-autostart",
                                                   "--unit-dir", str(tmp_path / "units")])
    assert result.exit_code == 0, result.output
    assert "Type=oneshot" in result.output and f"--env-file {env} docker-up" in result.output
    assert not (tmp_path / "units").exists()


def test_a_foreign_drop_in_stops_the_install_before_anything_is_written(tmp_path):
    foreign = tmp_path / "docker.service.d" / "orchestrator-after-zfs.conf"
    foreign.parent.mkdir()
    foreign.write_text("[Unit]\nAfter=mine.service\n")
    with pytest.raises(ValidationError, match="not written by this tool"):
        autostart.install_unit(tmp_path, autostart.render_unit(PY, ORCH, ENV),
                              autostart.render_docker_dropin(PY, ORCH, ENV, 300))
    assert not (tmp_path / autostart.UNIT_NAME).exists()
    assert foreign.read_text() == "[Unit]\nAfter=mine.service\n"


def test_systemctl_is_only_used_for_the_real_unit_dir(tmp_path):
    assert not autostart.manages_systemd(tmp_path)


def test_install_again_with_the_same_unit_says_nothing_to_change_and_writes_nothing(tmp_path, monkeypatch):
    """Provisioning (deploy/ansible) reads 'nothing to change' to report changed=0 on a second run."""
    env = tmp_path / ".env"
    env.write_text(BASE)
    env.chmod(0o600)
    units = tmp_path / "units"
    monkeypatch.setattr(autostart, "verify_unit", lambda runner, unit: "")
    args = ["--env-file", str(env), "install-autostart", "--unit-dir", str(units)]
    first = CliRunner().invoke(orchestrator.cli, args)
    assert first.exit_code == 0 and "wrote" in first.output, first.output
    mtime = (units / autostart.UNIT_NAME).stat().st_mtime_ns
    second = CliRunner().invoke(orchestrator.cli, args)
    assert second.exit_code == 0 and "install-autostart: nothing to change" in second.output, second.output
    assert (units / autostart.UNIT_NAME).stat().st_mtime_ns == mtime


def test_wait_storage_does_not_hold_docker_back_for_an_unreadable_env(tmp_path):
    """docker.service runs it before dockerd: a .env typo must not keep every container down."""
    env = tmp_path / ".env"
    env.write_text(BASE + "STORAGE_WAIT=soon\n")
    env.chmod(0o600)
    result = CliRunner().invoke(orchestrator.cli, ["--env-file", str(env), "wait-storage"])
    assert result.exit_code == 0, result.output
    assert "cannot read the settings, not waiting" in result.output and "STORAGE_WAIT" in result.output
