"""The boot drill on the real lab: each restored stack started as a throwaway, isolated stack
(compose v2, userns-remap, the lab's local images), while the live stacks serve through the hub.

- on healthy backups every service boots, and the live stacks are not touched (same
  containers, started at the same time, every request through the hub answered);
- an archive that equals its snapshot but whose service cannot start (a file the app rejects)
  passes the byte comparison and fails the boot, naming the service;
- nothing of the throwaway stacks is left (containers, networks).
"""

from __future__ import annotations

import json
import subprocess
import threading
import time

import pytest

from tests.lab.conftest import build_cycle, teardown_cycle
from tests.lab.envfile import run_cli
from tests.lab.stacks import seed
from tests.lab.test_stacks_lab import https_through_hub, hub_port

pytestmark = [pytest.mark.lab, pytest.mark.compose]


def picky_git(cyc, lab) -> None:
    """git's web server refuses to start when its data holds mode=broken (an app rejecting its config).
    It is a live stack (not stopped for the snapshot), so the running one keeps serving what it read
    at its start while the archive holds the file it would refuse."""
    path = cyc.services_dir / "git" / "compose.yaml"
    doc = json.loads(path.read_text())
    web = doc["services"]["web"]
    web["command"] = ["sh", "-c", "if [ \"$(cat /www/mode 2>/dev/null)\" = broken ]; then echo 'bad mode' >&2; "
                      "exit 3; fi; " + web["command"][2]]
    doc["x-orchestrator"] = {"consistency": "live",
                             "drill": {"service": "web", "command": ["cat", "/www/index.html"]}}
    path.write_text(json.dumps(doc, indent=2))


@pytest.fixture
def booting(lab, tmp_path):
    cyc = build_cycle(lab, tmp_path, rewrite=picky_git, extra={"HEALTH_TIMEOUT": "20"})
    yield cyc
    teardown_cycle(cyc)


def live(cyc) -> dict[str, tuple[str, str]]:
    names = sorted(cyc.containers())
    out = subprocess.run(["docker", "inspect", "--format", "{{.Name}} {{.Id}} {{.State.StartedAt}}", *names],
                         capture_output=True, text=True, check=True).stdout
    return {n.lstrip("/"): (i, t) for n, i, t in (line.split() for line in out.splitlines())}


def leftovers() -> list[str]:
    ps = subprocess.run(["docker", "ps", "-a", "--format", "{{.Names}}"], capture_output=True, text=True).stdout
    nets = subprocess.run(["docker", "network", "ls", "--format", "{{.Name}}"], capture_output=True, text=True).stdout
    return [n for n in ps.split() + nets.split() if n.startswith("drill-")]


def test_restored_stacks_boot_isolated_while_the_live_ones_serve_untouched(booting):
    cyc = booting
    night = run_cli(cyc.env_path, "backup", "--json", timeout=600)
    assert night.returncode == 0, night.stdout + night.stderr
    before = live(cyc)
    port = hub_port(cyc)
    assert https_through_hub("photo.lab.test", port) == "<h1>photo</h1>"
    answers: list[str] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            answers.append(https_through_hub("photo.lab.test", port, deadline=0))
            time.sleep(0.2)

    poller = threading.Thread(target=serve)
    poller.start()
    try:
        drill = run_cli(cyc.env_path, "drill", "--boot", "--json", timeout=900)
    finally:
        stop.set()
        poller.join()
    assert drill.returncode == 0, drill.stdout + drill.stderr
    results = {r["service"]: r for r in json.loads(drill.stdout)["services"]}
    assert all(r["booted"] for r in results.values()), results
    assert results["git"]["boot"].startswith("booted healthy in") and "probe: <h1>git</h1>" in results["git"]["boot"]
    assert len(answers) > 3 and set(answers) == {"<h1>photo</h1>"}  # not one request lost
    assert live(cyc) == before  # the same containers, never restarted
    assert leftovers() == []


def test_an_archive_equal_to_its_snapshot_whose_service_cannot_start_fails_the_boot(booting):
    cyc = booting
    seed(cyc.base, "git", {"mode": b"broken"})  # the live server read its mode at start: it keeps running
    # (a restart would now fail: the nightly backup's start says so, which is why git is live here)
    night = run_cli(cyc.env_path, "backup", "--json", timeout=600)
    assert night.returncode == 0, night.stdout + night.stderr
    bytes_only = run_cli(cyc.env_path, "drill", "git", "--no-boot", timeout=600)
    assert bytes_only.returncode == 0, bytes_only.stdout + bytes_only.stderr
    booted = run_cli(cyc.env_path, "drill", "git", "--boot", "--json", timeout=900)
    assert booted.returncode == 1, booted.stdout + booted.stderr
    [git] = json.loads(booted.stdout)["services"]
    assert git["mode"] == "compared" and git["differences"] == 0  # the bytes are equal
    assert git["booted"] is False and git["boot"].startswith("FAILED: the restored stack did not come up: "
                                                             "drill-git-web (exited, exit code 3)")
    assert "bad mode" in git["boot"]  # the app's own last words
    assert "drill: FAILED (git)" in run_cli(cyc.env_path, "drill", "git", "--boot", timeout=900).stdout
    assert leftovers() == []
