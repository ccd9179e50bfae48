"""DrillOrchestrator with fakes: it compares the extracted archive with the kept snapshot, falls
back to a verified extract when that snapshot is gone, fails a service alone, and publishes the
result through the one publish path (state, textfile)."""

from __future__ import annotations

import shutil

import pytest

from management.cycles.context import RunContext
from management.cycles.drill import DrillOrchestrator
from management.results import COMPARED, FAILED, VERIFIED
from management.state import Kept, StateStore
from tests.fakes import FakeRunner
from tests.unit.config.test_load import BASE, settings_with


class World:
    """zfs + borg: the 'snapshot' of each service is a folder; borg extracts the 'archive' folder."""

    def __init__(self, tmp_path):
        self.snapshots = tmp_path / "snapshots"
        self.archives = tmp_path / "archives"
        self.checked = []
        self.views = {}
        self.cleared = []  # view parents clear_leftovers was asked to clear

    def tree(self, root, service, text):
        (root / service / "data").mkdir(parents=True, exist_ok=True)
        (root / service / "data" / "file.txt").write_text(text)

    # zfs
    def pool_status(self, pool):
        from management.tools.zfs import PoolStatus, Vdev
        return PoolStatus(pool, "ONLINE", vdevs=(Vdev(pool, 0, "ONLINE"), Vdev("mirror-0", 1, "ONLINE")))

    def list_views(self, parent):
        return []

    def list_scratch(self, parent):
        return []

    def clear_leftovers(self, parent):
        self.cleared.append(parent)
        return []

    def ensure_view_parent(self, parent):
        pass

    def exists(self, name):
        return (self.snapshots / name.split("@")[0].rsplit("/", 1)[1]).is_dir()

    def create_view(self, snapshot, view, path):
        service = snapshot.split("@")[0].rsplit("/", 1)[1]
        shutil.copytree(self.snapshots / service, path, symlinks=True)
        self.views[view] = path

    def destroy_view(self, view):
        shutil.rmtree(self.views.pop(view))

    # borg
    def list_archives(self, service):
        return [{"name": f"{service}-1", "time": "2033"}] if (self.archives / service).is_dir() else []

    def extract(self, service, archive, destination, *, force=False, progress=None):
        shutil.copytree(self.archives / service, destination, symlinks=True, dirs_exist_ok=True)

    def check(self, service, verify_data=False):
        self.checked.append((service, verify_data))


@pytest.fixture
def drill(tmp_path):
    extra = (f"LOCK_FILE={tmp_path}/lock\nSTATE_DIR={tmp_path}/state\nDRILL_DIR={tmp_path}/scratch\n"
             f"VIEW_MOUNTPOINT={tmp_path}/views\n"
             f"PROMETHEUS_TEXTFILE={tmp_path}/metrics/orchestrator.prom\n")
    settings = settings_with(tmp_path, extra, base=BASE.replace("ZFS_BASE_MOUNTPOINT=/datapool/services",
                                                                 f"ZFS_BASE_MOUNTPOINT={tmp_path}/pool"))
    world = World(tmp_path)
    ctx = RunContext(settings, FakeRunner(), world, None, world, echo=lambda _: None, clock=lambda: 1000.0)
    ctx.state.save_kept({s: Kept("orchestrator-1", f"{s}-1", "m", None)
                         for s in settings.services})
    return DrillOrchestrator(ctx), world, settings


def test_an_archive_equal_to_its_snapshot_passes_and_a_damaged_one_fails_alone(drill):
    orch, world, s = drill
    first, second = s.services[0], s.services[1]
    for service, archived in ((first, "same"), (second, "bit flipped")):
        world.tree(world.snapshots, service, "same")
        world.tree(world.archives, service, archived)
    report = orch.drill([first, second])
    by = {r.service: r for r in report.results}
    assert by[first].mode == COMPARED and by[first].ok and by[first].entries >= 3
    assert by[second].mode == FAILED and by[second].differences == 1
    assert "data/file.txt" in by[second].first_differences[0]
    assert not report.ok
    state = StateStore(s.state_dir).drills()
    assert state[first].ok and state[first].last_success == 1000.0
    assert not state[second].ok and state[second].last_success is None
    text = (s.prometheus_textfile.parent / "orchestrator_drill.prom").read_text()
    assert f'orchestrator_drill_success{{service="{second}"}} 0' in text
    assert list(s.drill_dir.iterdir()) == [] and world.views == {}  # scratch space and views are removed
    assert list(s.view_mountpoint.iterdir()) == []


def test_without_its_snapshot_the_archive_is_verified_and_extracted_instead(drill):
    orch, world, s = drill
    service = s.services[0]
    world.tree(world.archives, service, "data")  # no snapshot folder: the kept snapshot is gone
    [result] = orch.drill([service]).results
    assert result.mode == VERIFIED and result.ok and "no longer exists" in result.message
    assert world.checked == [(service, True)]


def test_a_service_with_no_archive_fails_with_the_repository_named(drill):
    orch, _world, s = drill
    [result] = orch.drill([s.services[0]]).results
    assert result.mode == FAILED and f"no archive in {s.repo(s.services[0])}" in result.message


def test_a_signal_during_a_drill_clears_every_scratch_below_the_view_parent(drill):
    """Found by the chaos campaign (seed 37, step 32): SIGTERM cut a scratch dataset's `zfs create`
    short after ZFS had made it; its step did not know it, and it was left. The interrupted drill
    now clears everything of ours below the view parent, as the next run would."""
    from management.lock import Interrupted

    orch, world, s = drill
    service = s.services[0]
    world.tree(world.snapshots, service, "same")
    world.tree(world.archives, service, "same")

    def interrupted(*args, **kwargs):
        raise Interrupted(15)

    world.extract = interrupted
    with pytest.raises(Interrupted):
        orch.drill([service])
    assert world.cleared == [s.view_dataset, s.view_dataset]  # at the start, and after the signal


def test_the_drill_takes_the_archive_the_last_night_made_over_one_dated_later(drill, monkeypatch):
    """Chaos campaign, seed 37: after a night made with the clock ahead, the drill took that
    archive (dated latest, older data) and could only verify it, not compare it."""
    orch, world, s = drill
    service = s.services[0]
    world.tree(world.snapshots, service, "same")
    world.tree(world.archives, service, "same")
    monkeypatch.setattr(world, "list_archives", lambda svc: [{"name": f"{svc}-ahead", "time": "2099"},
                                                             {"name": f"{svc}-1", "time": "2033"}])
    [result] = orch.drill([service]).results
    assert result.archive == f"{service}-1" and result.mode == COMPARED and result.ok
