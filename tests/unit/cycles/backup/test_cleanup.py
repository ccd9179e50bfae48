"""What the night removes and what it keeps: views, snapshots, leftovers of a killed run."""



from management.state import StateStore
from tests.unit.config.test_load import settings_with
from tests.unit.cycles.backup.world import (
    World,
    mass_world,
    orchestrator,
    run_nights,
)


def test_leftovers_of_a_killed_run_are_removed_but_foreign_snapshots_kept(settings):
    world = World()
    world.snaps = {"datapool/services@orchestrator-20260101T000000Z", "datapool/services@manual-keep"}
    world.views = {"datapool/orchestrator-views/git"}
    orchestrator(settings, world).backup()
    assert world.snaps == {"datapool/services@manual-keep"}


def test_the_last_snapshot_is_kept_and_the_previous_destroyed_only_after_success(keeping):
    world = World()
    orch, first = run_nights(keeping, world, 1)
    assert first.ok
    kept = {s for s in world.snaps}
    assert {s.split("@")[0] for s in kept} == {"datapool/services/git", "datapool/services/photo"}  # not the parent
    night1 = orch.kept()["git"].snapshot
    # night 2: git's backup fails: git keeps night 1, photo moves on to night 2
    world.fail[("create", "git")] = True
    _, second = run_nights(keeping, world, 1)
    after = orch.kept()
    assert after["git"].snapshot == night1 and after["photo"].snapshot != night1
    assert f"datapool/services/git@{night1}" in world.snaps
    assert f"datapool/services/photo@{night1}" not in world.snaps
    assert len(world.snaps) == 2


def test_leftovers_never_include_a_kept_snapshot(keeping):
    world = World()
    orch, _ = run_nights(keeping, world, 1)
    kept = set(world.snaps)
    world.snaps |= {"datapool/services@orchestrator-20200101T000000Z",
                        "datapool/services/git@orchestrator-20200101T000000Z", "datapool/services/git@mine"}
    removed = orch.cleanup_leftovers()
    assert sorted(removed) == ["datapool/services/git@orchestrator-20200101T000000Z",
                               "datapool/services@orchestrator-20200101T000000Z"]
    assert world.snaps == kept | {"datapool/services/git@mine"}


def test_a_killed_runs_stack_copies_are_removed_with_the_last_snapshot_kept(keeping):
    left = keeping.state_dir / "stack-copies" / "orchestrator-20330101T000000Z" / "git"
    left.mkdir(parents=True)
    orch = orchestrator(keeping, World())
    removed = orch.cleanup_leftovers()
    assert str(left.parent) in removed
    assert ("rm", "-rf", "--one-file-system", "--", str(left.parent)) in orch.runner.argvs


def test_the_snapshot_before_a_mass_change_is_kept_out_of_history_thinning(tmp_path):
    settings = settings_with(tmp_path, f"LOCK_FILE={tmp_path}/lock\nSTATE_DIR={tmp_path}/state\n"
                                       "HUB_SERVICE=reverseproxy\nSNAPSHOT_RETENTION=daily=1\n")
    state = StateStore(settings.state_dir)
    world = mass_world(settings)
    run_nights(settings, world, 1)
    world.changes["photo"] = {"nfiles": 1000, "added": 0, "modified": 2}
    run_nights(settings, world, 1)  # daily=1: only the newest night stays (and the kept one, the same)
    assert len([s for s in world.snaps if s.startswith("datapool/services/photo@")]) == 1
    before = state.kept()["photo"].snapshot
    world.changes["photo"] = {"nfiles": 1000, "added": 0, "modified": 990}
    _, night = run_nights(settings, world, 1)
    assert "photo" in night.mass_changes and night.mass_changes["photo"].snapshot == before
    for _ in range(2):  # later nights thin the history: the snapshot before stays
        world.changes["photo"] = {"nfiles": 1000, "added": 0, "modified": 1}
        run_nights(settings, world, 1)
        assert f"datapool/services/photo@{before}" in world.snaps
        assert before in {p.snapshot for p in state.history()["photo"]}
    state.release_prune("photo")
    run_nights(settings, world, 1)
    assert f"datapool/services/photo@{before}" not in world.snaps


def test_a_kept_record_broken_during_the_night_keeps_the_entries_it_started_with(keeping):
    """Found by the chaos campaign (seed 2026, step 65): kept_snapshots.json was cut while a night
    ran, the night read it again at its end as empty, and the entry of a dataset unchanged that
    night was lost with it (its snapshot left over). The night now writes back what it started from."""
    world = World()
    orch, _ = run_nights(keeping, world, 1)
    night1 = orch.kept()
    path = keeping.state_dir / "kept_snapshots.json"
    world.written = {"datapool/services/git": 0}  # git unchanged tonight: it keeps night 1's snapshot
    real_create = world.create

    def create(service, *args, **kwargs):
        path.write_text(path.read_text()[:20])  # broken while the night runs
        return real_create(service, *args, **kwargs)

    world.create = create
    _, report = run_nights(keeping, world, 1)
    after = StateStore(keeping.state_dir).kept()
    assert {d.service: d.result for d in report.datasets}["git"] == "unchanged"
    assert after["git"] == night1["git"] and after["photo"].snapshot != night1["photo"].snapshot
    assert f"datapool/services/git@{night1['git'].snapshot}" in world.snaps
