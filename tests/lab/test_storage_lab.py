"""Storage against the real lab: zfs-fuse datasets and snapshots, dockerd with userns-remap."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.lab.envfile import destroy_tree, run_cli, write_lab_env

pytestmark = pytest.mark.lab


@pytest.fixture
def storage_env(lab, tmp_path):
    env_path, values = write_lab_env(tmp_path, lab, ["app/data:REMAPPED_APP_UID", "app/cache:REMAPPED_APP_UID",
                                                      "web/site:REMAPPED_ROOT_UID"])
    yield env_path, values
    destroy_tree(values["ZFS_PARENT_DATASET"])


def _write_as_999(lab, directory) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", "run", "--rm", "--user", "999:999", "-v", f"{directory}:/vol", lab.busybox_image,
                           "sh", "-c", "echo hello > /vol/written && cat /vol/written"],
                          capture_output=True, text=True, timeout=120)


def _ctimes(*roots) -> dict[str, int]:
    out = {}
    for root in roots:
        out[str(root)] = os.lstat(root).st_ctime_ns
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:
                p = os.path.join(dirpath, name)
                out[p] = os.lstat(p).st_ctime_ns
    return out


def test_setup_storage_lets_a_remapped_container_write_and_is_idempotent(lab, storage_env):
    env_path, v = storage_env
    base = v["ZFS_BASE_MOUNTPOINT"]
    # Before: the dataset and directory exist but belong to host root, as after a manual mkdir.
    subprocess.run(["zfs", "create", "-p", "-o", f"mountpoint={base}", v["ZFS_PARENT_DATASET"]], check=True, timeout=60)
    subprocess.run(["zfs", "create", f"{v['ZFS_PARENT_DATASET']}/app"], check=True, timeout=60)
    os.makedirs(f"{base}/app/data")
    denied = _write_as_999(lab, f"{base}/app/data")
    assert denied.returncode != 0 and "Permission denied" in denied.stderr

    dry = run_cli(env_path, "--dry-run", "setup-storage")
    assert dry.returncode == 0, dry.stderr
    assert "would create dataset" in dry.stdout and "nothing changed" in dry.stdout
    assert subprocess.run(["zfs", "list", f"{v['ZFS_PARENT_DATASET']}/web"], capture_output=True).returncode != 0

    first = run_cli(env_path, "setup-storage")
    assert first.returncode == 0, first.stderr
    assert f"chown {base}/app/data" in first.stdout and "create dataset" in first.stdout
    st = os.stat(f"{base}/app/data")
    assert (st.st_uid, st.st_gid) == (100999, 100999)
    assert os.stat(f"{base}/web/site").st_uid == 100000
    allowed = _write_as_999(lab, f"{base}/app/data")
    assert allowed.returncode == 0 and allowed.stdout.strip() == "hello", allowed.stderr

    before = _ctimes(base, "/etc/docker/daemon.json", "/etc/subuid", "/etc/subgid")
    second = run_cli(env_path, "setup-storage")
    assert second.returncode == 0, second.stderr
    assert "nothing to change" in second.stdout
    assert _ctimes(base, "/etc/docker/daemon.json", "/etc/subuid", "/etc/subgid") == before


def test_existing_contents_are_chowned_only_with_fix_ownership(lab, storage_env):
    env_path, v = storage_env
    assert run_cli(env_path, "setup-storage").returncode == 0
    data = f"{v['ZFS_BASE_MOUNTPOINT']}/app/data"
    with open(f"{data}/old-file", "w") as fh:
        fh.write("root wrote this")  # owned by host root: wrong for the container
    again = run_cli(env_path, "setup-storage")
    assert "nothing to change" in again.stdout and os.stat(f"{data}/old-file").st_uid == 0
    fixed = run_cli(env_path, "setup-storage", "--fix-ownership")
    assert fixed.returncode == 0 and "chown 1 entries" in fixed.stdout, fixed.stdout
    assert os.stat(f"{data}/old-file").st_uid == 100999


def test_subuid_lines_and_daemon_json_keys_of_others_survive(lab, storage_env, tmp_path):
    _, v = storage_env
    subuid, subgid, daemon = tmp_path / "subuid", tmp_path / "subgid", tmp_path / "daemon.json"
    subuid.write_text("alice:165536:65536\n")
    subgid.write_text("alice:165536:65536")  # no trailing newline
    daemon.write_text(json.dumps({"data-root": "/srv/docker", "log-opts": {"tag": "{{.Name}}"}}))
    marker = tmp_path / "restarted"
    name = v["ZFS_PARENT_DATASET"].split("/")[1]
    env_path, v = write_lab_env(tmp_path, lab, ["app/data:REMAPPED_APP_UID"], name=name,
                                extra={"SUBUID_FILE": str(subuid), "SUBGID_FILE": str(subgid),
                                       "DOCKER_DAEMON_JSON": str(daemon),
                                       "DOCKER_RESTART_COMMAND": f"touch {marker}"})
    first = run_cli(env_path, "setup-storage")
    assert first.returncode == 0, first.stderr
    assert subuid.read_text() == "alice:165536:65536\ndockeruser:100000:65536\n"
    assert subgid.read_text() == "alice:165536:65536\ndockeruser:100000:65536\n"
    merged = json.loads(daemon.read_text())
    assert merged["data-root"] == "/srv/docker" and merged["userns-remap"] == "dockeruser"
    assert merged["log-driver"] == "local" and merged["log-opts"]["max-size"] == "10m"
    # the address pool: docker's own end at ~31 networks, one per stack; the lab's dockerd runs
    # with what setup-storage writes, and gives 40 stacks' networks their own subnets
    assert merged["default-address-pools"] == [{"base": "172.16.0.0/12", "size": 24}]
    live = subprocess.run(["docker", "info", "--format", "{{json .DefaultAddressPools}}"], capture_output=True,
                          text=True, timeout=60, check=True).stdout
    assert [{k.lower(): v for k, v in p.items()} for p in json.loads(live)] == merged["default-address-pools"]
    nets = [f"{name}-net{i}" for i in range(40)]
    try:
        for net in nets:
            subprocess.run(["docker", "network", "create", net], capture_output=True, timeout=60, check=True)
        subnets = subprocess.run(["docker", "network", "inspect", "--format",
                                  "{{range .IPAM.Config}}{{.Subnet}}{{end}}", *nets],
                                 capture_output=True, text=True, timeout=60, check=True).stdout.split()
        assert len(set(subnets)) == 40 and all(n.startswith("172.") and n.endswith("/24") for n in subnets)
    finally:
        subprocess.run(["docker", "network", "rm", *nets], capture_output=True, timeout=120)
    assert list(tmp_path.glob("daemon.json.bak-*")), "the old daemon.json is kept"
    assert marker.exists() and "restarting docker because" in first.stdout
    marker.unlink()
    second = run_cli(env_path, "setup-storage")
    assert "nothing to change" in second.stdout and not marker.exists()


def test_invalid_daemon_json_is_named_and_nothing_changes(lab, storage_env, tmp_path):
    _, v = storage_env
    daemon = tmp_path / "daemon.json"
    daemon.write_text('{\n  "data-root": "/srv",\n  oops\n}\n')
    name = v["ZFS_PARENT_DATASET"].split("/")[1]
    env_path, v = write_lab_env(tmp_path, lab, ["app/data:REMAPPED_APP_UID"], name=name,
                                extra={"DOCKER_DAEMON_JSON": str(daemon)})
    r = run_cli(env_path, "setup-storage")
    assert r.returncode != 0 and f"{daemon}: line 3" in r.stderr
    assert subprocess.run(["zfs", "list", v["ZFS_PARENT_DATASET"]], capture_output=True).returncode != 0


def test_snapshots_all_one_list_and_destroy(lab, storage_env):
    env_path, v = storage_env
    parent = v["ZFS_PARENT_DATASET"]
    assert run_cli(env_path, "setup-storage").returncode == 0
    r = run_cli(env_path, "snapshot", "create", "before-upgrade")
    assert r.returncode == 0, r.stderr
    got = subprocess.run(["zfs", "get", "-H", "-p", "-r", "-o", "name,value", "creation", parent],
                         capture_output=True, text=True, check=True).stdout
    snaps = dict(line.split("\t") for line in got.splitlines() if "@" in line)
    assert sorted(snaps) == sorted(f"{d}@before-upgrade" for d in (parent, f"{parent}/app", f"{parent}/web"))
    assert len(set(snaps.values())) == 1  # one atomic `zfs snapshot -r`: one creation time

    assert run_cli(env_path, "snapshot", "create", "--service", "app", "app-only").returncode == 0
    listing = run_cli(env_path, "snapshot", "list")
    assert listing.returncode == 0
    for name in (*snaps, f"{parent}/app@app-only"):
        assert name in listing.stdout

    refused = run_cli(env_path, "snapshot", "destroy", "--yes", f"{parent}/app")
    assert refused.returncode != 0 and "not valid" in refused.stderr
    unknown = run_cli(env_path, "snapshot", "create", "--service", "../etc", "x")
    assert unknown.returncode == 2 and "unknown service" in unknown.stderr
    asked = run_cli(env_path, "snapshot", "destroy", "before-upgrade", input="n\n")
    assert asked.returncode != 0 and f"{parent}/app@before-upgrade" in run_cli(env_path, "snapshot", "list").stdout
    gone = run_cli(env_path, "snapshot", "destroy", "--yes", "before-upgrade")
    assert gone.returncode == 0, gone.stderr
    left = run_cli(env_path, "snapshot", "list").stdout
    assert "before-upgrade" not in left and f"{parent}/app@app-only" in left
