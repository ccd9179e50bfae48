"""The scheduled repository check on the real lab (borg over ssh with a restricted key): bytes
flipped in a repository segment fail `check-repos --repository-only` naming the service; the
other repositories pass; the result reaches status and the metrics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.lab.envfile import run_cli

pytestmark = [pytest.mark.lab]


def test_bytes_flipped_in_a_segment_fail_the_check_naming_the_service(cycle, lab):
    night = run_cli(cycle.env_path, "backup", "--json", timeout=600)
    assert night.returncode == 0, night.stdout + night.stderr
    clean = run_cli(cycle.env_path, "check-repos", "--repository-only", timeout=600)
    assert clean.returncode == 0, clean.stdout + clean.stderr

    repo = Path(lab.borg_repos) / cycle.prefix / "photo"
    segment = max((p for p in (repo / "data").rglob("*") if p.is_file() and p.name.isdigit()),
                  key=lambda p: p.stat().st_size)
    data = bytearray(segment.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 16] = bytes(b ^ 0xFF for b in data[middle:middle + 16])
    segment.write_bytes(bytes(data))

    damaged = run_cli(cycle.env_path, "check-repos", "--repository-only", timeout=600)
    assert damaged.returncode == 1, damaged.stdout + damaged.stderr
    assert "check-repos: 1 failed: photo" in damaged.stderr
    assert "photo: FAILED (repository" in damaged.stdout and "git: OK (repository" in damaged.stdout
    status = json.loads(run_cli(cycle.env_path, "status", "--json").stdout)
    checks = {s["service"]: s["check"] for s in status["services"]}
    assert checks["photo"]["ok"] is False and checks["git"]["ok"] is True
    assert checks["photo"]["last_success"] is not None  # the clean check before the damage
