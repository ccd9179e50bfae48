"""ZFS argv builders, name validation, and the pure merges behind setup-storage."""
from __future__ import annotations

import pytest

from management.errors import ValidationError
from management.tools.zfs import (
    ZFSManager,
    clone_argv,
    create_argv,
    destroy_snapshot_argv,
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

