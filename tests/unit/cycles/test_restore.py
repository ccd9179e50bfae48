"""Whole-service restore and restore drills: the tree comparison, the stack manifest, the
archive layout, the restore's all-or-nothing promise and the drill's results, with fakes."""
from __future__ import annotations

from pathlib import Path

import pytest

from management.cycles.context import RunContext
from management.cycles.restore import RestoreOrchestrator
from management.errors import CommandError
from management.tools.borg import STACK_PREFIX
from tests.fakes import FakeRunner
from tests.unit.config.test_load import BASE, settings_with


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

    def mounted_below(self, root):
        class Every(set):
            def __contains__(self, dataset):
                return True
        return Every()

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



def restorer(s, fakes):
    return RestoreOrchestrator(RunContext(s, FakeRunner(), fakes, fakes, fakes, echo=lambda _: None))


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
    done = restorer(s, fakes).restore("git", "git-1")
    assert (folder / "compose.yaml").read_text() == "restored"
    assert (s.mountpoint("git") / "data.txt").read_text() == "restored data"
    assert Path(done.stack_aside).name.startswith(".git.before-restore-")
    assert (Path(done.stack_aside) / "compose.yaml").read_text() == "today"
    assert [e[0] for e in fakes.events] == ["stop", "snapshot", "up"]
    assert not [p for p in s.services_dir.iterdir() if ".restore-" in p.name]



def test_a_restore_whose_stack_does_not_start_again_fails_and_says_how_to_undo(restore_settings):
    """Found by the chaos campaign (seed 37, step 94): the restored stack did not come up, the
    restore said "warning" and exited 0, and the service stayed down with nothing failing."""
    from management.errors import OrchestratorError

    s = restore_settings
    folder = prepare(s)
    fakes = Fakes(s)
    fakes.up = lambda names: [type("R", (), {"ok": False, "stack": n, "message": "not healthy after 60s"})()
                              for n in names]
    with pytest.raises(OrchestratorError, match="restored from git-1, but its stack did not start: not healthy"):
        restorer(s, fakes).restore("git", "git-1")
    assert (folder / "compose.yaml").read_text() == "restored"  # the restore itself stays, with its undo
    assert (s.mountpoint("git") / "data.txt").read_text() == "restored data"


def test_a_failure_in_the_stack_half_rolls_the_data_back_and_keeps_the_folder(restore_settings):
    s = restore_settings
    folder = prepare(s)
    fakes = Fakes(s, fail_stack=True)
    with pytest.raises(CommandError):
        restorer(s, fakes).restore("git", "git-1")
    assert (folder / "compose.yaml").read_text() == "today"
    assert [e[0] for e in fakes.events] == ["stop", "snapshot", "rollback", "up"]
    assert sorted(p.name for p in s.services_dir.iterdir()) == ["git"]  # no staging, nothing aside



def test_only_stack_touches_no_dataset(restore_settings):
    s = restore_settings
    folder = prepare(s)
    fakes = Fakes(s)
    restorer(s, fakes).restore("git", "git-1", only="stack")
    assert (folder / "compose.yaml").read_text() == "restored"
    assert (s.mountpoint("git") / "data.txt").read_text() == "today's data"
    assert "snapshot" not in [e[0] for e in fakes.events]

