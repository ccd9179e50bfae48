"""Whole-service restore and restore drills: the tree comparison, the stack manifest, the
archive layout, the restore's all-or-nothing promise and the drill's results, with fakes."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from management.borg_manager import STACK_PREFIX, extract_argv
from management.drill_manager import drill_prometheus_text, drill_textfile
from management.errors import CommandError
from management.lock import LockHeld, RunLock
from management.restore_manager import RestoreOrchestrator, latest_archive
from management.schedule import render_cron
from management.trees import (
    compare_trees,
    copy_tree_argv,
    manifest_differences,
    manifest_key,
    stack_manifest,
    tree_manifest,
)
from tests.fakes import FakeRunner
from tests.unit.test_config import BASE, settings_with


def make_tree(root: Path) -> None:
    (root / "d" / "empty").mkdir(parents=True)
    (root / "d" / "a.txt").write_text("alpha")
    (root / "b.bin").write_bytes(b"\0" * 1000)
    os.link(root / "b.bin", root / "b.hardlink")
    os.symlink("d/a.txt", root / "link")
    (root / "d" / "a.txt").chmod(0o640)


@pytest.fixture
def twins(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for root in (a, b):
        root.mkdir()
        make_tree(root)
    return a, b


def test_identical_trees_compare_equal_with_entries_and_bytes(twins):
    a, b = twins
    result = compare_trees(a, b)
    assert result.ok, result.differences
    assert result.entries == 7  # ., b.bin, b.hardlink, d, d/a.txt, d/empty, link
    assert result.bytes == 1000 + 1000 + 5


@pytest.mark.parametrize("damage, expected", [
    (lambda b: (b / "d" / "a.txt").write_text("alphA"), "d/a.txt: content"),
    (lambda b: (b / "d" / "a.txt").write_text("alpha!"), "d/a.txt: size 5 != 6"),
    (lambda b: (b / "d" / "a.txt").chmod(0o644), "d/a.txt: mode 640 != 644"),
    (lambda b: (b / "d" / "empty").rmdir(), "d/empty: missing"),
    (lambda b: (b / "extra").write_text("x"), "extra: not in the snapshot"),
    (lambda b: ((b / "link").unlink(), os.symlink("b.bin", b / "link")), "link: symlink target"),
    (lambda b: ((b / "link").unlink(), (b / "link").write_text("x")), "link: symlink became file"),
    (lambda b: ((b / "b.hardlink").unlink(), (b / "b.hardlink").write_bytes(b"\0" * 1000)),
     "b.bin: hard links to b.hardlink were not kept"),
])
def test_each_kind_of_difference_is_found_and_named(twins, damage, expected):
    a, b = twins
    damage(b)
    result = compare_trees(a, b)
    assert not result.ok
    assert expected in result.differences, result.differences


def test_owner_differences_are_found(twins):
    if os.geteuid() != 0:
        pytest.skip("chown needs root")  # CI runs as root: tests/conftest.py fails skips there
    a, b = twins
    os.chown(b / "d" / "a.txt", 100999, 100999)
    assert "d/a.txt: owner 0:0 != 100999:100999" in compare_trees(a, b).differences


def test_the_stack_prefix_in_the_archive_is_left_out_of_the_data_comparison(twins):
    a, b = twins
    (b / STACK_PREFIX).mkdir()
    (b / STACK_PREFIX / "compose.yaml").write_text("services: {}")
    assert compare_trees(a, b, frozenset({STACK_PREFIX})).ok
    assert not compare_trees(a, b).ok


def test_stack_manifest_is_keyed_and_names_what_differs(tmp_path):
    stack = tmp_path / "stack"
    stack.mkdir()
    (stack / ".env").write_text("DB_PASSWORD=hunter2\n")
    (stack / ".env").chmod(0o600)
    key = manifest_key(tmp_path / "state")
    assert (tmp_path / "state" / "manifest.key").stat().st_mode & 0o777 == 0o600
    assert manifest_key(tmp_path / "state") == key  # made once
    before = stack_manifest(stack, key)
    assert "hunter2" not in repr(before)
    assert stack_manifest(stack, b"another key") != before  # the hash depends on the key
    (stack / ".env").write_text("DB_PASSWORD=hunter3\n")
    assert manifest_differences(before, stack_manifest(stack, key)) == [".env: content differ"]
    (stack / ".env").chmod(0o644)
    (stack / "new").write_text("x")
    diffs = manifest_differences(before, stack_manifest(stack, key))
    assert ".env: mode, content differ" in diffs and "new: not in the original" in diffs
    os.utime(stack / ".env", (1, 1))  # a touch alone is no difference
    assert manifest_differences(stack_manifest(stack, key), stack_manifest(stack, key)) == []


def test_tree_manifest_leaves_the_stack_copy_out(tmp_path):
    (tmp_path / "f").write_text("x")
    old = time.time() + 10
    digest, _ = tree_manifest(tmp_path, old, frozenset({STACK_PREFIX}))
    (tmp_path / STACK_PREFIX).mkdir()
    (tmp_path / STACK_PREFIX / "compose.yaml").write_text("y")
    assert tree_manifest(tmp_path, old, frozenset({STACK_PREFIX}))[0] == digest
    assert tree_manifest(tmp_path, old)[0] != digest


def test_argv_for_the_archive_layout():
    assert copy_tree_argv(Path("/srv/git"), Path("/v/git/.orchestrator-stack")) == \
        ["cp", "-a", "--", "/srv/git/.", "/v/git/.orchestrator-stack"]
    assert extract_argv("/r/git", "git-1", (STACK_PREFIX,)) == \
        ["borg", "extract", "--numeric-ids", "/r/git::git-1", STACK_PREFIX]
    assert extract_argv("/r/git", "git-1", excludes=(STACK_PREFIX,)) == \
        ["borg", "extract", "--numeric-ids", f"--exclude=pp:{STACK_PREFIX}", "/r/git::git-1"]


def test_latest_archive_is_the_services_own_newest():
    archives = [{"name": "git-2026-01-02T03:30:00Z", "time": "2026-01-02T03:30:01"},
                {"name": "git-2026-01-03T03:30:00Z", "time": "2026-01-03T03:30:01"},
                {"name": "gitea-2026-01-04T03:30:00Z", "time": "2026-01-04T03:30:01"}]
    assert latest_archive(archives, "git") == "git-2026-01-03T03:30:00Z"
    assert latest_archive([], "git") is None


def test_drill_metrics_keep_the_last_success_of_a_failed_drill():
    text = drill_prometheus_text({"git": {"time": 200.0, "ok": False, "last_success": 100.0, "differences": 3,
                                          "entries": 70, "bytes": 5}})
    assert 'orchestrator_drill_success{service="git"} 0' in text
    assert 'orchestrator_drill_last_success_timestamp_seconds{service="git"} 100.0' in text
    assert 'orchestrator_drill_differences{service="git"} 3' in text
    assert drill_textfile(Path("/t/orchestrator.prom")) == Path("/t/orchestrator_drill.prom")


def test_cron_has_the_weekly_drill_waiting_for_a_running_backup_and_none_when_off():
    args = ("30 3 * * *", Path("/v/bin/python"), Path("/m/orchestrator.py"), Path("/m/.env"), Path("/var/log/o.log"))
    cron = render_cron(*args, drill_schedule="0 5 * * 0", drill_wait=21600)
    assert "0 5 * * 0 root /v/bin/python /m/orchestrator.py --env-file /m/.env drill --wait 21600 >>" in cron
    assert "drill" not in render_cron(*args, drill_schedule="")


def test_drill_schedule_defaults_to_weekly_and_can_be_switched_off(tmp_path):
    assert settings_with(tmp_path).drill_schedule == "0 5 * * 0"
    assert settings_with(tmp_path, "DRILL_SCHEDULE=off\n").drill_schedule == ""


def test_run_lock_waits_for_the_holder_when_asked(tmp_path):
    path = tmp_path / "lock"
    holder = RunLock(path, "backup").__enter__()
    with pytest.raises(LockHeld):
        RunLock(path, "drill").__enter__()
    threading.Timer(0.5, holder.__exit__).start()
    with RunLock(path, "drill", wait=30):
        pass


# -- restore with fakes --------------------------------------------------------------------


class Fakes:
    """zfs + docker + borg for a restore: borg 'extracts' by writing files."""

    def __init__(self, settings, fail_stack=False):
        self.s = settings
        self.events = []
        self.fail_stack = fail_stack
        self.mountpoint = settings.mountpoint("git")

    # zfs
    def is_mounted(self, dataset):
        return True

    def snapshot(self, dataset, name, recursive=True):
        self.events.append(("snapshot", name))

    def rollback(self, dataset, name):
        self.events.append(("rollback", name))

    # docker
    def discover_names(self):
        return ["git"]

    def running_stacks(self):
        return ["git"]

    def stop(self, names):
        self.events.append(("stop", tuple(names)))
        return [type("R", (), {"ok": True, "stack": n, "message": ""})() for n in names]

    def up(self, names):
        self.events.append(("up", tuple(names)))
        return [type("R", (), {"ok": True, "stack": n, "message": ""})() for n in names]

    def forget(self, names):
        pass

    # borg
    def list_archives(self, service):
        return [{"name": "git-1", "time": "2026"}]

    def extract(self, service, archive, destination, *, force=False, paths=(), excludes=(), progress=None):
        destination.mkdir(parents=True, exist_ok=True)
        if paths == (STACK_PREFIX,):
            if self.fail_stack:
                raise CommandError("borg extract", 2, "Connection closed by remote host")
            (destination / STACK_PREFIX).mkdir()
            (destination / STACK_PREFIX / "compose.yaml").write_text("restored")
        else:
            (destination / "data.txt").write_text("restored data")
        return True


@pytest.fixture
def restore_settings(tmp_path):
    base = BASE.replace("/home/runner/services", f"{tmp_path}/services").replace(
        "ZFS_BASE_MOUNTPOINT=/datapool/services", f"ZFS_BASE_MOUNTPOINT={tmp_path}/pool")
    return settings_with(tmp_path, f"LOCK_FILE={tmp_path}/lock\nSTATE_DIR={tmp_path}/state\n", base=base)


def prepare(settings):
    folder = settings.services_dir / "git"
    folder.mkdir(parents=True)
    (folder / "compose.yaml").write_text("today")
    settings.mountpoint("git").mkdir(parents=True)
    (settings.mountpoint("git") / "data.txt").write_text("today's data")
    return folder


def test_restore_swaps_data_and_folder_keeps_the_old_folder_aside_and_starts_the_stack(restore_settings):
    s = restore_settings
    folder = prepare(s)
    fakes = Fakes(s)
    done = RestoreOrchestrator(s, FakeRunner(), fakes, fakes, fakes, echo=lambda _: None).restore("git", "git-1")
    assert (folder / "compose.yaml").read_text() == "restored"
    assert (s.mountpoint("git") / "data.txt").read_text() == "restored data"
    assert Path(done.stack_aside).name.startswith(".git.before-restore-")
    assert (Path(done.stack_aside) / "compose.yaml").read_text() == "today"
    assert [e[0] for e in fakes.events] == ["stop", "snapshot", "up"]
    assert not [p for p in s.services_dir.iterdir() if ".restore-" in p.name]


def test_a_failure_in_the_stack_half_rolls_the_data_back_and_keeps_the_folder(restore_settings):
    s = restore_settings
    folder = prepare(s)
    fakes = Fakes(s, fail_stack=True)
    with pytest.raises(CommandError):
        RestoreOrchestrator(s, FakeRunner(), fakes, fakes, fakes, echo=lambda _: None).restore("git", "git-1")
    assert (folder / "compose.yaml").read_text() == "today"
    assert [e[0] for e in fakes.events] == ["stop", "snapshot", "rollback", "up"]
    assert sorted(p.name for p in s.services_dir.iterdir()) == ["git"]  # no staging, nothing aside


def test_only_stack_touches_no_dataset(restore_settings):
    s = restore_settings
    folder = prepare(s)
    fakes = Fakes(s)
    RestoreOrchestrator(s, FakeRunner(), fakes, fakes, fakes, echo=lambda _: None).restore("git", "git-1", only="stack")
    assert (folder / "compose.yaml").read_text() == "restored"
    assert (s.mountpoint("git") / "data.txt").read_text() == "today's data"
    assert "snapshot" not in [e[0] for e in fakes.events]
