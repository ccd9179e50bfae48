"""The foundation against the real lab: the runner drives real zfs and docker, the CLI reads a
real .env, and dry-run leaves the pool untouched."""

from __future__ import annotations

import subprocess
import sys

import pytest

from management.errors import CommandError
from management.runner import Runner
from tests.conftest import ROOT
from tests.lab.envfile import LAB_PASSPHRASE, destroy_tree, write_lab_env

pytestmark = pytest.mark.lab


def _cli(env_path, *args, timeout=120):
    return subprocess.run([sys.executable, str(ROOT / "orchestrator.py"), "--env-file", str(env_path), *args],
                          capture_output=True, text=True, timeout=timeout)


def test_runner_creates_and_destroys_a_real_dataset_and_dry_run_changes_nothing(lab):
    name = f"{lab.pool}/{lab.unique('fnd')}"
    dry = Runner(dry_run=True, default_timeout=30)
    assert dry.run(["zfs", "create", name]).skipped
    assert dry.run(["zfs", "list", "-H", "-o", "name", lab.pool], mutating=False).stdout.strip() == lab.pool
    real = Runner(default_timeout=30)
    with pytest.raises(CommandError):  # dry-run really did not create it
        real.run(["zfs", "list", "-H", name], mutating=False)
    real.run(["zfs", "create", name])
    try:
        out = real.run(["zfs", "get", "-H", "-o", "value", "mounted", name], mutating=False).stdout.strip()
        assert out == "yes"
    finally:  # zfs-fuse says "busy" for a moment after creation, even unmounted: retry, bounded
        destroy_tree(name)
    with pytest.raises(CommandError):
        real.run(["zfs", "list", "-H", name], mutating=False)


def test_runner_error_carries_masked_command_exit_code_and_stderr(lab):
    runner = Runner(secrets=("sekrit-value",), default_timeout=30)
    with pytest.raises(CommandError) as info:
        runner.run(["zfs", "list", "-H", f"{lab.pool}/no-such-sekrit-value"], mutating=False)
    text = str(info.value)
    assert "sekrit-value" not in text and "***" in text
    assert info.value.exit_code == 1 and "does not exist" in text


def test_runner_runs_a_container_under_userns_remap(lab):
    runner = Runner(default_timeout=60)
    out = runner.run(["docker", "run", "--rm", "--user", "999:999", lab.busybox_image, "id", "-u"]).stdout
    assert out.strip() == "999"
    info = runner.run(["docker", "info", "--format", "{{.SecurityOptions}} {{.LoggingDriver}}"], mutating=False)
    assert "userns" in info.stdout and "local" in info.stdout


def test_config_check_and_show_on_a_lab_env_never_print_the_passphrase(lab, tmp_path):
    env_path, _ = write_lab_env(tmp_path, lab, ["git/data:REMAPPED_APP_UID", "git/db:REMAPPED_APP_UID"])
    check = _cli(env_path, "config", "check")
    assert check.returncode == 0, check.stderr
    assert "1 services: git" in check.stdout
    show = _cli(env_path, "config", "show")
    assert show.returncode == 0, show.stderr
    assert LAB_PASSPHRASE not in show.stdout + show.stderr and "***" in show.stdout


def test_lab_script_is_idempotent_and_reports_every_part(lab):
    up = subprocess.run(["bash", str(ROOT / "tests/lab/lab.sh"), "up"], capture_output=True, text=True, timeout=300)
    assert up.returncode == 0, up.stderr
    status = subprocess.run(["bash", str(ROOT / "tests/lab/lab.sh"), "status"], capture_output=True, text=True,
                            timeout=120)
    assert status.returncode == 0 and "FAIL" not in status.stdout
    assert status.stdout.count("ok ") >= 6
