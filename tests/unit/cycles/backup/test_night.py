"""The night's pure parts: names, orders, the mass-change arithmetic."""


import pytest

from management.cycles.backup import compact_due, snapshot_name, start_order, stop_order
from management.state import Night


def test_pure_helpers():
    assert snapshot_name("orchestrator", 0) == "orchestrator-19700101T000000Z"
    assert stop_order(["hub", "a", "b"], "hub") == ["a", "b", "hub"]
    assert start_order(["a", "hub"], "hub") == ["hub", "a"]
    assert compact_due(None, 7, 0) and compact_due(0, 0, 1) and not compact_due(0, 7, 86400)


def test_a_nights_changes_are_counted_from_what_borg_create_said():
    from management.cycles.backup import night_changes

    # 1,000 files before; borg listed 20 added and 30 modified; the archive holds 1,005 files, 5 of
    # them the stack folder's: 1,000 + 20 - 1,000 = 20 deleted
    assert night_changes(20, 30, 1005, 5, 1000, 4096) == {"added": 20, "modified": 30, "deleted": 20,
                                                           "files": 1000, "bytes": 4096}
    assert night_changes(1000, 0, 1000, 0, None, 1)["deleted"] is None  # the first night: nothing before
    assert night_changes(None, None, 10, 0, 10, 0) is None  # a dry run: borg said nothing
    assert night_changes(0, 0, 900, 0, 800, 0)["deleted"] == 0  # never negative (a count from an older tool)


def test_the_baseline_is_the_last_archive_and_the_guard_held_nights_do_not_raise_the_bar():
    from management.cycles.backup import change_baseline

    nights = [{"files": 10, "changed": {"modified": 5, "deleted": 1, "files": 10}},
              {"files": 10, "changed": {"modified": 900, "deleted": 0, "files": 10, "held": True}},
              {"files": 12, "changed": {"modified": 2, "deleted": None, "files": 11}},
              {"files": None, "result": "failed"}]
    assert change_baseline([Night.from_json(n) for n in nights]) == (11, [6, 2])
    assert change_baseline([Night(1.0, files=10)]) == (None, [])  # a night before this record existed
    assert change_baseline([]) == (None, [])


@pytest.mark.parametrize("changed, before, past, tripped", [
    ({"added": 0, "modified": 4812, "deleted": 0}, 5000, [], "mass change: 4,812 of 5,000 files modified"),
    ({"added": 31, "modified": 31, "deleted": 31}, 62, [], None),  # under the floor: 62 < 100
    ({"added": 0, "modified": 2400, "deleted": 200}, 5000, [], "2,400 of 5,000 files modified, 200 deleted"),
    ({"added": 0, "modified": 2000, "deleted": 0}, 5000, [], None),  # 40%: under 50%
    ({"added": 0, "modified": 1500, "deleted": 0}, 50000, [20, 140, 3], "over 10 times the most"),
    ({"added": 0, "modified": 1300, "deleted": 0}, 50000, [20, 140, 3], None),  # 10 x 140 = 1,400
    ({"added": 0, "modified": 900, "deleted": 0}, 50000, [0, 0], None),  # the bar is never under the floor
    ({"added": 2000, "modified": 0, "deleted": 0}, 5000, [0], None),  # an import of 2,000 photos
    ({"added": 0, "modified": 4812, "deleted": 0}, None, [], None),  # nothing known before, no history
])
def test_the_mass_change_guard_rule(changed, before, past, tripped):
    from management.cycles.backup import mass_change

    why = mass_change(changed, before, past, percent=50, factor=10, floor=100)
    assert (why is None) if tripped is None else (why is not None and tripped in why), why
    assert mass_change(changed, before, past, percent=0, factor=0, floor=100) is None  # both rules off


def test_the_guard_floor_and_its_rules_can_be_moved():
    from management.cycles.backup import mass_change

    changed = {"added": 31, "modified": 31, "deleted": 31}
    assert "mass change: 31 of 62 files modified, 31 deleted, 31 added (over 50% of its files)" == \
        mass_change(changed, 62, [], percent=50, factor=10, floor=10)
    assert mass_change(changed, 62, [], percent=100, factor=10, floor=10) is None


def test_restored_since_takes_only_restore_safety_snapshots_made_after_the_last_night():
    from management.cycles.backup import restored_since
    from management.tools.zfs import Snapshot
    snaps = [Snapshot("p/photo@restore-safety-20261101T000000Z", 100, 0),
             Snapshot("p/photo@orchestrator-20261102T000000Z", 300, 0),
             Snapshot("p/photo@restore-safety-20261103T000000Z-2", 500, 0)]
    assert restored_since(snaps, 400.5) == "restore-safety-20261103T000000Z-2"
    assert restored_since(snaps, 600) is None and restored_since(snaps, None) is None
    assert restored_since(snaps[:2], 200) is None  # a history snapshot is not a restore
