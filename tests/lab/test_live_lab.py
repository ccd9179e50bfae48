"""Live stacks on the real lab: a spoke and the hub declare `x-orchestrator: consistency: live`
in their own compose files, another spoke is stop-mode. During a backup the live spoke answers
through the live hub on every HTTPS probe while the stop-mode spoke is stopped; the spoke's
before-snapshot command ran before the snapshot (its output is in the archive); a failing one
stops that stack for the night instead."""

from __future__ import annotations

import json
import subprocess
import threading
import time

import pytest

from tests.lab.conftest import build_cycle, teardown_cycle
from tests.lab.envfile import run_cli
from tests.lab.test_stacks_lab import https_through_hub, hub_port

# compose v2 only: v1's `config` drops top-level x- keys, so on v1 every stack is stop-mode
pytestmark = pytest.mark.lab
CHECKPOINT = {"service": "web", "command": ["sh", "-c", "echo checkpoint-$(cat /proc/uptime) > /www/checkpoint"]}


def make_live(cyc, lab) -> None:
    for name, policy in (("live", {"consistency": "live", "before-snapshot": [CHECKPOINT]}),
                         ("reverseproxy", {"consistency": "live"})):
        compose = cyc.services_dir / name / "compose.yaml"
        doc = json.loads(compose.read_text())
        doc["x-orchestrator"] = policy
        compose.write_text(json.dumps(doc))


@pytest.fixture(scope="module")
def live(lab, tmp_path_factory):
    cyc = build_cycle(lab, tmp_path_factory.mktemp("live"), spokes=["live", "plain"], rewrite=make_live)
    yield cyc
    teardown_cycle(cyc)


class Prober(threading.Thread):
    """GET https://live.lab.test through the hub every 100 ms until stopped; bounded."""

    def __init__(self, port: int):
        super().__init__(daemon=True)
        self.port, self.ok, self.failed, self.done = port, 0, [], threading.Event()

    def run(self) -> None:
        end = time.monotonic() + 600
        while not self.done.is_set() and time.monotonic() < end:
            r = subprocess.run(["curl", "-sk", "--max-time", "2", "--resolve", f"live.lab.test:{self.port}:127.0.0.1",
                                f"https://live.lab.test:{self.port}/"], capture_output=True, text=True)
            if r.returncode == 0 and "<h1>live</h1>" in r.stdout:
                self.ok += 1
            else:
                self.failed.append(r.returncode)
            time.sleep(0.1)


def test_a_live_stack_answers_through_a_live_hub_while_a_stop_mode_stack_is_stopped(live):
    # Caddy issues its certificate on the first handshake: only then does probing start
    assert https_through_hub("live.lab.test", hub_port(live)) == "<h1>live</h1>"
    prober = Prober(hub_port(live))
    prober.start()
    r = run_cli(live.env_path, "backup", "--json", timeout=600)
    prober.done.set()
    prober.join(timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads(r.stdout)
    assert report["stopped_stacks"] == ["plain"] and sorted(report["live_stacks"]) == ["live", "reverseproxy"]
    assert report["stack_downtime"]["live"] == 0 and report["stack_downtime"]["plain"] > 0
    assert prober.failed == [] and prober.ok >= 10, (prober.ok, prober.failed)
    # the before-snapshot command ran before the snapshot: what it wrote is in the archive
    archive = next(d["archive"] for d in report["datasets"] if d["service"] == "live")
    dest = live.env_path.parent / "extracted"
    extracted = run_cli(live.env_path, "extract-archive", "live", archive, str(dest))
    assert extracted.returncode == 0, extracted.stderr
    assert (dest / "data" / "checkpoint").read_text().startswith("checkpoint-")
    assert live.host_is_clean() == []


def test_a_failing_before_snapshot_command_stops_that_stack_for_the_night(live):
    compose = live.services_dir / "live" / "compose.yaml"
    good = compose.read_text()
    doc = json.loads(good)
    doc["x-orchestrator"]["before-snapshot"] = [{"service": "web", "command": ["sh", "-c", "echo no db >&2; exit 3"]}]
    compose.write_text(json.dumps(doc))
    try:
        r = run_cli(live.env_path, "backup", "--json", timeout=600)
    finally:
        compose.write_text(good)
    assert r.returncode == 0, r.stdout + r.stderr  # the night is still good: the snapshot was taken
    report = json.loads(r.stdout)
    assert sorted(report["stopped_stacks"]) == ["live", "plain"] and report["live_stacks"] == ["reverseproxy"]
    assert any("live: before-snapshot" in n and "stop mode this night" in n for n in report["notes"]), report["notes"]
    assert {d["service"]: d["result"] for d in report["datasets"]}["live"] in ("ok", "unchanged")
    assert live.host_is_clean() == []
