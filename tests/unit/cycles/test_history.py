"""Local history: borg prune's rules on snapshot times, and the night that keeps and thins."""

import time

import pytest

from management.cycles.context import RunContext
from management.cycles.history import History, consistency_of, thin, within_seconds
from tests.fakes import FakeRunner
from tests.unit.config.test_load import settings_with
from tests.unit.cycles.backup.world import World, orchestrator

DAY = 86400


def at(day: int, hour: int = 3) -> float:
    """Local time of 2026-11-<day> <hour>:30."""
    return time.mktime((2026, 11, day, hour, 30, 0, 0, 0, -1))


def test_daily_keeps_the_newest_of_each_of_the_last_n_days():
    points = [(f"d{d}h{h}", at(d, h)) for d in range(1, 11) for h in (3, 15)]
    kept = thin(points, {"daily": "7"}, at(10, 16))
    assert kept == {f"d{d}h15" for d in range(4, 11)}


def test_weekly_counts_periods_as_borg_does_and_the_oldest_fills_a_short_history():
    points = [(f"d{d}", at(d)) for d in range(1, 21)]  # 2026-11-01 is a Sunday: ISO weeks 44 to 47
    # daily: 20, 19. weekly: week 47's newest (20) is kept already, so that week counts no other
    # (borg's rule); then the newest of weeks 46, 45, 44; 3 < 10 weeks, and the oldest (1) is kept
    assert thin(points, {"daily": "2", "weekly": "10"}, at(20)) == {"d20", "d19", "d15", "d8", "d1"}
    assert thin(points, {"weekly": "2"}, at(20)) == {"d20", "d15"}


def test_within_keeps_everything_that_young_and_minus_one_keeps_every_period():
    points = [(f"h{h}", at(5, h)) for h in range(0, 24)]
    assert thin(points, {"within": "6H"}, at(5, 23)) == {f"h{h}" for h in range(17, 24)}
    assert thin(points, {"hourly": "-1"}, at(5, 23)) == {f"h{h}" for h in range(24)}
    assert within_seconds("2w") == 14 * DAY
    with pytest.raises(ValueError):
        within_seconds("2 weeks")


def test_an_empty_policy_keeps_nothing():
    assert thin([("a", at(1))], {}, at(2)) == set()


def test_consistency_follows_what_the_night_did_to_the_stack():
    assert consistency_of("git", [], []) == "consistent"
    assert consistency_of("git", ["git"], []) == "crash-consistent"
    assert consistency_of("git", [], ["git: stop failed: x; its dataset is in the snapshot as it was while "
                                      "running (crash-consistent)"]) == "crash-consistent"


@pytest.fixture
def history_settings(tmp_path):
    """The defaults (SNAPSHOT_RETENTION=daily=7), with a policy short enough to see thinning."""
    return settings_with(tmp_path, f"LOCK_FILE={tmp_path}/lock\nSTATE_DIR={tmp_path}/state\nHUB_SERVICE=reverseproxy\n"
                                   "SNAPSHOT_RETENTION=daily=2\n")


def nights(settings, world, days):
    """One night a day, 03:30 local, days apart: returns the last report."""
    report = None
    for day in days:
        orch = orchestrator(settings, world)
        orch.clock = lambda d=day: at(d)
        orch.history.clock = orch.clock
        report = orch.backup()
    return orch, report


def test_each_night_stays_as_history_and_retention_thins_only_ours(history_settings):
    world = World()
    world.snaps.add("datapool/services/git@mine")  # a user's own snapshot: never touched
    orch, report = nights(history_settings, world, [1, 2, 3, 4])
    assert report.ok, report
    git = sorted(s for s in world.snaps if s.startswith("datapool/services/git@orchestrator-"))
    assert len(git) == 2, git  # daily=2: nights 3 and 4
    assert "datapool/services/git@mine" in world.snaps
    history = orch.state.history()["git"]
    assert [p.snapshot for p in history] == [s.partition("@")[2] for s in git]
    assert all(p.consistency == "consistent" and p.archive.startswith("git-") for p in history)
    assert not any(s.startswith("datapool/services@") for s in world.snaps)  # not the parent's


def test_the_kept_snapshot_never_goes_even_when_the_policy_would_thin_it(history_settings):
    world = World()
    orch, _ = nights(history_settings, world, [1])
    night1 = orch.kept()["git"].snapshot
    world.fail[("create", "git")] = True  # git's archive stays the one of night 1
    orch, _ = nights(history_settings, world, [2, 3, 4])
    assert orch.kept()["git"].snapshot == night1
    assert f"datapool/services/git@{night1}" in world.snaps


def test_a_nearly_full_pool_loses_the_oldest_history_first_and_the_night_says_so(history_settings):
    world = World()
    nights(history_settings, world, [1])
    world.capacity = 95
    orch, report = nights(history_settings, world, [2])
    notes = [n for n in report.notes if "history:" in n]
    assert notes and "95" not in notes[0] and "90% full" in notes[0]
    kept = {f"datapool/services/{s}@{k.snapshot}" for s, k in orch.kept().items()}
    assert {s for s in world.snaps if "@orchestrator-" in s} == kept  # only what skip-unchanged needs


def test_leftover_cleanup_keeps_history_and_removes_only_unrecorded_ones_of_ours(history_settings):
    world = World()
    orch, _ = nights(history_settings, world, [1, 2])
    before = set(world.snaps)
    world.snaps.add("datapool/services/git@orchestrator-20200101T000000Z")
    removed = orchestrator(history_settings, world).cleanup_leftovers()
    assert removed == ["datapool/services/git@orchestrator-20200101T000000Z"]
    assert world.snaps == before


def test_a_scheduled_snapshot_is_crash_consistent_and_only_service_datasets_keep_it(history_settings):
    world = World()
    ctx = RunContext(history_settings, FakeRunner(), world, world, world, echo=lambda _: None, clock=lambda: at(5, 12))
    notes = History(ctx).snapshot_now("orchestrator-20261105T113000Z")
    assert notes == []
    assert sorted(world.snaps) == ["datapool/services/git@orchestrator-20261105T113000Z",
                                       "datapool/services/photo@orchestrator-20261105T113000Z"]
    points = ctx.state.history()
    assert points["git"][0].consistency == "crash-consistent" and points["git"][0].archive is None


def test_a_scheduled_snapshot_is_refused_when_history_is_off(tmp_path):
    s = settings_with(tmp_path, f"LOCK_FILE={tmp_path}/lock\nSTATE_DIR={tmp_path}/state\nSNAPSHOT_RETENTION=off\n")
    world = World()
    with pytest.raises(Exception, match="SNAPSHOT_RETENTION is off"):
        History(RunContext(s, FakeRunner(), world, world, world, echo=lambda _: None)).snapshot_now("orchestrator-x")
    assert world.snaps == set()


def test_history_switched_off_goes_at_the_next_night_but_the_kept_snapshot_stays(history_settings, tmp_path):
    world = World()
    nights(history_settings, world, [1, 2])
    off = settings_with(tmp_path, f"LOCK_FILE={tmp_path}/lock\nSTATE_DIR={tmp_path}/state\n"
                                  "HUB_SERVICE=reverseproxy\nSNAPSHOT_RETENTION=off\n")
    orch, report = nights(off, world, [3])
    assert report.ok, report
    kept = {f"datapool/services/{s}@{k.snapshot}" for s, k in orch.kept().items()}
    assert {s for s in world.snaps if "@orchestrator-" in s} == kept
    assert orch.state.history() == {}


def test_a_history_file_cut_short_is_rebuilt_from_the_pool_and_no_restore_point_is_lost(history_settings):
    """Noticed in the chaos campaign (a state file truncated): history.json read as empty, and
    the next night's leftover cleanup destroyed every local restore point as a leftover."""
    world = World()
    orch, _ = nights(history_settings, world, [1, 2])
    points = {s for s in world.snaps if "@orchestrator-" in s}
    recorded = {p.snapshot: p.time for p in orch.state.history()["git"]}
    path = orch.state.path("history.json")
    path.write_text(path.read_text()[:20])  # cut mid-write
    orch, report = nights(history_settings, world, [2])  # later that day: the policy thins nothing
    assert points <= world.snaps
    assert any("history.json does not parse" in n for n in report.notes), report.notes
    assert any("rebuilt from the pool" in n for n in report.notes), report.notes
    rebuilt = orch.state.history()["git"]
    assert {f"datapool/services/git@{p.snapshot}" for p in rebuilt} >= {s for s in points if "/git@" in s}
    # each point keeps the time it recorded (its name's clock, not the pool's creation time), so
    # retention thins the rebuilt history as it would have thinned the lost one (chaos, seed 37,
    # step 39: two nights made while the clock ran ahead were thinned as nights of the real day)
    assert {p.snapshot: p.time for p in rebuilt if p.snapshot in recorded} == recorded
    assert orch.state.damaged() == []


def test_a_whole_history_file_is_not_rebuilt(history_settings):
    world = World()
    orch, _ = nights(history_settings, world, [1])
    assert orch.history.recover() is None


def test_a_history_file_cut_during_the_night_loses_no_restore_point(history_settings):
    """Chaos, seed 1564430902, step 10: history.json truncated after the night had read it whole.
    The night's record read it as empty and wrote back only tonight's points; the earlier points'
    snapshots stayed on the pool, unrecorded, for the next night's cleanup to take as leftovers."""
    world = World()
    orch, _ = nights(history_settings, world, [1, 2])
    path = orch.state.path("history.json")
    create = world.create

    def cut_then_create(service, *args, **kwargs):  # mid-night: after the start, before the record
        path.write_text(path.read_text()[:20])
        return create(service, *args, **kwargs)

    world.create = cut_then_create
    orch, report = nights(history_settings, world, [3])
    assert report.ok, report
    for service in ("git", "photo"):
        ours = {s.partition("@")[2] for s in world.snaps if s.startswith(f"datapool/services/{service}@orchestrator-")}
        assert ours and {p.snapshot for p in orch.state.history()[service]} == ours, (service, ours)
    assert orch.state.damaged() == []
