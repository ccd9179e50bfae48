"""The campaign's restore-points invariant, on made-up points: what retention drops, or what the
run says a nearly full pool needed, may go; anything else lost is a violation, also when the
history file that listed it was cut in half during the step."""

import calendar
import time

from management.cycles.history import snapshot_time
from tests.chaos.invariants import lost_points

DAILY = {"daily": "7"}


def point(day: int, hour: int) -> tuple[str, float]:
    at = calendar.timegm((2026, 12, day, hour, 0, 0, 0, 0, 0))
    return f"orchestrator-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(at))}", float(at)


def test_a_snapshot_name_gives_its_time():
    name, at = point(7, 3)
    assert snapshot_time("orchestrator", name) == at and snapshot_time("orchestrator", "orchestrator-x") is None
    assert snapshot_time("restore-safety", name) is None  # another prefix


def test_retention_may_drop_a_point_the_same_day_holds_a_newer_one_of():
    (old, t_old), (new, t_new), (yday, t_y) = point(7, 1), point(7, 3), point(6, 3)
    known = {yday: t_y, old: t_old}
    before, after = {yday, old}, {yday, new}
    assert lost_points(known, before, after, {yday: t_y, new: t_new}, DAILY, "", [t_new]) == []


def test_losing_every_point_is_a_violation_even_with_the_history_cut_short():
    (a, ta), (b, tb) = point(5, 3), point(6, 3)
    known = {a: ta, b: tb}
    # the old bug: history.json cut in half read as empty, the cleanup took every point
    assert lost_points(known, {a, b}, set(), None, DAILY, "", [tb]) == [a, b]
    assert lost_points(known, {a, b}, set(), {}, DAILY, "", [tb]) == [a, b]


def test_a_point_the_run_names_as_removed_for_a_full_pool_may_go():
    (a, ta), (b, tb) = point(5, 3), point(6, 3)
    said = f"history: the pool lab was 90% full or more; removed the oldest 1 history snapshot(s): lab/x@{a}"
    assert lost_points({a: ta, b: tb}, {a, b}, {b}, {b: tb}, DAILY, said, [tb]) == []
    assert lost_points({a: ta, b: tb}, {a, b}, {b}, {b: tb}, DAILY, "", [tb]) == [a]


def test_a_point_already_gone_before_the_step_is_not_this_steps_loss():
    (a, ta), (b, tb) = point(5, 3), point(6, 3)
    assert lost_points({a: ta, b: tb}, {b}, {b}, {b: tb}, DAILY, "", [tb]) == []
