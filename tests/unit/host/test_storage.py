"""ZFS argv builders, name validation, and the pure merges behind setup-storage."""
from __future__ import annotations

import json

import pytest

from management.errors import ValidationError
from management.host.storage import merge_daemon_json, merge_subid, parse_daemon_json
from management.tools.zfs import (
    ZFSManager,
)
from tests.fakes import FakeRunner


class _LateDisk(FakeRunner):
    """A host whose pool disk appears after `attach_after` rounds: until then `zpool import`
    finds nothing; once imported, the datasets are mounted only by `zfs mount`."""

    def __init__(self, attach_after: int):
        super().__init__()
        self.rounds = 0
        self.attach_after = attach_after
        self.imported = False
        self.mounted: set[str] = set()

    def run(self, argv, **kw):
        from management.runner import Result

        argv = tuple(str(a) for a in argv)
        super().run(argv, **kw)  # recorded
        if argv[:3] == ("zpool", "import", "-N"):
            self.imported = self.rounds >= self.attach_after
            return Result(argv, 0 if self.imported else 1, "", "" if self.imported else "cannot import: no such pool")
        if argv[:2] == ("zfs", "list"):
            ok = self.imported and argv[-1].startswith("datapool/services")
            return Result(argv, 0 if ok else 1, argv[-1] + "\n" if ok else "", "")
        if argv[:2] == ("zfs", "get"):
            rows = [(ds, mp) for ds, mp in (("datapool/services", "/datapool/services"),
                                            ("datapool/services/git", "/datapool/services/git"),
                                            ("datapool/services/off", "none"))]
            out = "".join(f"{ds}\tmountpoint\t{mp}\n{ds}\tcanmount\ton\n"
                          f"{ds}\tmounted\t{'yes' if ds in self.mounted else 'no'}\n" for ds, mp in rows)
            return Result(argv, 0, out, "")
        if argv[:2] == ("zfs", "mount"):
            self.mounted.add(argv[-1])
            return Result(argv, 0, "", "")
        raise AssertionError(f"unexpected call {argv}")



def _storage(tmp_path, runner):
    from management.host.storage import StorageManager
    from tests.unit.config.test_load import settings_with

    lines: list[str] = []
    return StorageManager(settings_with(tmp_path), runner, ZFSManager(runner), echo=lines.append), lines



def test_merge_subid_keeps_other_lines_and_is_idempotent():
    text = "alice:165536:65536\n"
    merged, changed = merge_subid(text, "dockeruser", 100000, 65536)
    assert changed and merged == "alice:165536:65536\ndockeruser:100000:65536\n"
    assert merge_subid(merged, "dockeruser", 100000, 65536) == (merged, False)
    # a wider existing range for the user already covers ours
    assert merge_subid("dockeruser:100000:131072\n", "dockeruser", 100000, 65536)[1] is False
    assert merge_subid("alice:1:2", "dockeruser", 100000, 65536)[0] == "alice:1:2\ndockeruser:100000:65536\n"



def test_merge_daemon_json_sets_ours_and_keeps_the_rest():
    current = {"data-root": "/srv/docker", "log-opts": {"tag": "x", "max-size": "1m"}}
    merged = merge_daemon_json(current, "dockeruser")
    assert merged == {"data-root": "/srv/docker", "userns-remap": "dockeruser", "log-driver": "local",
                      "log-opts": {"tag": "x", "max-size": "10m", "max-file": "3"}}
    assert merge_daemon_json(merged, "dockeruser") == merged
    # the address pool: added where there is none, a pool someone chose stays
    pools = merge_daemon_json(current, "dockeruser", ("172.16.0.0/12", 24))["default-address-pools"]
    assert pools == [{"base": "172.16.0.0/12", "size": 24}]
    mine = {"default-address-pools": [{"base": "10.200.0.0/16", "size": 26}]}
    assert merge_daemon_json(mine, "d", ("172.16.0.0/12", 24))["default-address-pools"] == \
        mine["default-address-pools"]
    assert "default-address-pools" not in merge_daemon_json({}, "d", ())  # `off`
    # options of another log driver do not carry over to `local`
    assert merge_daemon_json({"log-driver": "syslog", "log-opts": {"syslog-address": "udp://x"}}, "d")["log-opts"] == {
        "max-size": "10m", "max-file": "3"}



def test_parse_daemon_json_names_the_line(tmp_path):
    path = tmp_path / "daemon.json"
    assert parse_daemon_json(path) == {}
    path.write_text(json.dumps({"a": 1}))
    assert parse_daemon_json(path) == {"a": 1}
    path.write_text('{\n "a": 1,\n bad\n}')
    with pytest.raises(ValidationError, match=r"line 3"):
        parse_daemon_json(path)



def test_wait_for_storage_imports_a_late_pool_by_scanning_and_mounts_its_datasets(tmp_path):
    runner = _LateDisk(attach_after=3)
    manager, lines = _storage(tmp_path, runner)
    now = [0.0]

    def sleep(seconds):
        now[0] += seconds
        runner.rounds += 1

    waited = manager.wait_for_storage(300, interval=5, clock=lambda: now[0], sleep=sleep)
    assert waited == 15.0
    imports = [c.argv for c in runner.calls if c.argv[:2] == ("zpool", "import")]
    assert imports == [("zpool", "import", "-N", "datapool")] * 4  # by name, never -a
    assert runner.mounted == {"datapool/services", "datapool/services/git"}  # not the mountpoint=none one
    assert "not imported" in lines[0] and "ready after 15s" in lines[-1]



def test_wait_for_storage_gives_up_after_the_timeout_and_names_what_is_missing(tmp_path):
    from management.errors import OrchestratorError

    runner = _LateDisk(attach_after=10**6)
    manager, lines = _storage(tmp_path, runner)
    now = [0.0]

    def sleep(seconds):
        now[0] += seconds

    with pytest.raises(OrchestratorError, match=r"not ready after 20s .*pool datapool is not imported.*held back"):
        manager.wait_for_storage(20, interval=5, clock=lambda: now[0], sleep=sleep)
    assert now[0] == 20.0 and not runner.mounted



class _RebuiltOS(FakeRunner):
    """A fresh OS disk beside the old data disk: the pool is on the disks, not imported; once
    imported (-N) its datasets exist and nothing is mounted."""

    def __init__(self, status: str = ""):
        super().__init__()
        self.status = status
        self.imported = False
        self.mounted: list[str] = []

    def run(self, argv, **kw):
        from management.runner import Result

        argv = tuple(str(a) for a in argv)
        super().run(argv, **kw)
        if argv == ("zpool", "import"):
            return Result(argv, 0, f"   pool: datapool\n     id: 1\n  state: ONLINE\n{self.status}", "")
        if argv[:3] == ("zpool", "import", "-N"):
            self.imported = True
            return Result(argv, 0, "", "")
        if argv[:2] == ("zfs", "list"):
            ok = self.imported and argv[-1].startswith("datapool")
            return Result(argv, 0 if ok else 1, argv[-1] + "\n" if ok else "", "")
        if argv[:2] == ("zfs", "get"):
            prop, ds = argv[-2], argv[-1]
            value = {"mountpoint": "/" + ds, "mounted": "yes" if ds in self.mounted else "no"}[prop]
            return Result(argv, 0, value + "\n", "")
        if argv[:2] == ("zfs", "mount"):
            self.mounted.append(argv[-1])
            return Result(argv, 0, "", "")
        raise AssertionError(f"unexpected call {argv}")


def test_a_pool_found_on_the_disks_is_imported_as_it_is_and_its_datasets_mounted_parent_first(tmp_path):
    runner = _RebuiltOS()
    manager, _ = _storage(tmp_path, runner)
    found = manager._plan_pool()
    assert len(found) == 1 and found[0].what.startswith("import pool datapool: found")
    assert not runner.imported  # planning only looked (`zpool import` lists, changes nothing)
    found[0].apply()
    assert [c.argv for c in runner.calls if c.argv[:2] == ("zpool", "import")][-1] == (
        "zpool", "import", "-N", "datapool")  # by name, not forced, nothing mounted by zpool
    actions = manager._plan_datasets()
    assert not [a for a in actions if a.what.startswith("create")]  # nothing created over the data
    for action in actions:
        action.apply()
    assert runner.mounted[0] == "datapool/services" and len(runner.mounted) == len(manager.kept) > 1
    assert manager.kept[0] == "datapool/services"


def test_a_pool_last_used_by_another_system_is_not_forced_in_and_the_error_says_how(tmp_path):
    runner = _RebuiltOS(" status: The pool was last accessed by another system.\n")
    manager, _ = _storage(tmp_path, runner)
    with pytest.raises(ValidationError, match=r"another system.*FORCE_IMPORT=1.*Nothing was changed"):
        manager._plan_pool()
    assert not runner.imported


def test_a_pool_neither_imported_nor_on_any_disk_is_named_before_anything_changes(tmp_path):
    manager, _ = _storage(tmp_path, FakeRunner({("zfs", "list"): Result_(1), ("zpool", "import"): Result_(1)}))
    with pytest.raises(ValidationError, match=r"pool datapool .*not imported and no disk.*setup-pool"):
        manager.setup()


def Result_(code: int):  # noqa: N802 - a Result answer for FakeRunner
    from management.runner import Result

    return Result((), code, "", "no pools available to import\n" if code else "")


def test_force_import_takes_a_pool_another_system_used_last(tmp_path):
    runner = _RebuiltOS(" status: The pool was last accessed by another system.\n")
    manager, _ = _storage(tmp_path, runner)
    found = manager._plan_pool(force_import=True)
    assert "forced" in found[0].what
    found[0].apply()
    assert runner.calls[-1].argv == ("zpool", "import", "-N", "-f", "datapool")
