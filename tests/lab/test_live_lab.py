"""Live stacks on the real lab: a spoke and the hub declare `x-orchestrator: consistency: live`
in their own compose files, another spoke is stop-mode. During a backup the live spoke answers
through the live hub on every HTTPS probe while the stop-mode spoke is stopped; the spoke's
before-snapshot command ran before the snapshot (its output is in the archive); a failing one
stops that stack for the night instead. The hub runs the shipped Caddyfile's while_backing_up
snippet: while the stop-mode spoke is stopped, its site answers a 503 maintenance page with
Retry-After, never a refused connection or Caddy's bare 502."""

from __future__ import annotations

import json
import subprocess
import threading
import time

import pytest

from tests.lab.conftest import build_cycle, teardown_cycle
from tests.lab.envfile import run_cli
from tests.lab.stacks import caddyfile, shipped_snippet
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
    (cyc.services_dir / "reverseproxy" / "Caddyfile").write_text(
        caddyfile(cyc.prefix, cyc.spokes, snippet=shipped_snippet("while_backing_up")))


@pytest.fixture(scope="module")
def live(lab, tmp_path_factory):
    cyc = build_cycle(lab, tmp_path_factory.mktemp("live"), spokes=["live", "plain"], rewrite=make_live)
    yield cyc
    teardown_cycle(cyc)


class Prober(threading.Thread):
    """GET https://<site>.lab.test through the hub every `every` s until stopped; bounded. Each
    answer is sorted: "up" (the spoke's page), "maintenance" (the hub's 503 page with
    Retry-After) or what went wrong (curl's exit code, the status)."""

    def __init__(self, port: int, site: str, every: float = 0.1, max_time: float = 2):
        super().__init__(daemon=True)
        self.port, self.site, self.every, self.max_time = port, site, every, max_time
        self.seen: list[str] = []
        self.done = threading.Event()

    def probe(self) -> str:
        host = f"{self.site}.lab.test"
        r = subprocess.run(["curl", "-sk", "-i", "--max-time", str(self.max_time),
                            "--resolve", f"{host}:{self.port}:127.0.0.1", f"https://{host}:{self.port}/"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            return f"curl exit {r.returncode}"
        head, _, body = r.stdout.replace("\r\n", "\n").partition("\n\n")
        status = head.split(None, 2)[1] if head.startswith("HTTP/") else "?"
        if status == "200" and f"<h1>{self.site}</h1>" in body:
            return "up"
        if status == "503" and "Backing up" in body and "retry-after: 30" in head.lower():
            return "maintenance"
        return f"HTTP {status}"

    def run(self) -> None:
        end = time.monotonic() + 600
        while not self.done.is_set() and time.monotonic() < end:
            self.seen.append(self.probe())
            time.sleep(self.every)


def test_a_live_stack_answers_through_a_live_hub_while_a_stop_mode_stack_is_stopped(live):
    # Caddy issues its certificate on the first handshake: only then does probing start
    assert https_through_hub("live.lab.test", hub_port(live)) == "<h1>live</h1>"
    assert https_through_hub("plain.lab.test", hub_port(live)) == "<h1>plain</h1>"
    prober, plain = Prober(hub_port(live), "live"), Prober(hub_port(live), "plain", every=0.05, max_time=10)
    for p in (prober, plain):
        p.start()
    r = run_cli(live.env_path, "backup", "--json", timeout=600)
    for p in (prober, plain):
        p.done.set()
        p.join(timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads(r.stdout)
    assert report["stopped_stacks"] == ["plain"] and sorted(report["live_stacks"]) == ["live", "reverseproxy"]
    assert report["stack_downtime"]["live"] == 0 and report["stack_downtime"]["plain"] > 0
    assert set(prober.seen) == {"up"} and len(prober.seen) >= 10, prober.seen
    # the stop-mode spoke, through the live hub: never a refused connection or a bare 502. A
    # request that reaches Caddy while the container is going away waits for the dial (up to
    # Caddy's 3 s), then gets either the page again or the maintenance page.
    assert set(plain.seen) <= {"up", "maintenance"}, " ".join(plain.seen)
    # held down longer (a slow stop, a failed start): the maintenance page, at once
    container = f"{live.prefix}plain"
    subprocess.run(["docker", "stop", "-t", "5", container], check=True, capture_output=True, timeout=60)
    try:
        assert Prober(hub_port(live), "plain", max_time=10).probe() == "maintenance"
    finally:
        subprocess.run(["docker", "start", container], check=True, capture_output=True, timeout=60)
    assert https_through_hub("plain.lab.test", hub_port(live)) == "<h1>plain</h1>"
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
