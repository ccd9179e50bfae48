"""Image updates on the real lab: images built locally and pushed to the lab's registry on
127.0.0.1, a stack whose data is on a zfs-fuse dataset, the hub and another spoke beside it.

Each image version writes its number into the data when it starts; version 3 also "migrates"
the data (writes /data/migrated) and then never becomes healthy, as a failed upgrade does."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.lab.conftest import build_cycle, teardown_cycle
from tests.lab.envfile import cli_argv, run_cli
from tests.lab.test_monitoring_lab import Recorder

pytestmark = [pytest.mark.lab, pytest.mark.compose]

ENTRY = ("echo $VERSION > /data/version; [ $VERSION = 3 ] && echo v3 > /data/migrated; "
         "sleep $DELAY; [ $HEALTHY = 1 ] && touch /tmp/healthy; "
         "trap 'exit 0' TERM; while :; do sleep 3600 & wait $!; done")


def build_push(lab, repo: str, version: int, healthy: bool = True, delay: int = 0) -> str:
    """Build `repo:stable` as this version and push it; returns the image ID."""
    ctx = Path(f"/tmp/update-ctx-{version}")
    ctx.mkdir(exist_ok=True)
    (ctx / "Dockerfile").write_text(
        f"FROM {lab.busybox_image}\nENV VERSION={version} HEALTHY={int(healthy)} DELAY={delay}\n"
        f"CMD {json.dumps(['sh', '-c', ENTRY])}\n")
    subprocess.run(["docker", "build", "-q", "-t", f"{repo}:stable", str(ctx)], check=True, capture_output=True,
                   timeout=300, env={"DOCKER_BUILDKIT": "0", "PATH": "/usr/local/bin:/usr/bin:/bin"})
    subprocess.run(["docker", "push", "-q", f"{repo}:stable"], check=True, capture_output=True, timeout=300)
    return image_id(f"{repo}:stable")


def image_id(ref: str) -> str:
    return subprocess.run(["docker", "image", "inspect", "--format", "{{.Id}}", ref], capture_output=True,
                          text=True, check=True, timeout=30).stdout.strip()


def container(name: str, fmt: str) -> str:
    return subprocess.run(["docker", "inspect", "--format", fmt, name], capture_output=True, text=True,
                          timeout=30).stdout.strip()


@pytest.fixture(scope="module")
def upd(lab, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("update")
    repo = f"{lab.registry}/lab/app-{lab.unique('u')}"
    v1 = build_push(lab, repo, 1)

    def rewrite(cyc, lab):
        compose = cyc.services_dir / "app" / "compose.yaml"
        doc = json.loads(compose.read_text())
        web = doc["services"]["web"]
        web.update(image="${APP_IMAGE}", user="999:999", command=None,
                   volumes=[f"{cyc.base}/app/data:/data"],
                   healthcheck={"test": ["CMD", "test", "-f", "/tmp/healthy"], "interval": "1s", "retries": 3})
        del web["command"]
        compose.write_text(json.dumps(doc))
        (cyc.services_dir / "app" / ".env").write_text(f"APP_IMAGE={repo}:stable\n")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    cyc = build_cycle(lab, tmp, spokes=["app", "other"], rewrite=rewrite,
                      extra={"UPDATE_SETTLE_SECONDS": "2", "HEALTH_TIMEOUT": "20", "UPDATE_SNAPSHOTS_KEEP": "2",
                             "UPDATE_PUSH_URL": f"http://127.0.0.1:{server.server_port}/ping/upd",
                             "PROMETHEUS_TEXTFILE": str(tmp / "textfile" / "orchestrator.prom")})
    cyc.textfile = tmp / "textfile" / "orchestrator_update.prom"
    cyc.repo, cyc.v1 = repo, v1
    cyc.app, cyc.other = f"{cyc.prefix}app", f"{cyc.prefix}other"
    cyc.other_started = container(cyc.other, "{{.State.StartedAt}}")
    yield cyc
    server.shutdown()
    teardown_cycle(cyc)


def data(cyc, name: str) -> str | None:
    path = cyc.base / "app" / "data" / name
    return path.read_text().strip() if path.exists() else None


def pre_update_snapshots(cyc) -> list[str]:
    out = subprocess.run(["zfs", "list", "-H", "-t", "snapshot", "-o", "name", "-r", f"{cyc.parent}/app"],
                         capture_output=True, text=True, timeout=60).stdout
    return [n for n in out.split() if "@pre-update-" in n]


def test_nothing_new_restarts_nothing(upd):
    started = container(upd.app, "{{.State.StartedAt}}")
    out = run_cli(upd.env_path, "outdated", "--json")
    assert out.returncode == 0, out.stderr
    rows = {r["service"]: r for r in json.loads(out.stdout) if r["stack"] == "app"}
    assert rows["web"]["status"] == "up to date" and rows["web"]["running"] == upd.v1
    r = run_cli(upd.env_path, "update", "--yes", "app")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "unchanged" in r.stdout and container(upd.app, "{{.State.StartedAt}}") == started
    assert pre_update_snapshots(upd) == []


@pytest.mark.v1_contract
def test_a_healthy_new_image_runs_and_its_pre_update_snapshot_is_kept(upd, lab):
    v2 = build_push(lab, upd.repo, 2)
    # locally the tag points where it did before the push: only the registry has v2
    subprocess.run(["docker", "image", "tag", upd.v1, f"{upd.repo}:stable"], check=True, timeout=30)
    out = json.loads(run_cli(upd.env_path, "outdated", "--json", "app").stdout)
    assert [r["status"] for r in out] == ["newer available"] and out[0]["registry"] == v2
    r = run_cli(upd.env_path, "update", "--yes", "app")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "updated" in r.stdout
    assert container(upd.app, "{{.Image}}") == v2 and data(upd, "version") == "2"
    (snap,) = pre_update_snapshots(upd)
    assert snap.startswith(f"{upd.parent}/app@pre-update-")
    upd.v2 = v2


def test_a_failing_new_image_is_rolled_back_with_its_data(upd, lab):
    build_push(lab, upd.repo, 3, healthy=False)
    subprocess.run(["docker", "image", "tag", upd.v2, f"{upd.repo}:stable"], check=True, timeout=30)
    Recorder.seen = []
    r = run_cli(upd.env_path, "update", "--yes", "app", timeout=300)
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert "rolled back" in out and "'web'" in out and "unhealthy" in out
    assert container(upd.app, "{{.Image}}") == upd.v2  # the image it ran before
    assert data(upd, "migrated") is None  # what v3 wrote on start is gone with the rollback
    assert data(upd, "version") == "2"
    assert image_id(f"{upd.repo}:stable") == upd.v2  # docker-up keeps starting the old version
    # the same kind of monitoring as backups: the push URL hears start then fail, the textfile says why
    assert [(m, p) for m, p, _ in Recorder.seen] == [("GET", "/ping/upd/start"), ("POST", "/ping/upd/fail")]
    assert "rolled back" in Recorder.seen[-1][2]
    assert 'orchestrator_update_last_result{stack="app",result="rolled_back"} 1' in upd.textfile.read_text()
    up = run_cli(upd.env_path, "docker-up", "app")
    assert up.returncode == 0 and container(upd.app, "{{.Image}}") == upd.v2


def test_an_unreachable_registry_is_named_and_nothing_stops(upd):
    env = upd.services_dir / "app" / ".env"
    good = env.read_text()
    started = container(upd.app, "{{.State.StartedAt}}")
    env.write_text("APP_IMAGE=127.0.0.1:9/lab/nothing:stable\n")
    try:
        out = json.loads(run_cli(upd.env_path, "outdated", "--json", "app").stdout)
        assert out[0]["status"].startswith("registry: "), out
        r = run_cli(upd.env_path, "update", "--yes", "app")
        assert r.returncode == 1 and "pull failed, nothing was stopped" in r.stdout, r.stdout + r.stderr
        assert container(upd.app, "{{.State.StartedAt}}") == started
    finally:
        env.write_text(good)


def test_sigterm_during_the_health_wait_leaves_the_old_version_with_its_data(upd, lab):
    v4 = build_push(lab, upd.repo, 4, delay=15)
    subprocess.run(["docker", "image", "tag", upd.v2, f"{upd.repo}:stable"], check=True, timeout=30)
    proc = subprocess.Popen(cli_argv(upd.env_path, "update", "--yes", "app"), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while container(upd.app, "{{.Image}}") != v4:  # the new version is up and not healthy yet
        assert time.monotonic() < deadline and proc.poll() is None, "update never started the new image"
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 1, out
    assert "interrupted" in out
    assert container(upd.app, "{{.Image}}") == upd.v2 and data(upd, "version") == "2"
    assert container(upd.app, "{{.State.Health.Status}}") == "healthy"


def test_rollback_by_hand_and_other_stacks_untouched(upd):
    r = run_cli(upd.env_path, "rollback", "--yes", "app")
    assert r.returncode == 0, r.stdout + r.stderr
    assert container(upd.app, "{{.Image}}") == upd.v1 and data(upd, "version") == "1"
    assert len(pre_update_snapshots(upd)) <= 2  # UPDATE_SNAPSHOTS_KEEP
    assert container(upd.other, "{{.State.StartedAt}}") == upd.other_started
