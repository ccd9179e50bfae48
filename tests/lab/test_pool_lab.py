"""setup-pool, attach-mirror and the pool checks of doctor/status against the lab's real zfs-fuse,
on pools of 128 MiB sparse files with names no one else uses (never the lab's own pool):

- setup-pool builds a mirror of two files (zpool status shows mirror-0 with both);
- it refuses a file that holds a pool and a file with an ext4 filesystem, and changes nothing;
- attach-mirror turns a one-disk pool into a mirror;
- doctor warns "no redundancy" on the one-disk pool and fails naming DEGRADED when a leg is offline;
- a finished `zpool scrub` is read back by doctor and `status --json`.

Every pool made here is destroyed at the end, also when an assertion fails."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.lab.envfile import run_cli, write_lab_env

pytestmark = pytest.mark.lab

OK, WARN, FAIL = "ok", "warn", "fail"
NO_REDUNDANCY = "no redundancy: ZFS can detect but not repair corruption; see make attach-mirror"


def zpool(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["zpool", *args], capture_output=True, text=True, timeout=60, check=check)


def probe(path: Path) -> int:
    """blkid -p's exit code: 0 it found a signature, 2 nothing."""
    return subprocess.run(["blkid", "-p", str(path)], capture_output=True, timeout=30).returncode


def doctor(env: Path) -> dict[str, dict]:
    r = run_cli(env, "doctor", "--json", timeout=180)
    assert r.returncode in (0, 1), r.stdout + r.stderr
    return {c["name"]: c for c in json.loads(r.stdout)}


def env_for(lab, tmp_path: Path, pool: str) -> Path:
    """A .env whose ZFS_PARENT_DATASET lives in `pool` (which setup-pool creates)."""
    home = tmp_path / pool
    home.mkdir()
    env, _values = write_lab_env(home, lab, [f"{lab.unique('pl')}/data:REMAPPED_ROOT_UID"], extra={
        "ZFS_PARENT_DATASET": f"{pool}/services", "ZFS_BASE_MOUNTPOINT": str(home / "mnt" / "services"),
        "VIEW_DATASET": f"{pool}/views"})
    return env


@pytest.fixture
def pools(lab, tmp_path):
    """Names for the test's pools; every one that exists afterwards is destroyed."""
    made: list[str] = []

    def new() -> str:
        name = lab.unique("tp")
        assert name != lab.pool
        made.append(name)
        return name

    yield new
    for name in made:
        if zpool("list", "-H", "-o", "name", name, check=False).returncode == 0:
            zpool("destroy", "-f", name, check=False)


def test_setup_pool_attach_mirror_and_what_doctor_and_status_read(lab, tmp_path, pools):
    disks = tmp_path / "disks"
    disks.mkdir()
    a, b, c, d, e, f = (disks / f"{x}.img" for x in "abcdef")
    for disk in (a, b, c, d, e, f):
        subprocess.run(["truncate", "-s", "128M", str(disk)], check=True, timeout=30)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(c)], check=True, timeout=60)

    # --- setup-pool: a mirror of two clean files -------------------------------------------
    p1 = pools()
    env1 = env_for(lab, tmp_path, p1)
    dry = run_cli(env1, "--dry-run", "setup-pool", "--mountpoint", str(tmp_path / "mnt" / p1), str(a), str(b))
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert f"would create pool {p1} as a mirror of 2 disks" in dry.stdout
    # zfs-fuse (pool version 23) offers ashift and atime, not lz4, xattr=sa or acltype: named, not set
    assert "not set, this ZFS does not offer them: compression=lz4, xattr=sa, acltype=posixacl" in dry.stdout
    assert zpool("list", p1, check=False).returncode != 0 and probe(a) == 2  # the dry run changed nothing

    made = run_cli(env1, "setup-pool", "--yes", "--mountpoint", str(tmp_path / "mnt" / p1), str(a), str(b))
    assert made.returncode == 0, made.stdout + made.stderr
    assert made.stdout.splitlines()[-1] == f"pool {p1}: ONLINE, mirror of 2 disks"
    status = zpool("status", p1).stdout
    assert "mirror-0" in status and str(a) in status and str(b) in status
    assert zpool("get", "ashift", p1).stdout.split()[-2] == "12"
    props = subprocess.run(["zfs", "get", "-H", "-o", "value", "atime", p1], capture_output=True, text=True,
                           timeout=60).stdout.strip()
    assert props == "off"

    # --- refusals: a file that holds a pool, a file with a filesystem; an existing pool --------
    p2 = pools()
    env2 = env_for(lab, tmp_path, p2)
    for held, words in ((a, f"holds a ZFS pool ({p1})"), (c, "holds a filesystem (ext4)")):
        r = run_cli(env2, "setup-pool", "--yes", "--mountpoint", str(tmp_path / "mnt" / p2), str(held), str(e))
        assert r.returncode == 1 and f"{held} {words}" in r.stderr and "FORCE=1" in r.stderr, r.stdout + r.stderr
        assert zpool("list", p2, check=False).returncode != 0 and probe(e) == 2  # nothing changed
    again = run_cli(env1, "setup-pool", "--yes", str(e), str(f))
    assert again.returncode == 1 and f"pool {p1} already exists" in again.stderr
    assert probe(e) == 2 and probe(f) == 2

    # --- attach-mirror: a one-disk pool becomes a mirror --------------------------------------
    p3 = pools()
    env3 = env_for(lab, tmp_path, p3)
    single = run_cli(env3, "setup-pool", "--yes", "--mountpoint", str(tmp_path / "mnt" / p3), str(d))
    assert single.returncode == 0, single.stdout + single.stderr
    checks = doctor(env3)
    assert checks["pool redundancy"]["status"] == WARN
    assert checks["pool redundancy"]["detail"] == f"{p3} is 1 disk: {NO_REDUNDANCY}"
    assert checks["last scrub"]["status"] == WARN and checks["last scrub"]["detail"] == f"{p3}: never scrubbed"

    attached = run_cli(env3, "attach-mirror", "--yes", str(f))
    assert attached.returncode == 0, attached.stdout + attached.stderr
    status = zpool("status", p3).stdout
    assert "mirror-0" in status and str(d) in status and str(f) in status

    # --- a scrub's result, read back by doctor and status -------------------------------------
    zpool("scrub", p3)
    deadline = time.monotonic() + 30
    while "scrub completed" not in zpool("status", p3).stdout and time.monotonic() < deadline:
        time.sleep(0.5)
    checks = doctor(env3)
    assert (checks["pool redundancy"]["status"], checks["pool redundancy"]["detail"]) == (
        OK, f"{p3} is mirror of 2 disks")
    assert checks["last scrub"]["status"] == OK, checks["last scrub"]
    assert checks["last scrub"]["detail"].startswith(f"{p3}: finished ")
    assert checks["last scrub"]["detail"].endswith(" ago with 0 errors")
    shown = run_cli(env3, "status", "--json", timeout=180)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    pool = json.loads(shown.stdout)["pool"]
    assert (pool["name"], pool["state"], pool["layout"], pool["redundant"]) == (p3, "ONLINE", "mirror of 2 disks", True)
    assert (pool["scrub"]["kind"], pool["scrub"]["state"], pool["scrub"]["errors"]) == ("scrub", "finished", 0)
    assert 0 <= pool["scrub"]["age_seconds"] < 600

    # --- one leg offline: doctor fails naming DEGRADED and the disk ---------------------------
    zpool("offline", p1, str(b))
    checks = doctor(env1)
    assert checks["zfs pool"]["status"] == FAIL and checks["zfs pool"]["detail"] == f"pool {p1} is DEGRADED"
    devices = checks["pool devices"]
    assert devices["status"] == FAIL and f"{p1} is DEGRADED" in devices["detail"], devices
    assert f"{b} OFFLINE" in devices["detail"] and "zpool online" in devices["fix"]
