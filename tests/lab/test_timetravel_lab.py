"""One file or folder back from any night, against the real tools: zfs-fuse (no `.zfs`: snapshots
are read through read-only clones), borg over ssh, compose stacks behind the Caddy hub.

- versions: three versions of a file changed on three nights, the quiet night collapsed;
- restore-path from the snapshot while a probe through the hub never fails; undo through the
  safety snapshot; refusals (`..`, a symlinked component, TO inside the dataset, a name no
  version holds) change nothing;
- a folder from an archive whose snapshot the history no longer has: odd names (spaces,
  unicode, a newline), hard links and a sparse file kept; only that path is extracted;
- SIGTERM in the middle of an extraction leaves the live tree as it was;
- mount lists an archive's files, a night meets the mount and fails that service by name,
  umount leaves nothing mounted.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.lab.conftest import build_cycle, teardown_cycle
from tests.lab.envfile import cli_argv, run_cli
from tests.lab.test_live_lab import Prober
from tests.lab.test_stacks_lab import https_through_hub, hub_port, started_at

pytestmark = [pytest.mark.lab]


def tree(root: Path) -> dict[str, tuple]:
    """Every entry below root: type, size, owner, mode, mtime, content hash, link target."""
    out = {}
    for top, dirs, files in os.walk(root):
        for name in dirs + files:
            p = Path(top) / name
            st = os.lstat(p)
            digest = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() and not p.is_symlink() else None
            out[str(p.relative_to(root))] = (st.st_mode, st.st_size, st.st_uid, st.st_gid, int(st.st_mtime), digest,
                                             os.readlink(p) if p.is_symlink() else None)
    return out


def night(cyc) -> dict:
    r = run_cli(cyc.env_path, "backup", "--json", timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    time.sleep(1.1)  # zfs-fuse's 1-second times: the next change is in a later second
    return json.loads(r.stdout)


@pytest.fixture(scope="module")
def travel(lab, tmp_path_factory):
    """One hub and two spokes for the tests below, in file order (each leaves them running)."""
    tmp = tmp_path_factory.mktemp("travel")
    # the test's nights are seconds apart: daily=7 would keep one of them, within=1d keeps each
    cyc = build_cycle(lab, tmp, extra={"MOUNT_DIR": str(tmp / "mnt"), "SNAPSHOT_RETENTION": "within=1d"})
    yield cyc
    run_cli(cyc.env_path, "umount")
    teardown_cycle(cyc)


def test_versions_and_a_file_back_from_the_snapshot_while_the_hub_serves(travel):
    cyc = travel
    photo = cyc.base / "photo"
    target = photo / "data" / "d1" / "f1.bin"
    contents = []
    for i in range(3):  # three nights, three versions
        target.write_bytes(f"version {i}\n".encode() * (i + 1))
        contents.append(target.read_bytes())
        night(cyc)
    night(cyc)  # a quiet night: the same version as the one before
    stat_before = os.lstat(target)

    r = run_cli(cyc.env_path, "versions", "--json", "photo", "data/d1/f1.bin")
    assert r.returncode == 0, r.stdout + r.stderr
    timeline = json.loads(r.stdout)
    sizes = [v["version"]["size"] for v in timeline["versions"]]
    assert sizes == [len(c) for c in contents], timeline
    assert timeline["versions"][-1]["count"] == 2  # the quiet night collapsed into the third version
    assert all(p["source"] == "snapshot" and p["consistency"] == "consistent" and p["archive"]
               for v in timeline["versions"] for p in v["points"])
    text = run_cli(cyc.env_path, "versions", "photo", "data/d1/f1.bin")
    assert "3 version(s)" in text.stdout and "(x2)" in text.stdout, text.stdout

    # deleted, then back from the snapshot: the hub keeps serving the spoke throughout
    assert https_through_hub("photo.lab.test", hub_port(cyc)) == "<h1>photo</h1>"
    target.unlink()
    prober = Prober(hub_port(cyc), "photo", every=0.05)
    prober.start()
    r = run_cli(cyc.env_path, "restore-path", "--yes", "photo", "data/d1/f1.bin")
    prober.done.set()
    prober.join(timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "from snapshot orchestrator-" in r.stdout
    assert target.read_bytes() == contents[2]
    after = os.lstat(target)
    assert (after.st_uid, after.st_gid, after.st_mode, int(after.st_mtime)) == \
        (stat_before.st_uid, stat_before.st_gid, stat_before.st_mode, int(stat_before.st_mtime))
    assert set(prober.seen) == {"up"} and len(prober.seen) >= 3, prober.seen
    assert cyc.host_is_clean() == []  # no clone left, every stack running, no stray snapshot of ours

    # an older version by name, then undone through the safety snapshot
    target.write_bytes(b"garbage")
    second = timeline["versions"][1]["points"][0]["name"]
    r = run_cli(cyc.env_path, "restore-path", "--yes", "--when", second, "photo", "data/d1/f1.bin")
    assert r.returncode == 0, r.stdout + r.stderr
    assert target.read_bytes() == contents[1]
    undo = next(line for line in r.stdout.splitlines() if line.startswith("undo: "))
    assert "WHEN=restore-safety-" in undo
    when = undo.split("WHEN=")[1].split()[0]
    r = run_cli(cyc.env_path, "restore-path", "--yes", "--when", when, "photo", "data/d1/f1.bin")
    assert r.returncode == 0, r.stdout + r.stderr
    assert target.read_bytes() == b"garbage"

    # STOP=1 (a database's files): the stack is stopped around the swap and running again after
    started = started_at(f"{cyc.prefix}photo")
    r = run_cli(cyc.env_path, "restore-path", "--yes", "--stop", "--when", second, "photo", "data/d1/f1.bin")
    assert r.returncode == 0 and "stopping the stack (STOP=1)" in r.stdout, r.stdout + r.stderr
    assert target.read_bytes() == contents[1]
    assert started_at(f"{cyc.prefix}photo") != started
    assert https_through_hub("photo.lab.test", hub_port(cyc)) == "<h1>photo</h1>"


def test_refusals_change_nothing(travel):
    cyc = travel
    night(cyc)
    photo = cyc.base / "photo"
    os.symlink("/etc", photo / "data" / "etc-link")
    before = tree(photo)
    snaps_before = subprocess.run(["zfs", "list", "-H", "-t", "snapshot", "-o", "name", "-r", cyc.parent],
                                  capture_output=True, text=True, check=True).stdout
    make = ["make", "-s", "-C", str(Path(__file__).resolve().parents[2]), f"ENV_FILE={cyc.env_path}",
            f"VENV_DIR={Path(sys.executable).parents[1]}", "restore-path", "SERVICE_NAME=photo", "YES=1"]
    cases = {
        "../../etc": "climbs out",
        "data/etc-link/passwd": "symlink",
        "data/d1/f1.bim": "'data/d1/f1.bin'",  # no version holds it: the nearest name that does
    }
    for file, words in cases.items():
        r = subprocess.run([*make, f"FILE={file}"], capture_output=True, text=True, timeout=300)
        assert r.returncode != 0 and words in r.stderr, (file, r.stdout, r.stderr)
    inside = run_cli(cyc.env_path, "restore-path", "--to", str(photo / "data" / "out"), "photo", "data/d1/f1.bin")
    assert inside.returncode != 0 and "inside photo's dataset" in inside.stderr, inside.stderr
    assert tree(photo) == before
    after = subprocess.run(["zfs", "list", "-H", "-t", "snapshot", "-o", "name", "-r", cyc.parent],
                           capture_output=True, text=True, check=True).stdout
    assert after == snaps_before  # no safety snapshot either
    assert cyc.host_is_clean() == []
    (photo / "data" / "etc-link").unlink()


def test_a_folder_from_an_archive_the_history_thinned_odd_names_links_and_holes_kept(lab, tmp_path):
    # the second night drops the album on purpose: no prune guard
    cyc = build_cycle(lab, tmp_path, spokes=["photo"], extra={"SNAPSHOT_RETENTION": "off", "PRUNE_GUARD_SHRINK": "0"})
    try:
        folder = cyc.base / "photo" / "data" / "album"
        folder.mkdir()
        odd = "a b ü\nnewline.txt"
        (folder / odd).write_bytes(b"odd name")
        (folder / "one").write_bytes(os.urandom(3000))
        os.link(folder / "one", folder / "two")  # a hard link inside the folder
        with open(folder / "sparse.img", "wb") as f:
            f.truncate(64 * 1024 * 1024)
            f.seek(32 * 1024 * 1024)
            f.write(b"middle")
        (folder / "big.bin").write_bytes(os.urandom(8 * 1024 * 1024))  # makes the extraction take a moment
        for p in [folder, *folder.iterdir()]:
            os.lchown(p, 100999, 100999)
        first = next(d["archive"] for d in night(cyc)["datasets"] if d["service"] == "photo")
        original = tree(folder)
        for p in folder.iterdir():
            p.unlink()
        (folder / "new").write_bytes(b"after")
        night(cyc)  # the snapshot of the first night is gone (SNAPSHOT_RETENTION=off)
        live_before = tree(folder)

        # SIGTERM while borg extracts: the live folder stays as it was, nothing staged is left
        proc = subprocess.Popen(cli_argv(cyc.env_path, "restore-path", "--yes", "--when", first, "photo",
                                         "data/album"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None \
                and not list(folder.parent.glob(".orchestrator-restore-*")):
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=300)
        assert proc.returncode != 0 and "interrupted by SIGTERM" in err, out + err
        assert tree(folder) == live_before
        assert not list(folder.parent.glob(".orchestrator-*"))

        # in place, from the archive: only that path extracted, the folder as it was that night
        r = run_cli(cyc.env_path, "restore-path", "--yes", "--when", first, "photo", "data/album", timeout=600)
        assert r.returncode == 0, r.stdout + r.stderr
        assert f"from archive {first}" in r.stdout
        assert tree(folder) == original
        assert os.stat(folder / "one").st_ino == os.stat(folder / "two").st_ino
        # the same folder to TO, outside ZFS: holes stay holes there
        out_dir = tmp_path / "restored"
        r = run_cli(cyc.env_path, "restore-path", "--when", first, "--to", str(out_dir), "photo", "data/album")
        assert r.returncode == 0, r.stdout + r.stderr
        assert tree(out_dir / "album") == original
        # borg leaves a hole for every all-zero chunk; the chunk around the written bytes (up to
        # 8 MiB of zeros) is written whole: without --sparse all 64 MiB would be
        assert os.stat(out_dir / "album" / "sparse.img").st_blocks * 512 <= 16 * 1024 * 1024
        assert os.stat(out_dir / "album" / "one").st_ino == os.stat(out_dir / "album" / "two").st_ino
        # one odd-named file alone, by its name
        (folder / odd).unlink()
        r = run_cli(cyc.env_path, "restore-path", "--yes", "photo", f"data/album/{odd}")
        assert r.returncode == 0, r.stdout + r.stderr
        assert (folder / odd).read_bytes() == b"odd name"
        assert cyc.host_is_clean() == []
    finally:
        teardown_cycle(cyc)


def test_mount_lists_an_archive_a_night_meets_it_by_name_and_umount_clears_it(travel):
    cyc = travel
    service = "photo"
    name = next(d["archive"] for d in night(cyc)["datasets"] if d["service"] == service)
    r = run_cli(cyc.env_path, "mount", service)
    assert r.returncode == 0, r.stdout + r.stderr
    mount = Path(cyc.values["MOUNT_DIR"]) / service
    assert os.path.ismount(mount)
    assert (mount / name / "data" / "index.html").read_bytes() == f"<h1>{service}</h1>".encode()
    r = run_cli(cyc.env_path, "backup", "--json", timeout=600)
    assert r.returncode != 0
    report = json.loads(r.stdout)
    failed = {d["service"]: d["message"] for d in report["datasets"] if d["result"] == "failed"}
    assert list(failed) == [service] and str(mount) in failed[service] and "make umount" in failed[service]
    assert all(d["result"] in ("ok", "unchanged") for d in report["datasets"] if d["service"] != service)
    r = run_cli(cyc.env_path, "umount")
    assert r.returncode == 0 and f"unmounted {mount}" in r.stdout, r.stdout + r.stderr
    assert not os.path.ismount(mount)
    assert not any(line.split()[1].startswith(cyc.values["MOUNT_DIR"]) for line in open("/proc/mounts"))
    assert run_cli(cyc.env_path, "backup", timeout=600).returncode == 0
