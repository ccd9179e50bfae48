"""doctor's checks of one file back: the local history's share of the pool, borg's FUSE
bindings in borg's own interpreter, and borg mounts left open under MOUNT_DIR. The `host`
fixture of test_check (every check ok), one thing broken per test."""

import json

from management.host.doctor import history as doctor_history
from management.host.doctor import report as doctor
from management.host.doctor.check import OK, WARN
from management.runner import Result
from tests.unit.host.doctor.test_check import FREE, NOW, H, absent, answer, failed
from tests.unit.host.doctor.test_check import host as host  # noqa: F401  (the fixture: a host where every check is ok)

USED = ("zfs", "get", "-H", "-p", "-r", "-o", "name,property,value", "used", "datapool/services")


def history(host, points: dict) -> None:
    (host.settings.state_dir / "history.json").write_text(json.dumps(points))


def point(name, hours_ago, consistency="consistent"):
    return {"snapshot": name, "time": NOW - hours_ago * H, "consistency": consistency, "archive": None}


def two_services(host, git_used=400_000_000, photo_used=50_000_000):
    history(host, {"git": [point("orchestrator-a", 6 * 24), point("orchestrator-b", 9, "crash-consistent")],
                   "photo": [point("orchestrator-a", 6 * 24)]})
    answer(host, USED, "datapool/services\tused\t9\ndatapool/services/git\tused\t5\n"
                       f"datapool/services/git@orchestrator-a\tused\t{git_used}\n"
                       "datapool/services/git@orchestrator-b\tused\t1000\n"
                       f"datapool/services/photo@orchestrator-a\tused\t{photo_used}\n"
                       "datapool/services/photo@by-hand\tused\t777777777\n")  # not history: not counted


def test_local_history_ok_with_totals_oldest_newest_and_the_pool_share(host):
    two_services(host)
    c = doctor_history.check_local_history(host)
    assert c.status == OK, c
    assert c.detail.startswith("3 snapshot(s) of 2 service(s), 450.0 MB unique to them (zfs used), 0.0% of the "
                               "1.0 TB pool datapool, warn above 20%")
    assert "oldest 6d ago, newest 9h ago, 1 crash-consistent; most: git 400.0 MB in 2" in c.detail
    assert c.detail.endswith("(SNAPSHOT_RETENTION=daily=7)")
    assert all(not call.mutating for call in host.runner.calls)


def test_local_history_warns_past_snapshot_space_warn_with_the_fix(host):
    two_services(host, git_used=150 * 10 ** 9, photo_used=60 * 10 ** 9)  # 21% of the 1000 GB pool
    c = doctor_history.check_local_history(host)
    assert c.status == WARN and "21.0% of the 1.0 TB pool datapool, warn above 20%" in c.detail, c
    assert "SNAPSHOT_RETENTION=daily=3" in c.fix and str(host.settings.env_file) in c.fix


def test_the_pool_is_asked_its_size_once_for_free_space_and_history(host):
    two_services(host)
    checks = doctor.run_checks(host)
    assert host.runner.argvs.count(FREE) == 1
    assert {c.name: c.status for c in checks}["local history"] == OK


def test_local_history_off_none_yet_no_parent_and_no_zfs(host, tmp_path):
    c = doctor_history.check_local_history(host)
    assert c.status == OK and c.detail.startswith("no history snapshot yet (SNAPSHOT_RETENTION=daily=7")
    answer(host, USED, Result((), 1, "", "cannot open 'datapool/services': dataset does not exist"))
    c = doctor_history.check_local_history(host)
    assert c.status == OK and "datapool/services does not exist" in c.detail
    answer(host, USED, absent("zfs"))
    c = doctor_history.check_local_history(host)
    assert c.status == WARN and "zfs is not installed" in c.detail
    from dataclasses import replace
    host.settings = replace(host.settings, snapshot_retention={})
    c = doctor_history.check_local_history(host)
    assert c.status == OK and c.detail.startswith("off (SNAPSHOT_RETENTION=off)")


def test_local_history_with_an_unknown_pool_size_is_ok_and_says_so(host):
    two_services(host)
    answer(host, FREE, failed("cannot open 'datapool': no such pool"))
    c = doctor_history.check_local_history(host)
    assert c.status == OK and "the pool's size is unknown (cannot open 'datapool': no such pool)" in c.detail


def test_retention_text_and_snapshot_used():
    assert doctor_history.retention_text({"daily": "7", "weekly": "4"}) == "daily=7,weekly=4"
    assert doctor_history.retention_text({}) == "off"
    assert doctor_history.snapshot_used("p/a\tused\t1\np/a@s\tused\t2\np/b@t\tused\t-\n") == {"p/a": {"s": 2}}


# --- borg mount -------------------------------------------------------------------------------

PY = "/usr/bin/python3"


def test_shebang_and_import_argv():
    assert doctor_history.shebang(b"#!/usr/bin/python3\nimport x") == ["/usr/bin/python3"]
    assert doctor_history.shebang(b"#! /usr/bin/env python3\n") == ["/usr/bin/env", "python3"]
    assert doctor_history.shebang(b"\x7fELF\x02\x01") is None and doctor_history.shebang(b"#!\n") is None
    assert doctor_history.import_argv([PY], "llfuse") == [PY, "-c", "import llfuse"]
    try:
        doctor_history.import_argv([PY], "os; import shutil")
        raise AssertionError("an arbitrary module was taken")
    except ValueError:
        pass


def test_borg_mount_ok_when_borgs_python_imports_a_fuse_binding(host):
    answer(host, (PY, "-c", "import pyfuse3"), Result((), 1, "", "ModuleNotFoundError: No module named 'pyfuse3'"))
    c = doctor_history.check_borg_mount(host)
    assert c.status == OK and c.detail.startswith(f"borg's Python ({PY}, from ") and c.detail.endswith("llfuse")
    assert (PY, "-c", "import llfuse") in host.runner.argvs
    assert all(not call.mutating for call in host.runner.calls)


def test_borg_mount_warns_without_bindings_without_borg_or_for_a_binary(host, tmp_path):
    for module in ("pyfuse3", "llfuse"):
        answer(host, (PY, "-c", f"import {module}"), Result((), 1, "", "ModuleNotFoundError"))
    c = doctor_history.check_borg_mount(host)
    assert c.status == WARN and "no FUSE bindings" in c.detail and "apt-get install python3-llfuse" in c.fix
    for module in ("pyfuse3", "llfuse"):
        answer(host, (PY, "-c", f"import {module}"), absent(PY))
    c = doctor_history.check_borg_mount(host)
    assert c.status == WARN and f"{PY} does not run" in c.detail
    (tmp_path / "bin" / "borg").write_bytes(b"\x7fELF\x02\x01\x01")
    c = doctor_history.check_borg_mount(host)
    assert c.status == WARN and "is a binary" in c.detail and "make mount SERVICE_NAME=" in c.fix
    host.which = lambda _program: None
    c = doctor_history.check_borg_mount(host)
    assert c.status == WARN and "borg is not installed" in c.detail and c.fix == "make install"


# --- mounts left open -------------------------------------------------------------------------


def test_mounts_below_reads_the_kernels_escapes():
    text = ("borgfs /mnt/orch/git fuse rw,nosuid 0 0\nborgfs /mnt/orch/my\\040photos fuse ro 0 0\n"
            "tmpfs /mnt/orchestrator2 tmpfs rw 0 0\nproc /proc proc rw 0 0\n")
    from pathlib import Path
    assert doctor_history.mounts_below(text, Path("/mnt/orch")) == [("/mnt/orch/git", "fuse"),
                                                                    ("/mnt/orch/my photos", "fuse")]


def test_a_borg_mount_left_open_warns_naming_the_service_the_night_fails(host):
    mount_dir = host.settings.mount_dir
    host.mounts_file.write_text(f"proc /proc proc rw 0 0\nborgfs {mount_dir}/git fuse ro,nosuid 0 0\n"
                                f"borgfs {mount_dir}/other fuse ro 0 0\n")
    c = doctor_history.check_open_mounts(host)
    assert c.status == WARN, c
    assert f"{mount_dir}/git (fuse): the night fails git while it is mounted" in c.detail
    assert f"{mount_dir}/other (fuse)" in c.detail and "fails other" not in c.detail
    assert c.fix.startswith("make umount")


def test_nothing_mounted_is_ok_and_an_unreadable_mount_table_cannot_tell(host):
    c = doctor_history.check_open_mounts(host)
    assert c.status == OK and c.detail == f"nothing mounted under {host.settings.mount_dir}"
    host.mounts_file.unlink()
    c = doctor_history.check_open_mounts(host)
    assert c.status == WARN and "cannot tell" in c.detail
