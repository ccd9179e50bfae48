"""Whole-service restore, restore drills and recovery onto a fresh pool, on the real lab:
zfs-fuse, dockerd with userns-remap, borg over ssh to 127.0.0.1, a Caddy hub and two spokes."""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import subprocess
import time
from pathlib import Path

import pytest

from tests.lab.conftest import build_cycle, teardown_cycle, views_left
from tests.lab.envfile import LAB_PASSPHRASE, destroy_tree, run_cli
from tests.lab.stacks import seed
from tests.lab.test_stacks_lab import https_through_hub

pytestmark = [pytest.mark.lab]
SECRET = "s3cret-db-password-do-not-print"


def state(root: Path, skip: tuple[str, ...] = ()) -> dict[str, tuple]:
    """Everything a restore must bring back: type, mode, owner, size, content, symlink target,
    mtime (seconds: zfs-fuse keeps no more), and which paths are hard links of each other."""
    out, inodes = {}, {}
    for path in sorted([root, *root.rglob("*")]):
        rel = str(path.relative_to(root))
        if rel.split("/")[0] in skip:
            continue
        st = os.lstat(path)
        content = hashlib.sha256(path.read_bytes()).hexdigest() if stat.S_ISREG(st.st_mode) else ""
        target = os.readlink(path) if stat.S_ISLNK(st.st_mode) else ""
        mtime = int(st.st_mtime) if not stat.S_ISDIR(st.st_mode) else 0  # a dir's mtime moves with its entries
        out[rel] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
                    st.st_size if not stat.S_ISDIR(st.st_mode) else 0, content, target, mtime)
        if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
            inodes.setdefault(st.st_ino, []).append(rel)
    out["<hard links>"] = tuple(sorted(tuple(sorted(g)) for g in inodes.values()))
    return out


def enrich(cycle) -> None:
    """What real stacks hold beyond plain files: a .env with a secret (0600), a symlink, a
    subfolder in the stack folder; in the data a hard link, an empty dir, odd modes and owners."""
    folder = cycle.services_dir / "git"
    env = folder / ".env"
    env.write_text(f"DB_PASSWORD={SECRET}\n")
    env.chmod(0o600)
    (folder / "config").mkdir()
    (folder / "config" / "app.ini").write_text("[server]\nROOT_URL=https://git.lab.test\n")
    os.symlink("config/app.ini", folder / "app.ini")
    data = cycle.base / "git" / "data"
    seed(cycle.base, "git", {"repos/a.git/HEAD": b"ref: refs/heads/main\n"})
    os.link(data / "repos/a.git/HEAD", data / "repos/HEAD.hardlink")
    (data / "empty").mkdir()
    os.chown(data / "empty", 100999, 100999)
    (data / "private.key").write_bytes(b"key")
    os.chown(data / "private.key", 100998, 100997)
    (data / "private.key").chmod(0o400)
    os.symlink("d0", data / "latest")
    os.lchown(data / "latest", 100999, 100999)
    time.sleep(1.1)  # the newest ctime of a run is never cached by borg; keep the files above older


@pytest.fixture
def rich_cycle(lab, tmp_path):
    metrics = tmp_path / "state" / "metrics" / "orchestrator.prom"
    cyc = build_cycle(lab, tmp_path, extra={"PROMETHEUS_TEXTFILE": str(metrics)})
    enrich(cyc)
    yield cyc
    teardown_cycle(cyc)


def latest(env_path, service: str) -> str:
    out = run_cli(env_path, "list-archives", service).stdout.split()
    return [w for w in out if w.startswith(f"{service}-")][-1]


def test_restore_brings_back_data_and_stack_folder_identical_and_the_stack_runs(rich_cycle):
    cyc = rich_cycle
    env_path, folder, data = cyc.env_path, cyc.services_dir / "git", cyc.base / "git" / "data"
    backup = run_cli(env_path, "backup", "git", timeout=600)
    assert backup.returncode == 0, backup.stdout + backup.stderr
    archive = latest(env_path, "git")
    data_before, folder_before = state(data), state(folder)

    # the stack folder sits in the archive under its own prefix, apart from the data
    dest = cyc.base.parent / f"{cyc.prefix}-peek"
    ex = run_cli(env_path, "extract-archive", "git", archive, str(dest))
    assert ex.returncode == 0, ex.stderr
    assert sorted(p.name for p in dest.iterdir()) == [".orchestrator-stack", "data"]
    assert (dest / ".orchestrator-stack" / ".env").read_text() == f"DB_PASSWORD={SECRET}\n"
    subprocess.run(["rm", "-rf", str(dest)], check=True)

    # the user loses the compose file and the .env, and the data is damaged
    (folder / "compose.yaml").unlink()
    (folder / ".env").unlink()
    (data / "index.html").write_text("vandalised")
    (data / "d0").rename(data / "d0-moved")
    (data / "private.key").chmod(0o644)
    os.unlink(data / "repos/HEAD.hardlink")

    r = run_cli(env_path, "restore", "--yes", "git", archive, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert state(data) == data_before
    assert state(folder) == folder_before
    assert f"{cyc.prefix}git" in cyc.containers()
    # the damaged folder is kept aside (hidden: never discovered as a stack), and the output
    # says how to undo both halves; the secret is never printed
    aside = [p for p in cyc.services_dir.iterdir() if p.name.startswith(".git.before-restore-")]
    assert len(aside) == 1 and not (aside[0] / "compose.yaml").exists()
    assert "zfs rollback -r" in r.stdout and str(aside[0]) in r.stdout
    assert SECRET not in r.stdout + r.stderr and LAB_PASSPHRASE not in r.stdout + r.stderr

    # ONLY=data: the stack folder is left as it is; ONLY=stack: the data is
    (folder / "compose.yaml").write_text((folder / "compose.yaml").read_text() + "# edited\n")
    (data / "index.html").write_text("changed again")
    r = run_cli(env_path, "restore", "--yes", "--only", "data", "git", archive, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert state(data) == data_before and (folder / "compose.yaml").read_text().endswith("# edited\n")
    (data / "index.html").write_text("changed again")
    r = run_cli(env_path, "restore", "--yes", "--only", "stack", "git", archive, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert state(folder) == folder_before and (data / "index.html").read_text() == "changed again"
    assert f"{cyc.prefix}git" in cyc.containers()


def flip_bytes(repo: Path) -> None:
    """Damage the largest segment file of a borg repository in its middle (chunk data)."""
    segments = sorted((repo / "data").rglob("[0-9]*"), key=lambda p: p.stat().st_size)
    with open(segments[-1], "r+b") as handle:
        handle.seek(segments[-1].stat().st_size // 2)
        chunk = handle.read(64)
        handle.seek(-64, 1)
        handle.write(bytes(b ^ 0xFF for b in chunk))


def test_restore_that_fails_puts_data_and_folder_back(rich_cycle, lab):
    cyc = rich_cycle
    env_path, folder, data = cyc.env_path, cyc.services_dir / "git", cyc.base / "git" / "data"
    assert run_cli(env_path, "backup", "git", timeout=600).returncode == 0
    archive = latest(env_path, "git")
    (data / "index.html").write_text("today's version")
    (folder / "compose.yaml").write_text((folder / "compose.yaml").read_text() + "# today\n")
    data_now, folder_now = state(data), state(folder)
    flip_bytes(Path(f"{lab.borg_repos}/{cyc.prefix}/git"))  # the listing works, the extract fails midway
    r = run_cli(env_path, "restore", "--yes", "git", archive, timeout=600)
    assert r.returncode != 0 and "putting everything back" in r.stdout + r.stderr
    assert state(data) == data_now and state(folder) == folder_now
    assert f"{cyc.prefix}git" in cyc.containers()
    assert not [p for p in cyc.services_dir.iterdir() if p.name.startswith(".git.")]
    assert not [p for p in data.parent.iterdir() if p.name.startswith(".orchestrator-restore")]


def drill(env_path, *args):
    r = run_cli(env_path, "drill", "--json", *args, timeout=900)
    return r, (json.loads(r.stdout) if r.stdout.strip().startswith("{") else {})


def dataset_state(cyc) -> dict:
    return {svc: state(cyc.base / svc) for svc in ("git", "photo", "reverseproxy")}


def test_drill_compares_every_service_and_names_the_one_whose_repository_is_damaged(rich_cycle, lab):
    cyc = rich_cycle
    env_path, v = cyc.env_path, cyc.values
    assert run_cli(env_path, "backup", timeout=600).returncode == 0
    snaps_before = subprocess.run(["zfs", "get", "-H", "-r", "-o", "name", "type", cyc.parent],
                                  capture_output=True, text=True).stdout
    data_before = dataset_state(cyc)

    r, rep = drill(env_path)
    assert r.returncode == 0, r.stdout + r.stderr
    by = {s["service"]: s for s in rep["services"]}
    assert sorted(by) == ["git", "photo", "reverseproxy"]
    for svc, res in by.items():
        assert res["ok"] and res["mode"] == "compared" and res["differences"] == 0, res
        assert res["snapshot"].startswith(f"{cyc.parent}/{svc}@orchestrator-")
    assert by["git"]["entries"] > 70 and by["git"]["bytes"] > 500_000
    print("\ndrill:", {svc: (res["entries"], res["bytes"], round(res["duration"], 1)) for svc, res in by.items()})
    assert SECRET not in r.stdout + r.stderr
    # a drill never writes into a service dataset and leaves no view or scratch dataset
    assert dataset_state(cyc) == data_before
    assert subprocess.run(["zfs", "get", "-H", "-r", "-o", "name", "type", cyc.parent],
                          capture_output=True, text=True).stdout == snaps_before
    assert views_left(v["VIEW_DATASET"]) == []
    recorded = json.loads((Path(v["STATE_DIR"]) / "drills.json").read_text())
    assert all(recorded[s]["ok"] and recorded[s]["last_success"] for s in by)
    metrics = Path(v["STATE_DIR"]) / "metrics" / "orchestrator_drill.prom"
    assert 'orchestrator_drill_success{service="photo"} 1' in metrics.read_text()

    # DRILL_DIR instead of a scratch dataset: the same comparison, the directory left empty; a
    # DRILL_DIR inside the services' mountpoint is refused before anything is extracted
    drill_dir = cyc.env_path.parent / "drill-scratch"
    other_env = cyc.env_path.parent / "drill.env"
    other_env.write_text(cyc.env_path.read_text() + f"DRILL_DIR={drill_dir}\n")
    other_env.chmod(0o600)
    r, rep = drill(other_env, "git")
    assert r.returncode == 0 and rep["services"][0]["mode"] == "compared", r.stdout + r.stderr
    assert list(drill_dir.iterdir()) == []
    other_env.write_text(cyc.env_path.read_text() + f"DRILL_DIR={cyc.base}/git/scratch\n")
    r, _ = drill(other_env, "git")
    assert r.returncode != 0 and "inside ZFS_BASE_MOUNTPOINT" in r.stderr
    assert not (cyc.base / "git" / "scratch").exists()

    # git's kept snapshot goes away: its drill falls back to check + extract and says so;
    # bytes flipped in photo's largest segment file: photo fails, named; reverseproxy still passes
    kept = json.loads((Path(v["STATE_DIR"]) / "kept_snapshots.json").read_text())
    subprocess.run(["zfs", "destroy", f"{cyc.parent}/git@{kept['git']['snapshot']}"], check=True)
    flip_bytes(Path(f"{lab.borg_repos}/{cyc.prefix}/photo"))
    r, rep = drill(env_path)
    assert r.returncode == 1, r.stdout + r.stderr
    by = {s["service"]: s for s in rep["services"]}
    assert not by["photo"]["ok"] and by["photo"]["mode"] == "failed", by["photo"]
    assert by["git"]["ok"] and by["git"]["mode"] == "verified" and "not compared" in by["git"]["message"]
    assert by["reverseproxy"]["ok"] and by["reverseproxy"]["mode"] == "compared"
    assert "drill: FAILED (photo)" in r.stderr + r.stdout or re.search(r"photo: FAILED", r.stderr)
    assert views_left(v["VIEW_DATASET"]) == []
    assert dataset_state(cyc)["photo"] == data_before["photo"]


def test_restore_all_onto_a_fresh_pool_brings_every_stack_back_through_the_hub(rich_cycle, lab):
    cyc = rich_cycle
    env_path = cyc.env_path
    assert run_cli(env_path, "backup", timeout=600).returncode == 0
    before = {svc: state(cyc.base / svc) for svc in ("git", "photo")}
    folders = {svc: state(cyc.services_dir / svc) for svc in ("git", "photo", "reverseproxy")}
    hub_compose = (cyc.services_dir / "reverseproxy" / "compose.yaml").read_text()
    port = int(re.search(r"127\.0\.0\.1:(\d+):443", hub_compose)[1])

    # the machine is gone: no containers, no datasets, no stack folders; the repositories,
    # the .env and the keys survive
    assert run_cli(env_path, "docker-down", timeout=300).returncode == 0
    destroy_tree(cyc.parent)
    subprocess.run(["rm", "-rf", str(cyc.services_dir)], check=True)

    started = time.monotonic()
    assert run_cli(env_path, "setup-storage").returncode == 0
    r = run_cli(env_path, "restore-all", "--yes", timeout=900)
    took = time.monotonic() - started
    assert r.returncode == 0, r.stdout + r.stderr
    print(f"\nrestore-all onto a fresh pool: {took:.1f}s (setup-storage + restore-all, 3 services)")
    assert {svc: state(cyc.base / svc) for svc in ("git", "photo")} == before
    assert {svc: state(cyc.services_dir / svc) for svc in folders} == folders
    for spoke in ("git", "photo"):
        assert "<h1>" + spoke + "</h1>" in https_through_hub(f"{spoke}.lab.test", port)
    assert SECRET not in r.stdout + r.stderr
