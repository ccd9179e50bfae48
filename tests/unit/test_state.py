"""StateStore: every file under STATE_DIR, one load/save each, written atomically."""

from __future__ import annotations

import json

import pytest

from management.state import (
    ARCHIVES,
    KEPT,
    LAST_SUCCESS,
    ArchiveCount,
    DrillRecord,
    Kept,
    Night,
    PruneHold,
    StateStore,
    UpdatePoint,
    UpdateRecord,
    write_atomic,
)


def test_write_atomic_replaces_whole_file(tmp_path):
    path = tmp_path / "x.prom"
    write_atomic(path, "one\n")
    write_atomic(path, "two\n")
    assert path.read_text() == "two\n"
    assert [p.name for p in tmp_path.iterdir()] == ["x.prom"]


def test_a_write_that_fails_leaves_the_old_file_and_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "x.json"
    write_atomic(path, "old")

    def boom(*_a, **_k):
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", boom)
    try:
        write_atomic(path, "new")
    except OSError:
        pass
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_nothing_written_yet_reads_as_empty(tmp_path):
    store = StateStore(tmp_path / "state")
    assert store.last_success() == {} and store.kept() == {} and store.drills() == {}
    assert store.archive_counts() == {} and store.last_update() == {} and store.update_points("git") == []
    assert store.update_point("git", "pre-update-20330101T000000Z") is None


def test_a_damaged_file_reads_as_empty_instead_of_failing_the_run(tmp_path):
    (tmp_path / LAST_SUCCESS).write_text("{not json")
    (tmp_path / KEPT).write_text("[1, 2]")
    store = StateStore(tmp_path)
    assert store.last_success() == {} and store.kept() == {}
    assert store.damaged() == [LAST_SUCCESS, KEPT]  # and named, so the night can say so
    assert StateStore(tmp_path / "none").damaged() == []  # missing is not damaged
    # one file asked alone (the history's and the holds' own checks read only their own file)
    assert store.unreadable(KEPT) and not store.unreadable(ARCHIVES)


def test_each_file_round_trips(tmp_path):
    store = StateStore(tmp_path)
    store.save_last_success({"git": 10.0})
    store.save_archive_counts({"git": ArchiveCount(3, 10.0)})
    store.save_kept({"git": Kept("s1", "git-1", "m", None)})
    (tmp_path / KEPT).write_text((tmp_path / KEPT).read_text()[:-1] + ', "bad": {"archive": "no snapshot name"}}')
    store.save_last_compact({"git": 5.0})
    store.save_drills({"git": DrillRecord(5.0, True)})
    store.save_last_update({"web": UpdateRecord(1.0, "updated")})
    assert store.last_success() == {"git": 10.0}
    assert store.archive_counts() == {"git": ArchiveCount(3, 10.0)}
    assert list(store.kept()) == ["git"]  # an entry without a snapshot name is not a kept snapshot
    assert store.last_compact() == {"git": 5.0}
    assert store.drills() == {"git": DrillRecord(5.0, True)} and store.last_update()["web"].result == "updated"
    assert store.forget_kept() and store.kept() == {} and not store.forget_kept()


def test_update_points_are_private_files_listed_oldest_first(tmp_path):
    store = StateStore(tmp_path)
    for snap in ("pre-update-20330102T000000Z", "pre-update-20330101T000000Z"):
        store.save_update_point("web", snap, UpdatePoint("pool/web", {}))
    (store.update_dir("web") / "notes.json").write_text("{}")  # not a pre-update point
    assert store.update_points("web") == ["pre-update-20330101T000000Z", "pre-update-20330102T000000Z"]
    path = store.update_point_path("web", "pre-update-20330101T000000Z")
    assert path.stat().st_mode & 0o777 == 0o600 and json.loads(path.read_text())["dataset"] == "pool/web"
    store.remove_update_point("web", "pre-update-20330101T000000Z")
    assert store.update_points("web") == ["pre-update-20330102T000000Z"]


def test_the_manifest_key_is_made_once_and_private(tmp_path):
    store = StateStore(tmp_path / "state")
    key = store.manifest_key()
    assert len(key) == 32 and store.manifest_key() == key
    assert (tmp_path / "state" / "manifest.key").stat().st_mode & 0o777 == 0o600


def test_nights_keep_the_last_thirty_runs_per_service_oldest_first(tmp_path):
    from management.state import NIGHTS, NIGHTS_KEPT
    store = StateStore(tmp_path)
    assert store.nights() == {}
    for i in range(NIGHTS_KEPT + 5):
        store.add_nights({"git": Night(float(i), bytes=i)})
    store.add_nights({"photo": Night(99.0)})
    nights = StateStore(tmp_path).nights()
    assert [n.time for n in nights["git"]] == [float(i) for i in range(5, NIGHTS_KEPT + 5)]
    assert nights["photo"] == [Night(99.0)]
    (tmp_path / NIGHTS).write_text('{"git": "x", "photo": [1, {"time": 1}]}')
    assert store.nights() == {"photo": [Night(1.0)]}
def test_releasing_a_prune_also_accepts_the_archives_that_vanished(tmp_path):
    store = StateStore(tmp_path)
    store.save_trusted_kept({"git": ["git-1", "git-2"], "photo": ["photo-1"]})
    store.save_prune_holds({"git": PruneHold("gone", 1.0, "git-3")})
    assert store.trusted_kept()["git"] == ["git-1", "git-2"]
    assert store.release_prune("git") == PruneHold("gone", 1.0, "git-3")
    assert store.trusted_kept() == {"photo": ["photo-1"]} and store.prune_holds() == {}


def test_summarize_history_counts_what_is_on_the_pool_oldest_first():
    from management.state import HistoryPoint, HistorySummary, summarize_history

    points = [HistoryPoint("s3", 900.0, "crash-consistent", None), HistoryPoint("s1", 100.0, "consistent", "a1"),
              HistoryPoint("gone", 50.0, "consistent", "a0"),
              HistoryPoint.from_json({"snapshot": "s2", "time": 500, "archive": "a2"})]  # no consistency: a nightly one
    h = summarize_history(points, {"s1": 10, "s2": 0, "s3": 5, "not-history": 99}, now=1000.0)
    assert (h.snapshots, h.bytes, h.oldest_age, h.newest_age, h.crash_consistent) == (3, 15, 900.0, 100.0, 1)
    assert [p["snapshot"] for p in h.points] == ["s1", "s2", "s3"]
    assert h.points[1] == {"snapshot": "s2", "time": 500.0, "age_seconds": 500.0, "consistency": "consistent",
                           "archive": "a2", "used": 0}
    assert summarize_history(points, {}, now=1000.0) == HistorySummary()


@pytest.mark.parametrize("name, text", [
    ("ARCHIVES", '{"git": {"count": 4, "time": 100.0, "files": null, "bytes": null, "archive": ""}, '
                 '"photo": {"count": 2, "time": 5}, "web": {"files": 3, "bytes": 9, "archive": "web-1"}}'),
    ("DRILLS", '{"git": {"time": 1.0, "ok": true, "mode": "files", "archive": "git-1", "entries": 3, "bytes": 10, '
               '"differences": 0, "message": "", "last_success": 1.0}}'),
    ("CHECKS", '{"git": {"time": 1.0, "ok": false, "mode": "full", "message": "x", "last_success": null}}'),
    ("LAST_UPDATE", '{"web": {"time": 1.0, "result": "updated", "message": ""}}'),
    ("REPOSITORIES", '{"git": {"fingerprint": "f", "repository": "r", "archives": ["git-1", "git-2"]}}'),
    ("HISTORY", '{"git": [{"snapshot": "s1", "time": 1.0, "consistency": "consistent", "archive": "git-1"}, '
                '{"snapshot": "s2", "time": 2.0, "consistency": "crash-consistent", "archive": null}]}'),
    ("NIGHTS", '{"git": [{"time": 1.0, "result": "ok", "bytes": 10, "deduplicated": 2, "files": 3, "duration": 1.5, '
               '"uncovered": 0, "changed": {"added": 1, "modified": 2, "deleted": null, "files": 3, "bytes": 2}}, '
               '{"time": 2.0, "result": "warning", "bytes": 10, "deduplicated": 0, "files": 3, "duration": 0.5, '
               '"uncovered": 1, "changed": {"added": 0, "modified": 3, "deleted": 0, "files": 3, "bytes": 0, '
               '"held": true}}, {"time": 3.0, "result": "failed", "bytes": null, "deduplicated": null, '
               '"files": null, "duration": 0.1, "uncovered": 0}]}'),
    ("ADOPTED", '{"photo": [{"service": "app", "target": "/data", "kind": "volume", "old": "photo_data", '
                '"new": "/datapool/services/photo/data", "time": 5.0}]}'),
    ("KEPT", '{"git": {"snapshot": "s1", "archive": "git-1", "manifest": "m", "stack": {"file a": "x"}, '
             '"repository": "r"}, "photo": {"snapshot": "s2", "archive": "p-1", "manifest": null, "stack": null, '
             '"repository": null}}'),
])
def test_a_typed_record_file_from_before_loads_and_is_written_back_the_same(tmp_path, name, text):
    import json

    from management import state

    path = tmp_path / getattr(state, name)
    path.write_text(text)
    store = StateStore(tmp_path)
    load, save = {"ARCHIVES": ("archive_counts", "save_archive_counts"), "DRILLS": ("drills", "save_drills"),
                  "CHECKS": ("checks", "save_checks"), "LAST_UPDATE": ("last_update", "save_last_update"),
                  "REPOSITORIES": ("repositories", "save_repositories"), "KEPT": ("kept", "save_kept"),
                  "ADOPTED": ("adopted", "save_adopted"),
                  "NIGHTS": ("nights", "add_nights"),
                  "HISTORY": ("history", "save_history")}[name]
    if name == "NIGHTS":
        store.add_nights({})  # the nights are only ever appended to: adding none writes them back
    else:
        getattr(store, save)(getattr(store, load)())
    assert json.loads(path.read_text()) == json.loads(text)


def test_a_failed_drill_or_check_keeps_when_it_last_passed(tmp_path):
    from management.state import CheckRecord

    store = StateStore(tmp_path)
    store.record_drills({"git": DrillRecord(10.0, True, last_success=10.0)})
    assert store.record_drills({"git": DrillRecord(20.0, False)})["git"].last_success == 10.0
    store.record_checks({"git": CheckRecord(10.0, True, last_success=10.0), "photo": CheckRecord(10.0, False)})
    checks = store.record_checks({"git": CheckRecord(20.0, False)})
    assert (checks["git"].last_success, checks["git"].time, checks["photo"].last_success) == (10.0, 20.0, None)


def test_an_update_point_from_before_loads_and_is_written_back_the_same(tmp_path):
    import json

    store = StateStore(tmp_path)
    text = ('{"dataset": "pool/web", "services": {"app": {"ref": "web:1", "old": "sha256:a", "new": "sha256:b", '
            '"keep": "orchestrator-rollback/web-app:1"}}}')
    path = store.update_point_path("web", "pre-update-20330101T000000Z")
    path.parent.mkdir(parents=True)
    path.write_text(text)
    point = store.update_point("web", "pre-update-20330101T000000Z")
    assert point.dataset == "pool/web" and point.services["app"]["keep"] == "orchestrator-rollback/web-app:1"
    store.save_update_point("web", "pre-update-20330101T000000Z", point)
    assert json.loads(path.read_text()) == json.loads(text)
