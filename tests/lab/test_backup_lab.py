"""The nightly cycle end to end on the real lab: zfs-fuse, dockerd (userns-remap), borg over
ssh to 127.0.0.1, a Caddy hub and two busybox spokes from locally built images."""

from __future__ import annotations

import filecmp
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.lab.conftest import build_cycle, kept_snapshots, our_snapshots, running_containers, teardown_cycle
from tests.lab.envfile import LAB_PASSPHRASE, run_cli, write_shim
from tests.lab.stacks import seed

pytestmark = [pytest.mark.lab, pytest.mark.compose]
SPOKES = ["git", "photo"]


@pytest.mark.v1_contract
def test_backup_all_then_unchanged_rerun_reads_nothing_and_restore_is_byte_identical(cycle, tmp_path):
    env_path, v, prefix, base = cycle.env_path, cycle.values, cycle.prefix, cycle.base
    before = running_containers(prefix)
    assert len(before) == 3

    calls, shims = tmp_path / "borg-calls", tmp_path / "shims"
    write_shim(shims, "borg", f'echo "$1" >> {calls}')  # counts every borg process of a night
    first = run_cli(env_path, "backup", "--json", timeout=600, path_prefix=shims)
    assert first.returncode == 0, first.stdout + first.stderr
    # new repositories: each made, written and pruned; nothing to compact yet (nothing was pruned)
    night1_calls = calls.read_text().split()
    assert night1_calls.count("create") == night1_calls.count("prune") == 3 and "compact" not in night1_calls
    calls.unlink()
    report = json.loads(first.stdout)
    # the window is a part of the run, not all of it (borg ran after it): order, not a duration
    assert report["ok"] and 0 < report["downtime"] < report["finished_at"] - report["started_at"]
    assert {d["service"]: d["result"] for d in report["datasets"]} == {
        "reverseproxy": "ok", "git": "ok", "photo": "ok"}
    assert "downtime:" in first.stderr
    assert running_containers(prefix) == before
    parent, state = v["ZFS_PARENT_DATASET"], v["STATE_DIR"]
    assert our_snapshots(parent, state) == []
    # the snapshot each archive was made from is kept, one per dataset, none for the parent
    night1 = kept_snapshots(parent, state)
    assert sorted(n.split("@")[0] for n in night1) == [f"{parent}/{s}" for s in ("git", "photo", "reverseproxy")]
    assert LAB_PASSPHRASE not in first.stdout + first.stderr

    for svc in SPOKES:
        archives = run_cli(env_path, "list-archives", svc)
        assert archives.returncode == 0 and archives.stdout.count(f"{svc}-") == 1

    # Nothing changed in the spokes (they only read): no borg run for them, each reported
    # unchanged with the archive that holds it; their kept snapshot stays the first night's.
    # Of borg, only what each repository holds is asked (one `borg list` each, over ssh: a remote
    # repository has no fingerprint to read; a local one is not asked at all, test_faults).
    second = run_cli(env_path, "backup", "--json", timeout=600, path_prefix=shims)
    assert second.returncode == 0, second.stderr
    rep1 = {d["service"]: d for d in report["datasets"]}
    rep2 = {d["service"]: d for d in json.loads(second.stdout)["datasets"]}
    assert calls.read_text().split() == ["list"] * 3
    calls.unlink()
    for svc in SPOKES:
        # 62 data files and the stack folder's compose.yaml (under .orchestrator-stack/)
        assert rep1[svc]["nfiles"] == rep1[svc]["files_read"] == 63, rep1[svc]
        assert rep2[svc]["result"] == "unchanged" and rep2[svc]["archive"] == rep1[svc]["archive"], rep2[svc]
        assert run_cli(env_path, "list-archives", svc).stdout.count(f"{svc}-") == 1
        assert [n for n in kept_snapshots(parent, state) if n.startswith(f"{parent}/{svc}@")] == \
            [n for n in night1 if n.startswith(f"{parent}/{svc}@")]

    # One new file in git: the next night backs git up, and borg's files cache (the same view
    # path every night) reads only the new file and the stack folder's compose.yaml (a fresh
    # copy in each night's view: a new ctime, and the newest of night 1, which borg never
    # caches); photo is still unchanged. The previous kept snapshot is gone.
    time.sleep(1.1)  # zfs-fuse keeps 1-second ctimes: a change must not share the snapshot's second
    seed(base, "git", {"later.txt": b"written after the first night"})
    time.sleep(1.1)
    third = run_cli(env_path, "backup", "--json", timeout=600, path_prefix=shims)
    assert third.returncode == 0, third.stderr
    assert sorted(calls.read_text().split()) == ["create", "list", "list", "list", "prune"]  # git's create, prune
    rep3 = {d["service"]: d for d in json.loads(third.stdout)["datasets"]}
    assert rep3["git"]["result"] == "ok" and rep3["git"]["nfiles"] == 64 and rep3["git"]["files_read"] == 2
    assert rep3["photo"]["result"] == "unchanged"
    git_kept = [n for n in kept_snapshots(parent, state) if n.startswith(f"{parent}/git@")]
    assert len(git_kept) == 1 and git_kept[0] not in night1
    second = third

    # The table form shows the same, with the downtime.
    archive = json.loads(second.stdout)["datasets"][1]["archive"]
    dest = tmp_path / "restored"
    ex = run_cli(env_path, "extract-archive", "git", archive, str(dest))
    assert ex.returncode == 0, ex.stderr
    # The spokes only read their data, so the live dataset equals what the snapshot held.
    cmp = filecmp.dircmp(base / "git" / "data", dest / "data")
    assert not (cmp.left_only or cmp.right_only or cmp.diff_files)
    for sub in cmp.subdirs.values():
        assert not (sub.left_only or sub.right_only or sub.diff_files)
    for path in (dest / "data").rglob("*"):
        live = base / "git" / path.relative_to(dest)
        assert path.read_bytes() == live.read_bytes() if path.is_file() else True
        st, lst = path.stat(), live.stat()
        assert (st.st_uid, st.st_gid, st.st_mode) == (lst.st_uid, lst.st_gid, lst.st_mode)
    refused = run_cli(env_path, "extract-archive", "git", archive, str(dest))
    assert refused.returncode != 0 and "not empty" in refused.stderr


def test_restore_in_place_replaces_contents_and_keeps_a_safety_snapshot(cycle):
    env_path, v, prefix, base = cycle.env_path, cycle.values, cycle.prefix, cycle.base
    assert run_cli(env_path, "backup", "git", timeout=600).returncode == 0
    archive = run_cli(env_path, "list-archives", "git").stdout.split()[0]
    (base / "git" / "data" / "index.html").write_text("vandalised")
    (base / "git" / "data" / "new-file").write_text("added after the backup")
    r = run_cli(env_path, "restore", "--yes", "git", archive, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (base / "git" / "data" / "index.html").read_text() == "<h1>git</h1>"
    assert not (base / "git" / "data" / "new-file").exists()
    assert f"{prefix}git" in running_containers(prefix)
    snaps = subprocess.run(["zfs", "get", "-H", "-r", "-o", "name", "type", v["ZFS_PARENT_DATASET"]],
                           capture_output=True, text=True).stdout
    assert "@restore-safety-" in snaps


def test_one_unreachable_repository_fails_only_its_service(cycle, lab):
    env_path, prefix = cycle.env_path, cycle.prefix
    assert run_cli(env_path, "init-repos").returncode == 0
    photo_repo = f"{lab.borg_repos}/{prefix}/photo"
    os.chmod(photo_repo, 0o000)  # borg serve runs as the borg user: permission denied
    try:
        r = run_cli(env_path, "backup", timeout=600)
    finally:
        os.chmod(photo_repo, 0o700)
    assert r.returncode == 1
    assert "result: FAILED (photo)" in r.stdout
    assert cycle.host_is_clean() == []
    git = run_cli(env_path, "list-archives", "git")
    assert git.stdout.count("git-") == 1


def test_after_init_repos_the_first_night_lists_no_repository_it_recorded(lab, tmp_path):
    """`init-repos` records each local repository with its fingerprint, so the first night runs
    no `borg list` before the window. A repository put in one's place after `init-repos` (a new
    id) moves the fingerprint: that one alone is listed, and backed up into."""
    repos = tmp_path / "repos"
    repos.mkdir()
    cyc = build_cycle(lab, tmp_path, repo_base=str(repos))
    try:
        init = run_cli(cyc.env_path, "init-repos")
        assert init.returncode == 0, init.stdout + init.stderr
        assert init.stdout.count("initialised") == 3, init.stdout  # the hub and both spokes
        records = json.loads((Path(cyc.values["STATE_DIR"]) / "repositories.json").read_text())
        assert sorted(records) == ["git", "photo", "reverseproxy"]
        assert all(r["fingerprint"] and r["archives"] == [] for r in records.values()), records
        subprocess.run(["rm", "-rf", str(repos / "photo")], check=True)
        subprocess.run(["borg", "init", "-e", "repokey-blake2", str(repos / "photo")], check=True, capture_output=True,
                       env={**os.environ, "BORG_PASSPHRASE": LAB_PASSPHRASE, "BORG_BASE_DIR": str(tmp_path / "b")})
        calls = tmp_path / "borg-calls"
        write_shim(tmp_path / "shims", "borg", f'echo "$*" >> {calls}')
        r = run_cli(cyc.env_path, "backup", "--json", timeout=600, path_prefix=tmp_path / "shims")
        assert r.returncode == 0, r.stdout + r.stderr
        assert {d["result"] for d in json.loads(r.stdout)["datasets"]} == {"ok"}
        lines = calls.read_text().splitlines()
        listed = [line for line in lines if line.split()[0] == "list"]
        assert len(listed) == 1 and str(repos / "photo") in listed[0], lines
        assert [line.split()[0] for line in lines].count("create") == 3, lines
        assert run_cli(cyc.env_path, "list-archives", "photo").stdout.count("photo-") == 1
    finally:
        teardown_cycle(cyc)


def test_sigterm_while_stacks_are_stopped_brings_them_back(cycle):
    env_path, prefix = cycle.env_path, cycle.prefix
    proc = subprocess.Popen([sys.executable, str(ROOT / "orchestrator.py"), "--env-file", str(env_path), "backup"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    # wait until the window opened: a spoke container is no longer running
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(running_containers(prefix)) == 3:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode != 0, out
    assert cycle.host_is_clean() == [], out
    assert "interrupted" in out.lower()
