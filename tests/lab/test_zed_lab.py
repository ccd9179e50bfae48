"""The zedlet on the lab: `install-zedlet` writes it, and run as zed runs it (the script itself,
with the ZEVENT_* variables zed sets, on a real zfs-fuse mirror whose leg was just taken
offline) it reaches a real HTTP receiver through the tool's own NOTIFY_URLS (Apprise json://),
naming the pool and the disk; a routine event sends nothing. zfs-fuse has no zed: the daemon
itself is left to the VM lab."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from http.server import ThreadingHTTPServer

import pytest

from tests.lab.envfile import run_cli, write_lab_env
from tests.lab.test_monitoring_lab import Recorder

pytestmark = [pytest.mark.lab]


@pytest.fixture
def mirror(lab, tmp_path):
    pool = lab.unique("zd")
    legs = [tmp_path / "a.img", tmp_path / "b.img"]
    for leg in legs:
        subprocess.run(["truncate", "-s", "128M", str(leg)], check=True)
    subprocess.run(["zpool", "create", "-m", "none", pool, "mirror", *map(str, legs)], check=True,
                   capture_output=True, timeout=120)
    yield pool, legs
    subprocess.run(["zpool", "destroy", "-f", pool], capture_output=True, timeout=120)


def test_the_zedlet_tells_notify_urls_which_disk_left_the_mirror(lab, tmp_path, mirror):
    pool, legs = mirror
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Recorder.seen = []
    env_path, _ = write_lab_env(tmp_path, lab, ["git/data:REMAPPED_APP_UID"], extra={
        "NOTIFY_URLS": f"json://127.0.0.1:{server.server_port}/zed"})
    zed_dir = tmp_path / "zed.d"
    zed_dir.mkdir()
    try:
        r = run_cli(env_path, "--dry-run", "install-zedlet", "--zed-dir", str(zed_dir))
        assert r.returncode == 0 and r.stdout.startswith("#!/bin/sh\n") and not any(zed_dir.iterdir()), r.stderr
        r = run_cli(env_path, "install-zedlet", "--zed-dir", str(zed_dir))
        assert r.returncode == 0 and r.stdout.startswith("wrote "), r.stdout + r.stderr
        zedlet = zed_dir / "all-orchestrator.sh"
        assert os.access(zedlet, os.X_OK)
        # again: the line the provisioning playbook reads to report changed=0 (and not restart zed)
        r = run_cli(env_path, "install-zedlet", "--zed-dir", str(zed_dir))
        assert (r.returncode, r.stdout.strip()) == (0, "install-zedlet: nothing to change"), r.stdout + r.stderr

        subprocess.run(["zpool", "offline", pool, str(legs[1])], check=True, capture_output=True, timeout=60)
        state = subprocess.run(["zpool", "list", "-H", "-o", "health", pool], capture_output=True, text=True,
                               timeout=60).stdout.strip()
        assert state == "DEGRADED"
        zed_env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "ZEVENT_CLASS": "resource.fs.zfs.statechange",
                   "ZEVENT_SUBCLASS": "statechange", "ZEVENT_POOL": pool, "ZEVENT_VDEV_PATH": str(legs[1]),
                   "ZEVENT_VDEV_STATE_STR": "OFFLINE"}
        run = subprocess.run([str(zedlet)], env=zed_env, capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stdout + run.stderr
        [(method, path, body)] = Recorder.seen
        sent = json.loads(body)
        assert (method, path) == ("POST", "/zed") and sent["type"] == "failure"
        assert sent["title"] == f"ZFS pool {pool}: {legs[1]} is OFFLINE"

        routine = dict(zed_env, ZEVENT_CLASS="sysevent.fs.zfs.history_event", ZEVENT_SUBCLASS="history_event")
        run = subprocess.run([str(zedlet)], env=routine, capture_output=True, text=True, timeout=120)
        assert run.returncode == 0 and len(Recorder.seen) == 1  # nothing sent for a routine event

        r = run_cli(env_path, "uninstall-zedlet", "--zed-dir", str(zed_dir))
        assert r.returncode == 0 and not zedlet.exists()
    finally:
        server.shutdown()
