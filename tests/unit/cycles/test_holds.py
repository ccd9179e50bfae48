import pytest

from management.cycles.holds import PruneHolds, clock_wait, prune_hold, stale_hold, vanished
from management.state import ArchiveCount, MassChange, PruneHold, StateStore
from management.tools.borg import Listing

BEFORE = ArchiveCount(files=100, bytes=10_000)  # the last night's archive


@pytest.mark.parametrize("previous, files, size, held", [
    (None, 10, 1000, None),
    (BEFORE, 90, 9_000, None),
    (BEFORE, 0, 0, "is empty; the one before held 100"),
    (BEFORE, 100, 4_000, "4000 bytes, 60% fewer"),
    (BEFORE, 40, 10_000, "40 files, 60% fewer"),
])
def test_the_prune_guard_holds_on_an_empty_or_shrunk_archive(previous, files, size, held):
    reason = prune_hold(previous, files, size, "git-2033-01-02T00:00:00Z", 50)
    assert (reason is None) if held is None else (held in reason), reason
    assert prune_hold(previous, files, size, "git-2033-01-02T00:00:00Z", 0) is None  # off


def test_prune_waits_for_the_clock_while_an_archive_is_dated_after_tonights():
    # a night made while the clock ran 5 h ahead: tonight's archive is the older one of its day,
    # and borg's keep-daily would drop it; the wait needs no person and lifts with the clock
    why = clock_wait("git-2033-01-01T12:00:00Z", "git-2033-01-01T17:00:00Z")
    assert why.startswith("prune waits: git-2033-01-01T17:00:00Z, already in the repository, is dated after")
    assert "release-prune" not in why
    assert clock_wait("git-2033-01-01T18:00:00Z", "git-2033-01-01T17:00:00Z") is None
    assert clock_wait("git-2033-01-01T18:00:00Z", None) is None


def test_a_stale_hold_names_a_replaced_repository_or_a_missing_archive():
    hold = PruneHold("shrank", 1.0, "git-2", "repo-1")
    assert stale_hold(hold, None) is None  # not listed: nothing known
    assert stale_hold(hold, Listing("repo-1", ("git-1", "git-2"))) is None
    assert "(replaced)" in stale_hold(hold, Listing("repo-2", ("git-2",)))
    assert "git-2, is no longer in the repository" in stale_hold(PruneHold("x", 1.0, "git-2"), Listing("r", ()))


def test_vanished_archives_name_the_first_three():
    assert vanished(["a", "b"], ["a", "b", "c"]) is None
    why = vanished(["a", "b", "c", "d", "e"], ["e"])
    assert why.startswith("4 archive(s) the last trusted prune kept are gone (a, b, c and 1 more)")


def test_the_first_hold_and_the_first_version_before_stay_until_released(tmp_path):
    store = StateStore(tmp_path)
    store.save_prune_holds({"git": PruneHold("shrank", 1.0, "git-2", "repo-1")})
    holds = PruneHolds(store)
    assert holds.reason("git") == "shrank" and holds.reason("photo") is None
    before = MassChange("mass change", "git-1", "s-1")
    kept = holds.hold("git", PruneHold("mass change", 2.0, "git-3", "repo-1", before))
    assert (kept.reason, kept.since, kept.mass_change) == ("shrank", 1.0, before)
    assert holds.hold("git", PruneHold("again", 3.0, "git-4", None, MassChange("later"))).mass_change == before
    assert holds.hold("photo", PruneHold("empty", 4.0, "photo-2")).reason == "empty"
    assert holds.drop_stale({"git": Listing("repo-2", ("git-2",))}) == {
        "git": "it was set on repository repo-1, and the repository is now repo-2 (replaced)"}
    holds.save()
    assert StateStore(tmp_path).prune_holds() == {"photo": PruneHold("empty", 4.0, "photo-2")}


def test_a_hold_file_from_before_loads_and_is_written_back_with_the_same_keys(tmp_path):
    from management.state import PRUNE_HOLDS

    old = ('{"git": {"reason": "gone", "since": 1.0, "archive": "git-3"}, "photo": {"reason": "m", "since": 2, '
           '"archive": "p-2", "repository": "r", "mass_change": {"text": "m", "archive": "p-1", "snapshot": "s"}}}')
    (tmp_path / PRUNE_HOLDS).write_text(old)
    store = StateStore(tmp_path)
    store.save_prune_holds(store.prune_holds())
    import json
    assert json.loads((tmp_path / PRUNE_HOLDS).read_text()) == json.loads(old)


def test_a_hold_file_cut_short_makes_every_prune_wait_and_is_not_overwritten(tmp_path):
    store = StateStore(tmp_path)
    store.path("prune_holds.json").write_text('{"git": {"reason": "mass ch')
    holds = PruneHolds(store)
    assert holds.wait().startswith("prune waits: ") and "remove it to lift every hold" in holds.wait()
    holds.hold("photo", PruneHold("x", 1.0, "photo-1", "r"))
    holds.save()
    assert store.path("prune_holds.json").read_text() == '{"git": {"reason": "mass ch'
    assert PruneHolds(StateStore(tmp_path / "fine")).wait() is None
