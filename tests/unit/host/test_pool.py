"""setup-pool / attach-mirror: the plan (what is refused, what is set, what this ZFS does not
offer) against a fake runner fed with real zfs-fuse and blkid outputs, and the CLI's dry run,
question and --yes. Nothing is changed before the question is answered."""

from pathlib import Path

import pytest
from click.testing import CliRunner

import orchestrator
from management.config import load_settings
from management.errors import ValidationError
from management.host.pool import PoolManager
from management.runner import Result
from tests.fakes import FakeRunner
from tests.unit.config.test_load import BASE, write

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
LIST = ("zpool", "list", "-H", "-o", "name", "datapool")
NO_POOL = Result((), 1, "", "cannot open 'datapool': no such pool\n")
ZFS_GET = Result((), 2, "", (FIXTURES / "zfs-usage" / "zfs-fuse-zfs-get.txt").read_text())
ZPOOL_GET = Result((), 2, "", (FIXTURES / "zfs-usage" / "zfs-fuse-zpool-get.txt").read_text())
ZFS_MEMBER = "DEVNAME=x\nVERSION=23\nLABEL=old\nTYPE=zfs_member\nUSAGE=filesystem\n"
EXT4 = "DEVNAME=x\nTYPE=ext4\nUSAGE=filesystem\n"


def status_of(name: str) -> str:
    return (FIXTURES / "zpool-status" / name).read_text().replace("cap5128", "datapool")


@pytest.fixture
def env(tmp_path):
    return write(tmp_path, BASE)


@pytest.fixture
def disks(tmp_path):
    out = []
    for name in ("a.img", "b.img"):
        p = tmp_path / name
        p.write_bytes(b"")
        out.append(str(p))
    return out


def manager(env, answers) -> PoolManager:
    fake = FakeRunner({LIST: NO_POOL, ("zfs", "get"): ZFS_GET, ("zpool", "get"): ZPOOL_GET,
                       ("blkid",): Result((), 2, ""), **answers})
    return PoolManager(load_settings(env)[0], fake, echo=lambda _m: None)


def test_a_mirror_of_two_clean_disks_with_what_zfs_fuse_offers(env, disks):
    m = manager(env, {})
    plan = m.plan_create(disks, mountpoint="/mnt/datapool")
    assert plan.argv == ["zpool", "create", "-o", "ashift=12", "-O", "atime=off", "-m", "/mnt/datapool",
                         "datapool", "mirror", *disks]
    assert plan.skipped == {"compression": "lz4", "xattr": "sa", "acltype": "posixacl"}
    lines = plan.lines(dry_run=True)
    assert lines[0] == f"would create pool datapool as a mirror of 2 disks: {' '.join(disks)}"
    assert lines[2] == "  not set, this ZFS does not offer them: compression=lz4, xattr=sa, acltype=posixacl"
    assert all(not c.mutating for c in m.runner.calls)
    assert [c.argv[:4] for c in m.runner.calls if c.argv[0] == "blkid"] == [("blkid", "-p", "-o", "export")] * 2


def test_one_disk_says_it_has_no_redundancy(env, disks):
    plan = manager(env, {}).plan_create(disks[:1])
    assert plan.argv[-2:] == ["datapool", disks[0]] and "no redundancy" in plan.what


@pytest.mark.parametrize("probe, words", [(ZFS_MEMBER, "holds a ZFS pool (old)"), (EXT4, "holds a filesystem (ext4)"),
                                          ("PTTYPE=dos\n", "holds a partition table (dos)")])
def test_a_disk_that_holds_something_is_refused_unless_forced(env, disks, probe, words):
    m = manager(env, {("blkid", "-p", "-o", "export", disks[1]): probe})
    with pytest.raises(ValidationError) as err:
        m.plan_create(disks)
    assert f"{disks[1]} {words}" in str(err.value) and "FORCE=1" in str(err.value)
    assert "Nothing was changed" in str(err.value) and all(not c.mutating for c in m.runner.calls)
    plan = m.plan_create(disks, force=True)
    assert plan.argv[:3] == ["zpool", "create", "-f"] and plan.forced == [f"{disks[1]} {words}: it will be overwritten"]


def test_an_existing_pool_a_missing_disk_a_directory_or_a_disk_named_twice_is_refused(env, disks, tmp_path):
    with pytest.raises(ValidationError, match="pool datapool already exists"):
        manager(env, {LIST: "datapool\n"}).plan_create(disks)
    with pytest.raises(ValidationError, match="no such disk or file"):
        manager(env, {}).plan_create([disks[0], str(tmp_path / "nope")])
    with pytest.raises(ValidationError, match="not a block device or a file"):
        manager(env, {}).plan_create([disks[0], str(tmp_path)])
    with pytest.raises(ValidationError, match="named twice"):
        manager(env, {}).plan_create([disks[0], disks[0]])


def test_attach_mirror_to_a_one_disk_pool(env, disks):
    status = ("zpool", "status", "datapool")
    m = manager(env, {LIST: "datapool\n", status: status_of("zfs-fuse-single.txt")})
    plan = m.plan_attach(disks[1])
    assert plan.argv == ["zpool", "attach", "datapool", "/var/tmp/poolcap/a.img", disks[1]]
    assert all(not c.mutating for c in m.runner.calls)
    with pytest.raises(ValidationError, match=r"already redundant \(mirror of 2 disks\)"):
        manager(env, {LIST: "datapool\n", status: status_of("zfs-fuse-mirror-scrubbed.txt")}).plan_attach(disks[1])
    with pytest.raises(ValidationError, match="does not exist"):
        manager(env, {}).plan_attach(disks[1])
    with pytest.raises(ValidationError, match="holds a ZFS pool"):
        manager(env, {LIST: "datapool\n", status: status_of("zfs-fuse-single.txt"),
                      ("blkid",): ZFS_MEMBER}).plan_attach(disks[1])


# --- CLI ------------------------------------------------------------------------------------


def cli(monkeypatch, env, fake, *args, stdin=None):
    monkeypatch.setattr(orchestrator.App, "runner", property(lambda self: fake))
    return CliRunner().invoke(orchestrator.cli, ["--env-file", str(env), *args], input=stdin)


def test_cli_prints_the_plan_asks_and_changes_nothing_on_no(monkeypatch, env, disks):
    fake = manager(env, {}).runner
    result = cli(monkeypatch, env, fake, "setup-pool", *disks, stdin="n\n")
    assert result.exit_code == 1 and "create pool datapool as a mirror of 2 disks" in result.output
    assert "Everything on them is lost" in result.output
    assert all(not c.mutating for c in fake.calls)


def test_cli_dry_run_and_yes(monkeypatch, env, disks):
    fake = manager(env, {}).runner
    result = cli(monkeypatch, env, fake, "--dry-run", "setup-pool", *disks)
    assert result.exit_code == 0 and result.output.splitlines()[-1] == "dry run: nothing changed"
    assert all(not c.mutating for c in fake.calls)

    fake = manager(env, {("zpool", "status", "datapool"): status_of("zfs-fuse-mirror-resilvered.txt")}).runner
    result = cli(monkeypatch, env, fake, "setup-pool", "--yes", *disks)
    assert result.exit_code == 0, result.output
    assert [c.argv for c in fake.calls if c.mutating] == [
        ("zpool", "create", "-o", "ashift=12", "-O", "atime=off", "datapool", "mirror", *disks)]
    assert result.output.splitlines()[-1] == "pool datapool: ONLINE, mirror of 2 disks"
