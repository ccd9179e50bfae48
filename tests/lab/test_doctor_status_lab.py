"""`doctor` and `status --json` on the lab host, read-only: no dataset, stack, daemon or file of
the host is created or changed. The .env points at a parent dataset that does not exist (so the
dataset checks have a real finding without creating one) and keeps its state under tmp_path.

Each assertion is checked against the host itself where the lab does not decide the answer
(sshd's configuration, the firewall, systemd, the cron entry): the test asks the same tools and
expects the verdict the design rules give for what they say."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.lab.conftest import build_cycle, teardown_cycle
from tests.lab.envfile import run_cli, write_lab_env
from tests.lab.stacks import seed

pytestmark = pytest.mark.lab

OK, WARN, FAIL = "ok", "warn", "fail"


def by_name(checks: list[dict]) -> dict[str, dict]:
    return {c["name"]: c for c in checks}


def sshd_t() -> dict[str, list[str]]:
    out = subprocess.run(["sshd", "-T"], capture_output=True, text=True, timeout=30)
    found: dict[str, list[str]] = {}
    for line in out.stdout.splitlines():
        key, _, value = line.partition(" ")
        found.setdefault(key.lower(), []).append(value.strip().lower())
    return found


@pytest.fixture
def lab_env(lab, tmp_path):
    svc_a, svc_b = lab.unique("da"), lab.unique("db")
    env_path, values = write_lab_env(tmp_path, lab, [f"{svc_a}/data:REMAPPED_ROOT_UID",
                                                     f"{svc_b}/data:REMAPPED_APP_UID"])
    return env_path, values, svc_a, svc_b


def test_doctor_reports_the_lab_as_it_is_and_changes_nothing(lab, lab_env):
    env_path, values, _a, _b = lab_env
    parent = values["ZFS_PARENT_DATASET"]
    daemon_json = Path("/etc/docker/daemon.json")
    before = daemon_json.stat().st_mtime_ns

    result = run_cli(env_path, "doctor", "--json", timeout=180)
    assert result.returncode == 1, result.stdout + result.stderr  # the lab has failing checks (below)
    checks = by_name(json.loads(result.stdout))
    assert len(checks) == 27, list(checks)
    # SERVICES_DIR is empty: no stack, no mount to miss
    assert checks["data coverage"]["status"] == OK and "0 stack(s)" in checks["data coverage"]["detail"]

    # what lab.sh sets up as the design says
    assert checks["userns-remap"]["status"] == OK, checks["userns-remap"]
    assert "100000.100000" in checks["userns-remap"]["detail"]
    assert checks["subuid/subgid"]["status"] == OK, checks["subuid/subgid"]
    conf = json.loads(daemon_json.read_text())
    if conf.get("log-driver") == "local":
        assert checks["docker log rotation"]["status"] == OK, checks["docker log rotation"]
        assert checks["docker log rotation"]["detail"].startswith("local")
    assert checks["compose v2"]["status"] == OK and "v2." in checks["compose v2"]["detail"]
    assert checks["zfs pool"] == {"status": OK, "name": "zfs pool", "detail": f"{lab.pool} imported, ONLINE",
                                  "fix": ""}
    # the pool's layout as zpool status shows it: the lab's pool is one file, no mirror
    layout = subprocess.run(["zpool", "status", lab.pool], capture_output=True, text=True, timeout=60).stdout
    redundant = any(w in layout for w in ("mirror", "raidz"))
    assert checks["pool redundancy"]["status"] == (OK if redundant else WARN), checks["pool redundancy"]
    assert redundant or "no redundancy: ZFS can detect but not repair corruption" in checks["pool redundancy"]["detail"]
    assert checks[".env mode"]["status"] == OK and "0600" in checks[".env mode"]["detail"]

    # what this .env points at: a parent dataset that does not exist, no backup, no key
    datasets = checks["service datasets"]
    assert datasets["status"] == FAIL and f"{parent} does not exist" in datasets["detail"], datasets
    assert datasets["fix"] == "make setup-storage"
    assert checks["last backup"]["status"] == FAIL and "never" in checks["last backup"]["detail"]
    assert checks["borg keys exported"]["status"] == WARN

    # free space: the same numbers the test reads itself
    out = subprocess.run(["zfs", "get", "-H", "-p", "-o", "value", "used,available", lab.pool],
                         capture_output=True, text=True, timeout=60, check=True).stdout.split()
    share = int(out[1]) / (int(out[0]) + int(out[1]))
    free = checks["pool free space"]
    assert f"in {lab.pool}" in free["detail"], free
    if abs(share - 0.20) > 0.01 and abs(share - 0.05) > 0.01:  # not on a threshold while other tests write
        assert free["status"] == (OK if share >= 0.20 else WARN if share >= 0.05 else FAIL), (share, free)

    # the boot import: only systemd can tell
    imp = checks["zfs import at boot"]
    if not Path("/run/systemd/system").is_dir():
        assert imp["status"] == WARN and "systemd is not running" in imp["detail"], imp

    # sshd as configured on this host (lab.sh starts its own sshd on 127.0.0.1 with -o options;
    # doctor audits the configuration the system's sshd runs with, as `sshd -T` prints it)
    conf_sshd = sshd_t()
    if conf_sshd:
        ports = [int(p) for p in conf_sshd["port"]]
        assert checks["ssh port"]["status"] == (WARN if min(ports) <= 1024 else OK), checks["ssh port"]
        assert "(sshd -T)" in checks["ssh port"]["detail"]
        root = conf_sshd["permitrootlogin"][0]
        assert checks["ssh root login"]["status"] == {"no": OK, "yes": FAIL}.get(root, WARN)
        password = conf_sshd["passwordauthentication"][0]
        if password == "yes":
            assert checks["ssh password login"]["status"] == FAIL
            assert "PasswordAuthentication no" in checks["ssh password login"]["fix"]

    # the firewall: the lab sets none up; with no ufw and no nft, iptables' INPUT chain decides
    fw = checks["firewall"]
    if not shutil.which("ufw") and not shutil.which("nft"):
        if shutil.which("iptables"):
            rules = subprocess.run(["iptables", "-S", "INPUT"], capture_output=True, text=True, timeout=30).stdout
            if "-P INPUT ACCEPT" in rules and not re.search(r"^-A INPUT -j (DROP|REJECT)", rules, re.M):
                assert fw["status"] == FAIL and "iptables: incoming accepted by default" in fw["detail"], fw
                assert "ufw default deny incoming" in fw["fix"]
        else:
            assert fw["status"] == WARN and "cannot tell" in fw["detail"], fw

    # zfs-fuse has no event daemon: doctor says nothing tells the user when a disk fails
    if not Path("/etc/zfs/zed.d").is_dir():
        assert checks["zed notifications"]["status"] == WARN and "zfs-zed" in checks["zed notifications"]["fix"]

    # this test's repositories are a local folder: a dead disk or a compromised VM takes them too
    hist = checks["history off this machine"]
    assert hist["status"] == WARN and "on this machine" in hist["detail"], hist

    # the cron entry and the boot unit: the lab tests install them in temp dirs only
    if not Path("/etc/cron.d/orchestrator-backup").exists():
        assert checks["nightly backup (cron)"]["status"] == FAIL
        assert checks["nightly backup (cron)"]["fix"] == "make install-cron"
    if not Path("/etc/systemd/system/orchestrator-stacks.service").exists():
        assert checks["boot unit"]["status"] == WARN and checks["boot unit"]["fix"] == "make install-autostart"

    # one file back: no parent dataset, no history; borg's own Python decides `make mount`
    assert checks["local history"]["status"] == OK and "does not exist" in checks["local history"]["detail"]
    borg = shutil.which("borg")
    head = Path(borg).read_bytes()[:256] if borg else b""
    if head.startswith(b"#!"):
        interpreter = head[2:].split(b"\n", 1)[0].decode().split()
        fuse = any(subprocess.run([*interpreter, "-c", f"import {m}"], capture_output=True, timeout=60).returncode == 0
                   for m in ("pyfuse3", "llfuse"))
        assert checks["borg mount"]["status"] == (OK if fuse else WARN), checks["borg mount"]
        assert fuse or "python3-llfuse" in checks["borg mount"]["fix"]

    # read-only: nothing was created or changed
    assert subprocess.run(["zfs", "list", "-H", parent], capture_output=True, timeout=60).returncode != 0
    assert not Path(values["STATE_DIR"]).exists()
    assert not Path(values["MANAGEMENT_DIR"], "borg_keys").exists()
    assert daemon_json.stat().st_mtime_ns == before


def test_doctor_text_is_one_line_per_check_with_fixes(lab_env):
    env_path, _values, _a, _b = lab_env
    result = run_cli(env_path, "doctor", timeout=180)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    checks = [ln for ln in lines if not ln.startswith(" ")][:-1]
    assert len(checks) == 27 and all(ln.split()[0] in (OK, WARN, FAIL) for ln in checks), result.stdout
    fixes = [ln for ln in lines if ln.strip().startswith("fix: ")]
    assert len(fixes) == sum(ln.split()[0] != OK for ln in checks)
    counts = {s: sum(ln.split()[0] == s for ln in checks) for s in (OK, WARN, FAIL)}
    assert lines[-1] == f"doctor: {counts[OK]} ok, {counts[WARN]} warn, {counts[FAIL]} fail"
    assert "\x1b[" not in result.stdout  # no colour without a terminal


def test_status_json_joins_real_docker_and_zfs_with_the_state_files(lab, lab_env):
    env_path, values, svc_a, svc_b = lab_env
    services_dir = Path(values["SERVICES_DIR"])
    (services_dir / svc_a).mkdir()
    (services_dir / svc_a / "compose.yaml").write_text(
        f"services:\n  web:\n    image: {lab.busybox_image}\n    command: [\"sleep\", \"60\"]\n")
    state = Path(values["STATE_DIR"])
    state.mkdir()
    now = time.time()
    (state / "last_success.json").write_text(json.dumps({svc_a: now - 2 * 3600}))
    (state / "drills.json").write_text(json.dumps({svc_a: {
        "time": now - 3600, "ok": True, "archive": f"{svc_a}-2030-01-01T03:30:00Z", "entries": 3, "bytes": 10,
        "differences": 0, "message": "", "last_success": now - 2 * 3600}}))

    result = run_cli(env_path, "status", "--json", timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads(result.stdout)
    assert data["problems"] == [], data["problems"]  # docker and zfs-fuse both answered
    assert data["stale"] == [svc_b] and data["stale_after_hours"] == 36
    rows = {r["service"]: r for r in data["services"]}
    assert list(rows) == [svc_a, svc_b]
    a, b = rows[svc_a], rows[svc_b]
    # a stack folder whose project has no container: docker says so; no dataset: zfs-fuse says so
    assert a["stack"] == {"state": "absent", "running": 0, "total": 0, "health": "-"}
    assert b["stack"] is None
    assert a["dataset"] == {"name": f"{values['ZFS_PARENT_DATASET']}/{svc_a}", "exists": False, "mounted": False,
                            "used": None, "mountpoint": None}
    assert a["last_backup"]["stale"] is False and 7000 < a["last_backup"]["age_seconds"] < 7400
    assert b["last_backup"] == {"time": None, "age_seconds": None, "stale": True, "archive": None}
    assert a["drill"]["ok"] is True and a["drill"]["archive"] == f"{svc_a}-2030-01-01T03:30:00Z"

    table = run_cli(env_path, "status", timeout=120)
    assert table.returncode == 0
    line_b = next(ln for ln in table.stdout.splitlines() if ln.startswith(svc_b))
    assert "never STALE" in line_b and "MISSING" in line_b and "\x1b[" not in table.stdout


def test_two_nights_of_history_in_status_and_doctor_and_its_share_of_the_pool(lab, tmp_path):
    """Two nights with SNAPSHOT_RETENTION=within=1d keep both snapshots; a file rewritten between
    them is space only the first holds: over SNAPSHOT_SPACE_WARN=1 percent of the pool, doctor warns."""
    cyc = build_cycle(lab, tmp_path, spokes=["photo"], extra={"SNAPSHOT_RETENTION": "within=1d"})
    try:
        used, avail = (int(v) for v in subprocess.run(
            ["zfs", "get", "-H", "-p", "-o", "value", "used,available", lab.pool], capture_output=True, text=True,
            timeout=60, check=True).stdout.split())
        size = int((used + avail) * 0.012) + 2 ** 20  # just over 1% of the pool (6 GB lab pool: ~75 MB)
        for _night in range(2):
            seed(cyc.base, "photo", {"big.bin": os.urandom(size)})  # rewritten: the first version only in night 1
            r = run_cli(cyc.env_path, "backup", "--json", timeout=600)
            assert r.returncode == 0, r.stdout + r.stderr
            time.sleep(1.1)  # zfs-fuse's 1-second times

        data = json.loads(run_cli(cyc.env_path, "status", "--json", timeout=120).stdout)
        photo = next(r for r in data["services"] if r["service"] == "photo")
        history = photo["history"]
        assert history["snapshots"] == 2 and len(history["points"]) == 2, history
        assert [p["consistency"] for p in history["points"]] == ["consistent", "consistent"]
        assert history["bytes"] >= size * 0.9 and history["points"][0]["used"] >= size * 0.9, history

        checks = by_name(json.loads(run_cli(cyc.env_path, "doctor", "--json", timeout=180).stdout))
        hist = checks["local history"]
        assert hist["status"] == OK and "warn above 20%" in hist["detail"], hist
        assert "snapshot(s) of 2 service(s)" in hist["detail"] and "SNAPSHOT_RETENTION=within=1d" in hist["detail"]

        with cyc.env_path.open("a") as f:
            f.write("SNAPSHOT_SPACE_WARN=1\n")
        checks = by_name(json.loads(run_cli(cyc.env_path, "doctor", "--json", timeout=180).stdout))
        hist = checks["local history"]
        assert hist["status"] == WARN and "warn above 1%" in hist["detail"], hist
        assert "SNAPSHOT_RETENTION=daily=3" in hist["fix"]
    finally:
        teardown_cycle(cyc)
