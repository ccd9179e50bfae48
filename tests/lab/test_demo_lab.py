"""`make demo` is the README's first command: it must pass on the lab, end to end."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.lab.conftest import free_port

pytestmark = pytest.mark.lab


def test_demo_runs_the_cycle_and_the_restore_equals_the_snapshot(lab, tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "DEMO_DIR": str(tmp_path / "demo"), "DEMO_PORT": str(free_port())}
    try:
        r = subprocess.run(["bash", str(ROOT / "demo" / "demo.sh")], cwd=ROOT, env=env, capture_output=True,
                           text=True, timeout=900)
        out = r.stdout + r.stderr
        assert r.returncode == 0, out[-4000:]
        assert "restored archive == snapshot" in out
        assert out.count("result: OK") == 3
        assert "git           unchanged" in out  # the second night: no borg run for an unchanged spoke
        assert "git           ok" in out and "(2 read)" in out  # the third: the new file and the stack copy
        assert "stack folder in the archive: compose.yaml" in out
        assert "drill: OK" in out and out.count("entries") >= 3
    finally:
        clean = subprocess.run(["bash", str(ROOT / "demo" / "demo.sh"), "clean"], cwd=ROOT, env=env,
                               capture_output=True, text=True, timeout=600)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert not (tmp_path / "demo").exists()
    assert subprocess.run(["zfs", "list", "-H", f"{lab.pool}/demo"], capture_output=True).returncode != 0
