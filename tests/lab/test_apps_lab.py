"""Real applications from Debian's packages (the lab's local image), backed up under load and
brought back, not just compared:

- Fossil, a real application whose whole repository is one SQLite database, serving its wiki
  through the hub over HTTPS. Backed up live (no stop: SQLite is crash-safe and the snapshot is
  atomic) while pages are being written one transaction each. The restored copy passes SQLite's
  integrity check and fossil's own, holds pages 1..N with no gap, and after the in-place restore
  the app's own JSON API answers through the hub with exactly those pages.
- Redis with its append-only file, backed up in stop mode while a client writes: the restored
  counter holds every increment Redis acknowledged before it stopped.
- the boot drill boots both restored stacks, isolated, and each one's probe (a SQL count, DBSIZE)
  answers from the restored data.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
import uuid

import pytest

from tests.lab.conftest import build_cycle, teardown_cycle
from tests.lab.envfile import run_cli
from tests.lab.test_stacks_lab import https_through_hub, hub_port

pytestmark = [pytest.mark.lab, pytest.mark.compose]

REPO = "/data/notes.fossil"
PAGES = "select count(*) from tag where tagname like 'wiki-%'"
# one page per fossil call, each its own SQLite transaction; a busy database is retried
WRITER = (f"i=0; while [ ! -e /tmp/stop ]; do i=$((i+1)); "
          f"until echo \"page $i\" | fossil wiki create P-$i -R {REPO} >/dev/null 2>>/tmp/writer.err; do "
          "[ -e /tmp/stop ] && break 2; sleep 0.1; done; done; touch /tmp/stopped")
HTTP_OK = ("exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /json/version HTTP/1.0\\r\\n\\r\\n' >&3 "
           "&& head -n 1 <&3 | grep -q ' 200 '")


def apps(cyc, lab) -> None:
    """notes: Fossil on port 8080 (the hub's site for it already points there); cache: Redis."""
    notes = {
        "services": {"web": {
            "image": lab.apps_image,
            "container_name": f"{cyc.prefix}notes",
            "user": "999:999",
            "init": True,
            "environment": {"HOME": "/tmp", "USER": "admin"},
            "command": ["sh", "-c", f"[ -s {REPO} ] || fossil init {REPO} --admin-user admin >/dev/null; "
                        f"exec fossil server {REPO} --port 8080"],
            "volumes": [f"{cyc.base}/notes/data:/data"],
            "networks": [f"{cyc.prefix}notes_net"],
            "healthcheck": {"test": ["CMD", "bash", "-c", HTTP_OK], "interval": "1s", "retries": 60},
        }},
        "networks": {f"{cyc.prefix}notes_net": {"external": True}},
        "x-orchestrator": {"consistency": "live",
                           "drill": {"service": "web", "command": ["sqlite3", REPO, PAGES]}},
    }
    cache = {
        "services": {"redis": {
            "image": lab.apps_image,
            "container_name": f"{cyc.prefix}cache",
            "user": "999:999",
            "command": ["redis-server", "--dir", "/data", "--appendonly", "yes", "--appendfsync", "everysec",
                        "--save", "", "--protected-mode", "no"],
            "volumes": [f"{cyc.base}/cache/data:/data"],
            "networks": [f"{cyc.prefix}cache_net"],
            "stop_grace_period": "30s",
            "healthcheck": {"test": ["CMD-SHELL", "redis-cli ping | grep -q PONG"], "interval": "1s", "retries": 60},
        }},
        "networks": {f"{cyc.prefix}cache_net": {"external": True}},
        "x-orchestrator": {"drill": {"service": "redis", "command": ["redis-cli", "get", "counter"]}},
    }
    (cyc.services_dir / "notes" / "compose.yaml").write_text(json.dumps(notes, indent=2))
    (cyc.services_dir / "cache" / "compose.yaml").write_text(json.dumps(cache, indent=2))


@pytest.fixture(scope="module")
def lab_apps(lab, tmp_path_factory):
    cyc = build_cycle(lab, tmp_path_factory.mktemp("apps"), spokes=["notes", "cache"], rewrite=apps,
                      extra={"HEALTH_TIMEOUT": "120"})
    cyc.notes, cyc.cache = f"{cyc.prefix}notes", f"{cyc.prefix}cache"
    yield cyc
    for name in ("notes-scratch", "cache-scratch"):
        subprocess.run(["docker", "rm", "-f", f"{cyc.prefix}{name}"], capture_output=True, timeout=120)
    teardown_cycle(cyc)


def sh(container: str, script: str, **kw) -> str:
    out = subprocess.run(["docker", "exec", container, "sh", "-c", script], capture_output=True, text=True,
                         timeout=300, **kw)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout.strip()


def pages(container: str) -> list[int]:
    names = sh(container, f"sqlite3 {REPO} \"select substr(tagname, 8) from tag where tagname like 'wiki-P-%'\"")
    return sorted(int(n) for n in names.split())


def night(cyc, why: str = "") -> dict:
    """A night that must be OK, and never a mass change: Fossil's one SQLite file and Redis's
    append-only files rewritten (BGREWRITEAOF) are an app's ordinary nights (false alarms the
    mass-change issue names; what each night changed is printed, docs/security.md quotes it)."""
    r = run_cli(cyc.env_path, "backup", "--json", timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads(r.stdout)
    assert report["mass_changes"] == {} and report["held"] == {}, report
    for d in report["datasets"]:
        if d["service"] in cyc.spokes and d.get("changed"):
            print(f"\nchanged ({why or 'a night'}): {d['service']}: {d['changed']}")
    return report


def archive_of(report: dict, service: str) -> str:
    return next(d["archive"] for d in report["datasets"] if d["service"] == service)


def scratch(cyc, lab, tmp_path, service: str, archive: str, args: list[str]) -> str:
    """The archive extracted into scratch, and a throwaway container of the app on it (no network)."""
    dest = tmp_path / f"scratch-{uuid.uuid4().hex[:6]}"
    r = run_cli(cyc.env_path, "extract-archive", service, archive, str(dest), timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    name = f"{cyc.prefix}{service}-scratch"
    subprocess.run(["docker", "rm", "-f", name], capture_output=True, timeout=60)
    subprocess.run(["docker", "run", "-d", "--name", name, "--network", "none", "--user", "999:999",
                    "-e", "HOME=/tmp", "-e", "USER=admin", "-v", f"{dest}/data:/data", lab.apps_image, *args],
                   check=True, capture_output=True, timeout=120)
    return name


def test_fossil_backed_up_live_while_writing_comes_back_whole_through_the_hub(lab_apps, lab, tmp_path):
    cyc = lab_apps
    port = hub_port(cyc)
    subprocess.run(["docker", "exec", "-d", cyc.notes, "sh", "-c", WRITER], check=True, timeout=60)
    time.sleep(2)  # pages being written when the night begins
    report = night(cyc, "Fossil writing pages")
    assert "notes" in report["live_stacks"]
    sh(cyc.notes, "touch /tmp/stop; for n in $(seq 300); do [ -e /tmp/stopped ] && exit 0; sleep 0.2; done; "
                  "cat /tmp/writer.err; exit 1")
    written = pages(cyc.notes)

    box = scratch(cyc, lab, tmp_path, "notes", archive_of(report, "notes"), ["sleep", "600"])
    restored = pages(box)
    assert restored == list(range(1, len(restored) + 1)) and len(restored) > 0  # 1..N, no gap, no torn page
    assert restored[-1] < written[-1]  # written on after the snapshot
    assert sh(box, f"sqlite3 {REPO} 'pragma integrity_check'") == "ok"
    assert "0 errors" in sh(box, f"fossil test-integrity -R {REPO}")

    r = run_cli(cyc.env_path, "restore", "--yes", "notes", archive_of(report, "notes"), timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    served = json.loads(https_through_hub("notes.lab.test", port, deadline=60, path="/json/wiki/list"))
    assert sorted(int(n[2:]) for n in served["payload"] if n.startswith("P-")) == restored
    last = restored[-1]
    page = json.loads(https_through_hub("notes.lab.test", port, path=f"/json/wiki/get?name=P-{last}"))
    assert page["payload"]["content"] == f"page {last}\n"


def test_redis_stopped_for_the_snapshot_keeps_every_acknowledged_write(lab_apps, lab, tmp_path):
    cyc = lab_apps
    client = subprocess.Popen(["docker", "exec", "-i", cyc.cache, "redis-cli"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, bufsize=1)
    acked: list[int] = []

    def write() -> None:  # one INCR at a time: a reply read is a write Redis acknowledged
        try:
            while True:
                client.stdin.write("INCR counter\n")
                client.stdin.flush()
                line = client.stdout.readline()
                if not line.strip().isdigit():
                    return
                acked.append(int(line))
        except (BrokenPipeError, OSError, ValueError):
            return

    writer = threading.Thread(target=write)
    writer.start()
    time.sleep(2)
    report = night(cyc, "Redis under INCR, Fossil idle")  # stops the stack: the client's connection ends with it
    writer.join(timeout=60)
    client.kill()
    assert "cache" in report["stopped_stacks"] and len(acked) > 100

    box = scratch(cyc, lab, tmp_path, "cache", archive_of(report, "cache"),
                  ["redis-server", "--dir", "/data", "--appendonly", "yes"])
    deadline = time.monotonic() + 60
    ping = ["docker", "exec", box, "redis-cli", "ping"]
    while subprocess.run(ping, capture_output=True, text=True).stdout.strip() != "PONG":
        logs = subprocess.run(["docker", "logs", box], capture_output=True, text=True)
        assert time.monotonic() < deadline, logs.stdout + logs.stderr
        time.sleep(0.3)
    restored = int(sh(box, "redis-cli get counter"))
    assert acked[-1] <= restored <= acked[-1] + 1  # every acknowledged increment; at most the one in flight

    r = run_cli(cyc.env_path, "restore", "--yes", "cache", archive_of(report, "cache"), timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    assert int(sh(cyc.cache, "redis-cli get counter")) == restored


def test_the_boot_drill_boots_both_apps_and_their_probes_answer_from_the_archive(lab_apps):
    cyc = lab_apps
    # a day's ordinary use: a few wiki pages (Fossil: one SQLite file modified)
    sh(cyc.notes, f"for i in 1 2 3; do echo \"note $i\" | fossil wiki create N-$i -R {REPO} >/dev/null; done")
    count = sh(cyc.notes, f"sqlite3 {REPO} \"{PAGES}\"")
    counter = sh(cyc.cache, "redis-cli get counter")
    # Redis rewrites its append-only files (a new base, a new increment file, a new manifest)
    sh(cyc.cache, "redis-cli bgrewriteaof >/dev/null; for n in $(seq 100); do "
                  "redis-cli info persistence | grep -q 'aof_rewrite_in_progress:0' && exit 0; sleep 0.1; done; exit 1")
    night(cyc, "Fossil pages, and an AOF rewrite after cache's restore")  # the archive holds what runs now
    r = run_cli(cyc.env_path, "drill", "notes", "cache", "--boot", "--json", timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    booted = {s["service"]: s for s in json.loads(r.stdout)["services"]}
    assert booted["notes"]["booted"] and f"probe: {count}" in booted["notes"]["boot"], booted
    assert booted["cache"]["booted"] and f"probe: {counter}" in booted["cache"]["boot"], booted
