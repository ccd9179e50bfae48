"""The nightly cron entry on the lab: its command, run the way cron runs it (sh -c with the
file's SHELL and PATH, as root), performs a real backup into the rotated log; logrotate
accepts the rule; uninstall removes only what install wrote."""

from __future__ import annotations

import subprocess

import pytest

from tests.lab.envfile import run_cli

pytestmark = pytest.mark.lab


def test_cron_entry_runs_a_backup_into_its_log_and_logrotate_accepts_the_rule(cycle, tmp_path):
    cron_dir, rotate_dir, log = tmp_path / "cron.d", tmp_path / "logrotate.d", tmp_path / "log" / "backup.log"
    args = ["install-cron", "--schedule", "15 2 * * *", "--log-file", str(log),
            "--cron-dir", str(cron_dir), "--logrotate-dir", str(rotate_dir)]
    installed = run_cli(cycle.env_path, *args)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    entry = (cron_dir / "orchestrator-backup").read_text()
    env = dict(line.split("=", 1) for line in entry.splitlines() if "=" in line and not line.startswith(("#", "15")))
    job = next(line for line in entry.splitlines() if line.startswith("15 2 * * * root "))
    command = job.split(" root ", 1)[1]

    log.parent.mkdir()
    run = subprocess.run([env["SHELL"], "-c", command], env={"PATH": env["PATH"]}, cwd="/",
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr + log.read_text()
    text = log.read_text()
    assert "result: OK" in text and "downtime:" in text
    assert cycle.host_is_clean() == []
    # the weekly restore drill (DRILL_SCHEDULE's default), run the way cron runs it, after that backup
    drill_job = next(line for line in entry.splitlines() if " drill --wait " in line)
    assert drill_job.startswith("0 5 * * 0 root ")
    run = subprocess.run([env["SHELL"], "-c", drill_job.split(" root ", 1)[1]], env={"PATH": env["PATH"]}, cwd="/",
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr + log.read_text()
    assert "drill: OK" in log.read_text() and cycle.host_is_clean() == []

    state = tmp_path / "logrotate.state"
    check = subprocess.run(["logrotate", "-d", "-s", str(state), str(rotate_dir / "orchestrator-backup")],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0 and "error" not in check.stderr.lower(), check.stderr
    assert str(log) in check.stderr  # logrotate -d lists the log it would rotate

    again = run_cli(cycle.env_path, *args)  # idempotent: the same files, rewritten
    assert again.returncode == 0 and entry == (cron_dir / "orchestrator-backup").read_text()
    removed = run_cli(cycle.env_path, "uninstall-cron", "--cron-dir", str(cron_dir), "--logrotate-dir", str(rotate_dir))
    assert removed.returncode == 0 and not list(cron_dir.iterdir()) and not list(rotate_dir.iterdir())
