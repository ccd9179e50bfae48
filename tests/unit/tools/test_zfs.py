"""ZFS argv builders, name validation, and the pure merges behind setup-storage."""
from __future__ import annotations

import time

import pytest

from management.errors import CommandError, ValidationError
from management.tools.zfs import (
    ZFSManager,
    clone_argv,
    create_argv,
    destroy_snapshot_argv,
    get_argv,
    parse_props,
    props_argv,
    snapshot_argv,
    split_snapshot,
)
from tests.fakes import FakeRunner


def test_argv_builders():
    assert create_argv("pool/svc/git") == ["zfs", "create", "-p", "pool/svc/git"]
    assert create_argv("pool/svc", mountpoint="/srv") == ["zfs", "create", "-p", "-o", "mountpoint=/srv", "pool/svc"]
    assert snapshot_argv("pool/svc", "orchestrator-1") == ["zfs", "snapshot", "-r", "pool/svc@orchestrator-1"]
    assert destroy_snapshot_argv("pool/svc", "x", recursive=True) == ["zfs", "destroy", "-r", "pool/svc@x"]
    assert clone_argv("pool/svc/git@s", "pool/views/git", "/run/v/git") == [
        "zfs", "clone", "-o", "readonly=on", "-o", "mountpoint=/run/v/git", "pool/svc/git@s", "pool/views/git"]
    assert props_argv("pool/svc", ("creation", "used"))[-2:] == ["creation,used", "pool/svc"]



@pytest.mark.parametrize("bad", ["", "a/b", "a@b", "has space", "-dash", "x;rm -rf /", "$(id)"])
def test_bad_snapshot_names_are_rejected_before_any_call(bad):
    with pytest.raises(ValidationError):
        snapshot_argv("pool/svc", bad)



@pytest.mark.parametrize("bad", ["pool/svc/git", "pool/svc@a@b", "pool//x@s"])
def test_split_snapshot_refuses_non_snapshots(bad):
    with pytest.raises(ValidationError):
        split_snapshot(bad)



def test_parse_props_groups_by_name():
    out = "p/a\tcreation\t10\np/a\tused\t5\np/a@s\tcreation\t11\n"
    assert parse_props(out) == {"p/a": {"creation": "10", "used": "5"}, "p/a@s": {"creation": "11"}}



def test_destroy_recursive_snapshot_only_destroys_prefixed_names():
    fake = FakeRunner()
    zfs = ZFSManager(fake)
    with pytest.raises(ValidationError, match="not created by this tool"):
        zfs.destroy_recursive_snapshot("pool/svc", "before-upgrade", prefix="orchestrator")
    with pytest.raises(ValidationError):
        zfs.destroy_recursive_snapshot("pool/svc", "orchestratorX", prefix="orchestrator")
    assert fake.calls == []
    zfs.destroy_recursive_snapshot("pool/svc", "orchestrator-20260101T000000Z", prefix="orchestrator")
    assert fake.argvs == [("zfs", "destroy", "-r", "pool/svc@orchestrator-20260101T000000Z")]



def test_destroy_view_refuses_a_dataset_that_is_not_a_clone():
    fake = FakeRunner({("zfs", "get"): "pool/svc/git\torigin\t-\npool/svc/git\tmounted\tyes\n"})
    with pytest.raises(ValidationError, match="not a clone"):
        ZFSManager(fake).destroy_view("pool/svc/git")
    assert not [a for a in fake.argvs if a[1] in ("destroy", "unmount")]



def test_destroy_view_of_a_mounted_clone_is_three_calls():
    fake = FakeRunner({("zfs", "get"): "pool/v/git\torigin\tpool/s/git@o-1\npool/v/git\tmounted\tyes\n"})
    ZFSManager(fake).destroy_view("pool/v/git")
    assert [a[1] for a in fake.argvs] == ["get", "unmount", "destroy"]
    assert fake.argvs[-1] == ("zfs", "destroy", "pool/v/git")



class FlakyDestroy(FakeRunner):
    """The first `failures` destroys meet `stderr`; the rest succeed."""

    def __init__(self, answers, failures: int, stderr: str):
        super().__init__(answers)
        self.failures, self.stderr = failures, stderr

    def run(self, argv, **kw):
        if tuple(argv[:2]) == ("zfs", "destroy") and self.failures:
            self.failures -= 1
            super().run(argv, **kw)  # recorded
            raise CommandError(" ".join(argv), 1, self.stderr)
        return super().run(argv, **kw)


@pytest.mark.parametrize("stderr", [
    "cannot destroy 'pool/v/git': dataset is busy",
    "zfsfuse_ioctl_read_loop(): file descriptor closed\ncannot destroy 'pool/v/git': I/O error",
    "umount: /v/git: target is busy.\ncannot unmount '/v/git': umount failed: umount child process failed",
])
def test_a_view_destroy_that_meets_a_transient_state_is_retried_and_unmounted_again(stderr, monkeypatch):
    monkeypatch.setattr(time, "sleep", lambda s: None)
    fake = FlakyDestroy({("zfs", "get"): "pool/v/git\torigin\tpool/s/git@o-1\npool/v/git\tmounted\tyes\n",
                         tuple(get_argv("mounted", "pool/v/git")): "yes\n"},  # fuse let go of nothing yet
                        failures=2, stderr=stderr)
    ZFSManager(fake).destroy_view("pool/v/git")
    verbs = [a[1] for a in fake.argvs]
    assert verbs.count("destroy") == 3 and verbs[-1] == "destroy"
    assert verbs.count("unmount") == 3  # once before, and again after each transient answer


def test_a_view_destroy_that_fails_for_real_is_not_retried(monkeypatch):
    monkeypatch.setattr(time, "sleep", lambda s: None)
    fake = FlakyDestroy({("zfs", "get"): "pool/v/git\torigin\tpool/s/git@o-1\npool/v/git\tmounted\tno\n"},
                        failures=1, stderr="cannot destroy 'pool/v/git': filesystem has children")
    with pytest.raises(CommandError, match="children"):
        ZFSManager(fake).destroy_view("pool/v/git")
    assert [a[1] for a in fake.argvs].count("destroy") == 1


def test_list_views_returns_only_clones():
    fake = FakeRunner({
        ("zfs", "list"): "pool/views\n",
        ("zfs", "get"): "pool/views\torigin\t-\npool/views/git\torigin\tpool/s/git@o-1\npool/views/tmp\torigin\t-\n",
    })
    assert ZFSManager(fake).list_views("pool/views") == ["pool/views/git"]



def test_import_argv_scans_for_one_named_pool():
    from management.tools.zfs import import_argv

    assert import_argv("datapool") == ["zpool", "import", "-N", "datapool"]
    with pytest.raises(ValidationError):
        import_argv("datapool/services")



# --- pools ------------------------------------------------------------------------------------

from pathlib import Path  # noqa: E402

from management.tools.zfs import (  # noqa: E402
    FS_PROPS,
    POOL_PROPS,
    offers,
    parse_pool_status,
    parse_scan,
    parse_supported,
    pool_attach_argv,
    pool_create_argv,
    split_supported,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def fixture(name: str) -> str:
    return (FIXTURES / "zpool-status" / name).read_text()


def test_pool_create_argv_mirror_or_one_disk_and_attach():
    assert pool_create_argv("tank", ["/d/a", "/d/b"], pool_props={"ashift": "12"},
                            fs_props={"compression": "lz4", "atime": "off"}, mountpoint="/mnt/tank") == [
        "zpool", "create", "-o", "ashift=12", "-O", "compression=lz4", "-O", "atime=off", "-m", "/mnt/tank",
        "tank", "mirror", "/d/a", "/d/b"]
    assert pool_create_argv("tank", ["/d/a"], pool_props={}, fs_props={}, force=True) == [
        "zpool", "create", "-f", "tank", "/d/a"]
    assert pool_attach_argv("tank", "sda", "/d/b") == ["zpool", "attach", "tank", "sda", "/d/b"]
    with pytest.raises(ValidationError):
        pool_create_argv("tank/x", ["/d/a"], pool_props={}, fs_props={})
    with pytest.raises(ValidationError):
        pool_create_argv("tank", [], pool_props={}, fs_props={})


def test_zfs_fuse_offers_ashift_atime_but_not_lz4_xattr_sa_or_acltype():
    zfs = parse_supported((FIXTURES / "zfs-usage" / "zfs-fuse-zfs-get.txt").read_text())
    zpool = parse_supported((FIXTURES / "zfs-usage" / "zfs-fuse-zpool-get.txt").read_text())
    assert zfs["compression"] == "on | off | lzjb | gzip | gzip-[1-9] | zle" and zfs["xattr"] == "on | off"
    assert zpool["ashift"] == "<ashift, 9-13, or 0=default>"
    assert split_supported(POOL_PROPS, zpool) == ({"ashift": "12"}, {})
    assert split_supported(FS_PROPS, zfs) == ({"atime": "off"},
                                              {"compression": "lz4", "xattr": "sa", "acltype": "posixacl"})


def test_openzfs_offers_all_of_them():
    # the rows as OpenZFS 2.3 prints them (module/zcommon/zfs_prop.c, zpool_prop.c at zfs-2.3.9)
    zfs = parse_supported(
        "\nThe following properties are supported:\n\n\tPROPERTY       EDIT  INHERIT   VALUES\n\n"
        "\tacltype         YES      YES   off | nfsv4 | posix\n"
        "\tatime           YES      YES   on | off\n"
        "\tcompression     YES      YES   on | off | lzjb | gzip | gzip-[1-9] | zle | lz4 | zstd | zstd-[1-19] | "
        "zstd-fast | zstd-fast-[1-10,20,30,40,50,60,70,80,90,100,500,1000]\n"
        "\txattr           YES      YES   on | off | dir | sa\n\nSizes are specified in bytes\n")
    zpool = parse_supported("the following properties are supported:\n\n\tPROPERTY         EDIT   VALUES\n\n"
                            "\tashift            YES   <ashift, 9-16, or 0=default>\n")
    assert split_supported(FS_PROPS, zfs) == (FS_PROPS, {})  # posixacl is OpenZFS's alias of posix
    assert offers(zpool, "ashift", "12") and not offers(zpool, "autotrim", "on")


def test_zfs_fuse_outputs():
    single = parse_pool_status(fixture("zfs-fuse-single.txt"))
    assert (single.pool, single.state, single.redundant, single.layout) == ("cap5128", "ONLINE", False, "1 disk")
    assert (single.scan.kind, single.scan.state) == ("none", "none")

    mirror = parse_pool_status(fixture("zfs-fuse-mirror-resilvered.txt"))
    assert mirror.redundant is True and mirror.layout == "mirror of 2 disks"
    assert [(v.name, v.depth) for v in mirror.vdevs] == [("cap5128", 0), ("mirror-0", 1),
                                                         ("/var/tmp/poolcap/a.img", 2), ("/var/tmp/poolcap/b.img", 2)]
    assert mirror.vdevs[-1].note == "388K resilvered" and not mirror.with_errors
    assert (mirror.scan.kind, mirror.scan.state, mirror.scan.errors) == ("resilver", "finished", 0)

    scrubbed = parse_pool_status(fixture("zfs-fuse-mirror-scrubbed.txt"))
    assert (scrubbed.scan.kind, scrubbed.scan.state, scrubbed.scan.errors) == ("scrub", "finished", 0)
    assert scrubbed.scan.end == time.mktime((2026, 12, 1, 19, 25, 47, 0, 0, -1))

    degraded = parse_pool_status(fixture("zfs-fuse-degraded.txt"))
    assert degraded.state == "DEGRADED" and degraded.redundant is True
    assert [(v.name, v.state) for v in degraded.unhealthy] == [
        ("cap5128", "DEGRADED"), ("mirror-0", "DEGRADED"), ("/var/tmp/poolcap/b.img", "OFFLINE")]
    assert degraded.status.startswith("One or more devices has been taken offline")
    assert "zpool online" in degraded.action


def test_openzfs_outputs():
    man = parse_pool_status(fixture("openzfs-2.3-man-mirror.txt"))
    assert (man.pool, man.state, man.layout, man.scan.state) == ("tank", "ONLINE", "mirror of 2 disks", "none")

    head = parse_pool_status(fixture("openzfs-2.3.0-degraded-head.txt"))
    assert (head.pool, head.state, head.scan.kind, head.scan.state, head.scan.errors) == (
        "HomeBackup", "DEGRADED", "resilver", "finished", 0)
    assert head.scan.end == time.mktime((2025, 6, 18, 7, 56, 59, 0, 0, -1))

    truenas = parse_pool_status(fixture("openzfs-2.1-truenas-write-error.txt"))
    assert truenas.layout == "raidz2 of 5 disks" and truenas.redundant
    assert [(v.name, v.read, v.write, v.cksum) for v in truenas.with_errors] == [("sda", 0, 1, 0)]
    assert (truenas.scan.kind, truenas.scan.state, truenas.scan.errors) == ("scrub", "finished", 0)

    unavail = parse_pool_status(fixture("openzfs-2.x-proxmox-unavail.txt"))
    assert [(v.name, v.state, v.note) for v in unavail.unhealthy][-1] == (
        "15001682754067572671", "UNAVAIL", "was /dev/disk/by-id/ata-ST8000DM004-2U9188_ZR14QKCH-part1")
    assert [v.name for v in unavail.top_level] == ["raidz1-0"]  # the log device is not a data vdev
    assert unavail.vdevs[-1].section == "logs"

    faulted = parse_pool_status(fixture("openzfs-2.x-proxmox-faulted.txt"))
    assert faulted.state == "DEGRADED"
    assert [(v.read, v.write, v.note) for v in faulted.with_errors] == [(7, 1050, "too many errors")]

    resilvering = parse_pool_status(fixture("openzfs-2.x-proxmox-resilvering.txt"))
    assert (resilvering.scan.kind, resilvering.scan.state) == ("resilver", "in_progress")
    assert "0.98% done" in resilvering.scan.text


def test_scan_lines():
    assert parse_scan("scrub in progress since Sun Jul 25 16:07:49 2021 403M / 405M scanned").state == "in_progress"
    assert parse_scan("scrub canceled on Fri Aug 19 15:33:19 2022").state == "canceled"
    assert parse_scan("scrub paused since Fri Aug 19 15:33:19 2022").state == "paused"
    found = parse_scan("scrub repaired 2K in 00:00:01 with 3 errors on Fri Mar 13 07:18:28 2026")
    assert (found.kind, found.state, found.errors) == ("scrub", "finished", 3)
    assert parse_scan("").kind == "none"


def test_a_stripe_of_bare_disks_is_not_redundant():
    row = "\t  /var/tmp/poolcap/a.img  ONLINE       0     0     0\n"
    text = fixture("zfs-fuse-single.txt").replace(row, row + row.replace("a.img", "b.img"))
    st = parse_pool_status(text)
    assert st.redundant is False and st.layout == "stripe of 2 disks, no mirror"


def test_which_datasets_are_mounted_is_one_question_for_all_of_them():
    fake = FakeRunner({("zfs", "get"): "pool/svc\tmounted\tyes\npool/svc/git\tmounted\tyes\n"
                                       "pool/svc/git@orchestrator-1\tmounted\t-\npool/svc/photo\tmounted\tno\n"})
    assert ZFSManager(fake).mounted_below("pool/svc") == {"pool/svc", "pool/svc/git"}
    assert fake.argvs == [("zfs", "get", "-H", "-p", "-r", "-o", "name,property,value", "mounted", "pool/svc")]


def test_parse_importable_gives_each_pool_its_block_and_nothing_when_none():
    from management.tools.zfs import parse_importable

    text = """   pool: datapool
     id: 1234
  state: ONLINE
 status: The pool was last accessed by another system.
 action: The pool can be imported using its name or numeric identifier and
\tthe '-f' flag.
 config:

\tdatapool    ONLINE
\t  vdb       ONLINE

   pool: other
     id: 99
  state: ONLINE
 action: The pool can be imported using its name or numeric identifier.
"""
    found = parse_importable(text)
    assert list(found) == ["datapool", "other"]
    assert "another system" in found["datapool"] and "another system" not in found["other"]
    assert parse_importable("no pools available to import\n") == {}


def test_the_tree_is_datasets_and_their_snapshots_from_one_zfs_get():
    from management.tools.zfs import TREE_PROPS, Dataset, Snapshot

    out = ("pool/svc\tmountpoint\t/pool/svc\npool/svc\tmounted\tyes\npool/svc\tused\t900\npool/svc\tcreation\t5\n"
           "pool/svc/git@b\tcreation\t200\npool/svc/git@b\tused\t7\npool/svc/git@b\tmountpoint\t-\n"
           "pool/svc/git@a\tcreation\t100\npool/svc/git@a\tused\t3\n")
    fake = FakeRunner({("zfs", "get"): out})
    datasets, snaps = ZFSManager(fake).tree("pool/svc")
    assert fake.argvs == [("zfs", "get", "-H", "-p", "-r", "-o", "name,property,value",
                           ",".join(TREE_PROPS), "pool/svc")]
    assert not fake.calls[0].mutating
    assert datasets == [Dataset("pool/svc", "/pool/svc", True, 900)]
    assert snaps == [Snapshot("pool/svc/git@a", 100, 3), Snapshot("pool/svc/git@b", 200, 7)]  # oldest first


def test_space_argv_and_parse_space():
    from management.tools.zfs import parse_space, space_argv

    assert space_argv("datapool") == ["zfs", "get", "-H", "-p", "-o", "property,value", "used,available", "datapool"]
    assert parse_space("used\t300\navailable\t700\n") == (300, 700)
    assert parse_space("used\t300\n") is None and parse_space("used\tx\navailable\t1\n") is None
    with pytest.raises(ValidationError):
        space_argv("bad name")


def test_destroys_never_overlap_while_reads_may():
    """The borg workers remove their views from parallel threads: one destroy or unmount at a time."""
    import threading

    class Slow(FakeRunner):
        def __init__(self):
            super().__init__({("zfs", "get"): "pool/v/a\torigin\tpool/s/a@o-1\npool/v/a\tmounted\tno\n"})
            self.inside = self.most = 0
            self.guard = threading.Lock()

        def run(self, argv, **kw):
            if not kw.get("mutating", True):
                return super().run(argv, **kw)
            with self.guard:
                self.inside += 1
                self.most = max(self.most, self.inside)
            time.sleep(0.02)
            with self.guard:
                self.inside -= 1
            return super().run(argv, **kw)

    fake = Slow()
    zfs = ZFSManager(fake)
    threads = [threading.Thread(target=zfs.destroy_view, args=("pool/v/a",)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [a[1] for a in fake.argvs].count("destroy") == 4 and fake.most == 1


class KilledCreate(FakeRunner):
    """`zfs create` / `zfs clone` killed (-9) after ZFS made the dataset; `existed` says whether
    it was there before the command."""

    def __init__(self, existed: bool):
        super().__init__({("zfs", "get"): "pool/v/drill-git\torigin\tpool/s/git@o-1\npool/v/drill-git\tmounted\tno\n"})
        self.made = existed

    def run(self, argv, **kw):
        argv = tuple(str(a) for a in argv)
        if argv[1] in ("create", "clone"):
            super().run(argv, **kw)
            if self.made:  # there before: zfs says so and makes nothing
                raise CommandError(" ".join(argv), 1, "cannot create 'pool/v/drill-git': dataset already exists")
            self.made = True
            raise CommandError(" ".join(argv), -9, "")
        if argv[1] == "list":
            super().run(argv, **kw)
            from management.runner import Result
            return Result(argv, 0 if self.made else 1, argv[-1] + "\n" if self.made else "")
        if argv[1] == "destroy":
            self.made = False
        return super().run(argv, **kw)


@pytest.mark.parametrize("make", ["scratch", "view"])
def test_a_create_killed_after_zfs_made_the_dataset_leaves_nothing_and_never_takes_what_was_there(make):
    """Found by the chaos campaign (seed 37, step 95): `zfs create` of a drill's scratch was
    SIGKILLed after ZFS had made it; the drill failed and left the dataset."""
    for existed in (False, True):
        fake = KilledCreate(existed)
        zfs = ZFSManager(fake)
        with pytest.raises(CommandError):
            if make == "scratch":
                zfs.create_scratch("pool/v", "git", "/v/drill-git")
            else:
                zfs.create_view("pool/s/git@o-1", "pool/v/drill-git", "/v/drill-git")
        destroyed = [a for a in fake.argvs if a[1] == "destroy"]
        assert (destroyed == [("zfs", "destroy", "pool/v/drill-git")]) is not existed, fake.argvs


class KilledQuery(FakeRunner):
    """The first `kills` read-only `zfs get` are SIGKILLed (-9); `timeouts` of them time out instead."""

    def __init__(self, answers, kills: int = 1, timeout: bool = False):
        super().__init__(answers)
        self.kills, self.timeout = kills, timeout

    def run(self, argv, **kw):
        if tuple(argv[:2]) == ("zfs", "get") and self.kills:
            self.kills -= 1
            super().run(argv, **kw)
            raise CommandError(" ".join(argv), None if self.timeout else -9, "",
                               reason="timed out after 120s" if self.timeout else "")
        return super().run(argv, **kw)


def test_a_query_killed_on_the_way_out_is_asked_once_more_and_the_clone_goes():
    """Found by the chaos campaign (seed 37, step 147): `zfs get` SIGKILLed as restore-path
    removed its read-only clone; the clone stayed until the next run."""
    props = "pool/v/git\torigin\tpool/s/git@o-1\npool/v/git\tmounted\tyes\n"
    fake = KilledQuery({("zfs", "get"): props})
    ZFSManager(fake).destroy_view("pool/v/git")
    assert [a[1] for a in fake.argvs] == ["get", "get", "unmount", "destroy"]
    # killed twice: it fails, and nothing is destroyed on a guess
    fake = KilledQuery({("zfs", "get"): props}, kills=2)
    with pytest.raises(CommandError):
        ZFSManager(fake).destroy_view("pool/v/git")
    assert [a[1] for a in fake.argvs] == ["get", "get"]


def test_a_query_that_timed_out_is_not_asked_again():
    fake = KilledQuery({("zfs", "get"): "x\n"}, timeout=True)
    with pytest.raises(CommandError, match="timed out"):
        ZFSManager(fake).get("mounted", "pool/v/git")
    assert len(fake.argvs) == 1


class KilledUnmount(FakeRunner):
    def run(self, argv, **kw):
        if tuple(argv[:2]) == ("zfs", "unmount"):
            super().run(argv, **kw)
            raise CommandError(" ".join(argv), -9, "")
        return super().run(argv, **kw)


def test_an_unmount_killed_before_the_destroy_does_not_stop_the_destroy():
    """Found by the chaos campaign (seed 37, step 147 again, after the query was fixed): `zfs
    unmount` of restore-path's clone SIGKILLed; the clone stayed until the next run."""
    fake = KilledUnmount({("zfs", "get"): "pool/v/git\torigin\tpool/s/git@o-1\npool/v/git\tmounted\tyes\n"})
    ZFSManager(fake).destroy_view("pool/v/git")
    assert [a[1] for a in fake.argvs] == ["get", "unmount", "destroy"]
