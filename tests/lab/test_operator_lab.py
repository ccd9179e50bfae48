"""The operator's view on the real lab: an Apprise notification to a real HTTP receiver on
127.0.0.1 after a failed night, `status` after a failed and a good night, and borg progress for
a backup of a few hundred MB, live under a pseudo-terminal (`script`) and plain in a log."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.lab.conftest import build_cycle, teardown_cycle
from tests.lab.envfile import LAB_PASSPHRASE, run_cli
from tests.lab.stacks import seed
from tests.unit.monitoring.test_notify import Receiver

pytestmark = [pytest.mark.lab]


@pytest.fixture
def receiver():
    with Receiver() as rx:
        yield rx


@pytest.fixture
def watched(lab, tmp_path, receiver):
    cyc = build_cycle(lab, tmp_path, extra={"NOTIFY_URLS": f"json://127.0.0.1:{receiver.port}/orchestrator",
                                            "PROGRESS_INTERVAL": "1"})
    yield cyc
    teardown_cycle(cyc)


def status(env_path) -> dict:
    r = run_cli(env_path, "status", "--json", timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return {row["service"]: row for row in json.loads(r.stdout)["services"]}


def test_a_failed_night_notifies_and_status_shows_it_until_a_good_night(watched, lab, receiver):
    cyc = watched
    assert run_cli(cyc.env_path, "init-repos").returncode == 0
    photo_repo = f"{lab.borg_repos}/{cyc.prefix}/photo"
    os.chmod(photo_repo, 0o000)  # borg serve runs as the borg user: permission denied
    try:
        failed = run_cli(cyc.env_path, "backup", timeout=600)
    finally:
        os.chmod(photo_repo, 0o700)
    assert failed.returncode == 1 and "result: FAILED (photo)" in failed.stdout
    assert len(receiver.bodies) == 1, receiver.bodies
    note = receiver.bodies[0]
    assert note["type"] == "failure" and note["title"].endswith("FAILED (photo)")
    assert "photo: failed: repository" in note["message"] and "git: ok (git-" in note["message"]
    assert LAB_PASSPHRASE not in json.dumps(note)

    rows = status(cyc.env_path)
    assert rows["photo"]["last_backup"]["time"] is None and rows["photo"]["last_backup"]["stale"] is True
    assert rows["git"]["last_backup"]["stale"] is False and rows["git"]["last_backup"]["age_seconds"] < 600
    assert rows["git"]["dataset"]["mounted"] is True and rows["git"]["stack"]["running"] == 1
    table = run_cli(cyc.env_path, "status", timeout=120).stdout
    assert "STALE" in next(line for line in table.splitlines() if line.startswith("photo"))

    good = run_cli(cyc.env_path, "backup", timeout=600)
    assert good.returncode == 0, good.stdout + good.stderr
    assert len(receiver.bodies) == 1  # NOTIFY_ON=failure: a good night sends nothing
    rows = status(cyc.env_path)
    assert rows["photo"]["last_backup"]["stale"] is False and rows["photo"]["last_backup"]["age_seconds"] < 600
    # archives as the last prune named them: photo's first, git's one (unchanged tonight: no prune)
    assert rows["photo"]["archives"] == 1 and rows["git"]["archives"] == 1
    table = run_cli(cyc.env_path, "status", timeout=120).stdout
    assert "STALE" not in table
    print("\n" + table)


def test_progress_is_live_on_a_terminal_and_plain_lines_in_a_log(watched):
    cyc = watched
    # a few hundred MB that borg cannot compress: the work takes long enough to be watched
    seed(cyc.base, "git", {f"big/{i}.bin": os.urandom(10 * 1024 * 1024) for i in range(30)})
    cli = [sys.executable, str(ROOT / "orchestrator.py"), "--env-file", str(cyc.env_path)]
    typescript = cyc.env_path.parent / "typescript"
    r = subprocess.run(["script", "-qfec", shlex.join([*cli, "backup", "git"]), str(typescript)],
                       capture_output=True, timeout=900)
    shown = typescript.read_bytes().decode(errors="replace")
    assert r.returncode == 0, shown[-3000:]
    assert "git: backup " in shown and " MB read" in shown and "/s" in shown, shown[-3000:]
    assert "\x1b[" in shown  # drawn live, in place
    assert "result: OK" in shown

    # not a terminal (cron, --json): a plain line every PROGRESS_INTERVAL (1 s here), no escapes
    seed(cyc.base, "git", {f"more/{i}.bin": os.urandom(10 * 1024 * 1024) for i in range(20)})
    r = subprocess.run([*cli, "backup", "--json", "git"], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("git: backup ")]
    assert lines and all(" read, " in ln and "/s, " in ln for ln in lines), r.stderr
    assert "\x1b" not in r.stderr and json.loads(r.stdout)["ok"]

    # a drill shows its extract the same way
    r = subprocess.run(["script", "-qfec", shlex.join([*cli, "drill", "git"]), str(typescript)],
                       capture_output=True, timeout=900)
    shown = typescript.read_bytes().decode(errors="replace")
    assert r.returncode == 0, shown[-3000:]
    assert "git: extract " in shown and " extracted of " in shown and "drill: OK" in shown
    assert Path(typescript).stat().st_size > 0
