"""`doctor`, ZFS: the pool, its redundancy, errors, scrubs, zed, the datasets, free space, import at boot."""

import pytest

from management.host import zed as zedlet
from management.host.doctor import pool as doctor
from management.host.doctor.check import FAIL, OK, WARN
from management.runner import Result
from tests.unit.host.doctor.test_check import (
    DATASETS,
    FIXTURES,
    FREE,
    NOW,
    POOL,
    ZSTATUS,
    H,
    absent,
    answer,
    failed,
    zfs_fuse_status,
)
from tests.unit.host.doctor.test_check import host as host  # noqa: F401  (the fixture: a host where every check is ok)


def test_pool_not_imported_or_degraded_fails_and_no_zpool_warns(host):
    answer(host, POOL, Result((), 1, "", "cannot open 'datapool': no such pool"))
    c = doctor.check_pool(host)
    assert c.status == FAIL and "no such pool" in c.detail and c.fix == "zpool import datapool"
    answer(host, POOL, "datapool\tDEGRADED\n")
    assert doctor.check_pool(host).status == FAIL
    answer(host, POOL, absent("zpool"))
    c = doctor.check_pool(host)
    assert c.status == WARN and "zpool is not installed" in c.detail


def test_a_mirror_scrubbed_days_ago_is_ok_and_says_so(host):
    assert doctor.check_pool_redundancy(host) == doctor.Check(OK, "pool redundancy", "datapool is mirror of 2 disks")
    assert doctor.check_pool_errors(host).detail == "2 disk(s) ONLINE, no read/write/checksum errors"
    assert doctor.check_scrub(host).detail == "datapool: finished 3d ago with 0 errors"
    assert doctor.check_scrub_schedule(host).detail.endswith("scrubs every pool monthly ('24 0 8-14 * *')")
    assert host.runner.argvs.count(ZSTATUS) == 1  # one zpool status for every pool check


def test_a_one_disk_pool_warns_no_redundancy_and_never_scrubbed(host):
    answer(host, ZSTATUS, zfs_fuse_status("zfs-fuse-single.txt"))
    c = doctor.check_pool_redundancy(host)
    assert c.status == WARN and c.detail == f"datapool is 1 disk: {doctor.NO_REDUNDANCY}"
    assert "no redundancy: ZFS can detect but not repair corruption; see make attach-mirror" in c.detail
    assert c.fix.startswith("make attach-mirror DISK=")
    c = doctor.check_scrub(host)
    assert c.status == WARN and c.detail == "datapool: never scrubbed" and c.fix.startswith("zpool scrub datapool")


def test_an_offlined_leg_fails_naming_degraded_and_the_disk(host):
    answer(host, ZSTATUS, zfs_fuse_status("zfs-fuse-degraded.txt", NOW - 24 * H))
    c = doctor.check_pool_errors(host)
    assert c.status == FAIL
    assert c.detail == "datapool is DEGRADED: datapool DEGRADED, mirror-0 DEGRADED, /var/tmp/poolcap/b.img OFFLINE"
    assert c.fix.startswith("Online the device using 'zpool online'")
    assert doctor.check_pool_redundancy(host).status == OK  # still a mirror, one leg away


def test_read_write_checksum_errors_fail_and_name_the_disk(host):
    answer(host, ZSTATUS, (FIXTURES / "openzfs-2.1-truenas-write-error.txt").read_text())
    c = doctor.check_pool_errors(host)
    assert c.status == FAIL and c.detail == "errors: sda read 0 write 1 cksum 0" and "zpool clear" in c.fix
    host._memo.clear()
    answer(host, ZSTATUS, (FIXTURES / "openzfs-2.x-proxmox-faulted.txt").read_text())
    c = doctor.check_pool_errors(host)
    assert c.status == FAIL and "ata-ST8000DM004-2U9188_ZR14QKCH FAULTED (too many errors)" in c.detail
    assert "ata-ST8000DM004-2U9188_ZR14QKCH read 7 write 1050 cksum 0" in c.detail


@pytest.mark.parametrize("days, errors, status, words", [
    (34, 0, OK, "finished 34d ago with 0 errors"),
    (36, 0, WARN, "the last scrub finished 36d ago (warn past 35 days)"),
    (2, 3, FAIL, "the last scrub (48h ago) found 3 error(s)"),
])
def test_last_scrub_age_and_errors(host, days, errors, status, words):
    text = zfs_fuse_status("zfs-fuse-mirror-scrubbed.txt", NOW - days * 24 * H)
    answer(host, ZSTATUS, text.replace("with 0 errors", f"with {errors} errors"))
    c = doctor.check_scrub(host)
    assert (c.status, words in c.detail) == (status, True), c


def test_a_resilver_or_a_scrub_in_progress(host):
    answer(host, ZSTATUS, zfs_fuse_status("zfs-fuse-mirror-resilvered.txt"))
    c = doctor.check_scrub(host)
    assert c.status == WARN and "no scrub result, the last scan: resilver completed" in c.detail
    host._memo.clear()
    answer(host, ZSTATUS, (FIXTURES / "openzfs-2.x-proxmox-resilvering.txt").read_text())
    assert doctor.check_scrub(host).status == WARN


def test_no_scrub_schedule_warns_and_a_systemd_timer_counts(host):
    (host.cron_dir / doctor.DEBIAN_SCRUB_CRON).unlink()
    c = doctor.check_scrub_schedule(host)
    assert c.status == WARN and "nothing scrubs datapool on a schedule" in c.detail
    assert "zfs-scrub-monthly@datapool.timer" in c.fix and "zfsutils-linux" in c.fix
    answer(host, ("systemctl", "is-enabled", "zfs-scrub-monthly@datapool.timer"), "enabled\n")
    assert doctor.check_scrub_schedule(host) == doctor.Check(OK, "scrub schedule",
                                                              "zfs-scrub-monthly@datapool.timer enabled")


def test_pool_status_not_answering_is_a_warn(host):
    answer(host, ZSTATUS, failed("cannot open 'datapool': no such pool"))
    for check in (doctor.check_pool_redundancy, doctor.check_pool_errors, doctor.check_scrub):
        c = check(host)
        assert c.status == WARN and "no such pool" in c.detail


def test_a_service_dataset_missing_unmounted_or_elsewhere_fails(host):
    answer(host, DATASETS, "datapool/services/git\tmountpoint\t/elsewhere\ndatapool/services/git\tmounted\tyes\n")
    c = doctor.check_datasets(host)
    assert c.status == FAIL
    assert "datapool/services/git is mounted at /elsewhere" in c.detail and "photo does not exist" in c.detail
    answer(host, DATASETS, "datapool/services/git\tmountpoint\t/datapool/services/git\n"
                           "datapool/services/git\tmounted\tno\n")
    assert "git is not mounted" in doctor.check_datasets(host).detail
    answer(host, DATASETS, Result((), 1, "", "cannot open 'datapool/services': dataset does not exist"))
    c = doctor.check_datasets(host)
    assert c.status == FAIL and "does not exist" in c.detail and c.fix == "make setup-storage"


@pytest.mark.parametrize("used, avail, status", [(79, 21, OK), (81, 19, WARN), (96, 4, FAIL)])
def test_free_space_warns_below_20_percent_and_fails_below_5(host, used, avail, status):
    answer(host, FREE, f"used\t{used * 10**9}\navailable\t{avail * 10**9}\n")
    c = doctor.check_free_space(host)
    assert c.status == status and f"({avail}%)" in c.detail


def test_zfs_import_scan_vs_cache(host):
    scan, cache = ("systemctl", "is-enabled", "zfs-import-scan.service"), \
        ("systemctl", "is-enabled", "zfs-import-cache.service")
    answer(host, cache, "enabled\n")
    c = doctor.check_zfs_import(host)
    assert c.status == WARN and "zfs-import-cache is enabled" in c.detail
    assert c.fix == "systemctl disable zfs-import-cache.service && systemctl enable zfs-import-scan.service"
    answer(host, scan, Result((), 1, "disabled\n"))
    answer(host, cache, Result((), 1, "disabled\n"))
    assert doctor.check_zfs_import(host).status == FAIL
    answer(host, scan, Result((), 4, "", "Failed to get unit file state: No such file or directory"))
    answer(host, cache, Result((), 4, "", "Failed to get unit file state: No such file or directory"))
    c = doctor.check_zfs_import(host)
    assert c.status == WARN and "zfs-fuse" in c.detail


def test_zfs_import_without_systemd_cannot_tell(host):
    host.systemd = False
    c = doctor.check_zfs_import(host)
    assert c.status == WARN and "cannot tell" in c.detail and "systemd is not running" in c.detail
    assert not [a for a in host.runner.argvs if a[0] == "systemctl"]


def test_zed_handing_pool_events_to_the_tool(host):
    assert doctor.check_zed(host).status == OK
    host.runner.answers[("systemctl", "is-active", "zfs-zed")] = Result((), 3, "inactive\n")
    c = doctor.check_zed(host)
    assert c.status == FAIL and "zfs-zed is inactive" in c.detail and c.fix == "systemctl enable --now zfs-zed"
    zedlet.uninstall(host.zed_dir)
    c = doctor.check_zed(host)
    assert c.status == WARN and c.fix == "make install-zedlet"
    host.zed_dir.rmdir()
    c = doctor.check_zed(host)
    assert c.status == WARN and "nothing tells you when a disk fails" in c.detail and "zfs-zed" in c.fix
