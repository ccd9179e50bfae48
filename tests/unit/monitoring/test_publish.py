"""The one publish path: state -> Prometheus textfile -> push URL -> Apprise, the same for
every run kind; and the push URL styles."""

from __future__ import annotations

import http.server
import json
import threading

import pytest

from management.monitoring import publish as publish_module
from management.monitoring.publish import BackupOutcome, DrillOutcome, UpdateOutcome, publish, push, push_url_for
from management.results import (
    COMPARED,
    FAILED,
    OK,
    ROLLED_BACK,
    SKIPPED,
    UNCHANGED,
    DatasetResult,
    DrillReport,
    DrillResult,
    RunReport,
    UpdateResult,
)
from management.state import ArchiveCount, CheckRecord, HistoryPoint, Kept, RepositoryRecord, StateStore
from tests.unit.config.test_load import settings_with


def test_push_urls_healthchecks_and_uptime_kuma_styles():
    assert push_url_for("https://hc/ping/abc/", "start") == "https://hc/ping/abc/start"
    assert push_url_for("https://hc/ping/abc", "fail") == "https://hc/ping/abc/fail"
    assert push_url_for("https://hc/ping/abc", "success") == "https://hc/ping/abc"
    kuma = "https://kuma/api/push/tok?status=up&msg=OK"
    assert push_url_for(kuma, "fail") == "https://kuma/api/push/tok?status=down&msg=OK"
    assert push_url_for(kuma, "start") == ""


def test_push_reaches_a_local_server_and_failure_is_a_warning_without_the_url():
    seen = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.path)
            self.send_response(200)
            self.end_headers()

        do_POST = do_GET

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.handle_request, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}/ping/secret-token-123"
    assert push(base, "start") is None
    assert seen == ["/ping/secret-token-123/start"]
    server.server_close()
    warning = push(base, "fail", timeout=2)
    assert warning and "secret-token-123" not in warning


@pytest.fixture
def steps(tmp_path, monkeypatch):
    """Records the push and the notification, in order, after the state and textfile writes."""
    seen = []
    monkeypatch.setattr(publish_module, "push", lambda url, event, body="": seen.append(("push", url, event, body)))
    monkeypatch.setattr(publish_module, "notify", lambda s, message, mask, echo: seen.append(("notify", message)))
    settings = settings_with(tmp_path, f"STATE_DIR={tmp_path}/state\nPROMETHEUS_TEXTFILE={tmp_path}/m/o.prom\n"
                                       "PUSH_URL=https://hc/ping/backup\nUPDATE_PUSH_URL=https://hc/ping/update\n")
    return settings, StateStore(settings.state_dir), seen


def night() -> RunReport:
    return RunReport(started_at=0.0, datasets=[DatasetResult("git", OK, archives=4),
                                               DatasetResult("photo", FAILED, message="borg: down")])


def test_a_backup_records_state_then_writes_metrics_then_pushes_then_notifies(steps):
    settings, store, seen = steps
    store.save_last_success({"photo": 50.0})
    publish(BackupOutcome(night()), settings, store, lambda t: t.replace("down", "***"), print, now=100.0)
    assert store.last_success() == {"git": 100.0, "photo": 50.0}  # a failed night keeps the older success
    # the archive count, and what the prune guard compares the next archive with (a failed one is not recorded)
    assert store.archive_counts() == {"git": ArchiveCount(4, 100.0, None, None, "")}
    text = (settings.prometheus_textfile).read_text()
    assert 'orchestrator_backup_last_success_timestamp_seconds{service="photo"} 50.0' in text
    assert [s[0] for s in seen] == ["push", "notify"]
    _push, url, event, body = seen[0]
    assert (url, event) == ("https://hc/ping/backup", "fail") and "***" in body and "down" not in body
    assert not seen[1][1].ok


def test_a_backup_whose_state_cannot_be_written_is_not_ok(steps, tmp_path):
    settings, _store, seen = steps
    (tmp_path / "blocked").write_text("a file where the state folder should be")
    report = RunReport(started_at=0.0, datasets=[DatasetResult("git", OK)])
    publish(BackupOutcome(report), settings, StateStore(tmp_path / "blocked"), str, print, now=1.0)
    assert not report.ok and "could not write the backup state" in report.errors[0]
    assert seen[0][2] == "fail"  # the push already knows


def test_a_drill_and_an_update_take_the_same_path_with_their_own_file_and_url(steps):
    settings, store, seen = steps
    echoed = []
    drill = DrillReport([DrillResult("git", "git-1", "s", COMPARED, entries=1)], finished_at=7.0)
    publish(DrillOutcome(drill, str), settings, store, str, echoed.append, now=7.0)
    assert store.drills()["git"].last_success == 7.0
    assert (settings.prometheus_textfile.parent / "o_drill.prom").is_file()
    assert seen[0][1] is None  # the drill has no push URL of its own
    seen.clear()
    results = [UpdateResult("web", ROLLED_BACK, "unhealthy"), UpdateResult("db", SKIPPED)]
    publish(UpdateOutcome(results), settings, store, str, echoed.append, now=8.0)
    assert list(store.last_update()) == ["web"]  # a skipped stack is not recorded
    assert 'result="rolled_back"} 1' in (settings.prometheus_textfile.parent / "o_update.prom").read_text()
    assert seen[0][1:3] == ("https://hc/ping/update", "fail")
    assert json.loads(seen[0][3])[0]["stack"] == "web"
    assert echoed == []


def test_a_drill_whose_state_cannot_be_written_is_a_warning(steps, tmp_path):
    settings, _store, _seen = steps
    (tmp_path / "blocked").write_text("x")
    echoed = []
    drill = DrillReport([DrillResult("git", mode=COMPARED)], finished_at=1.0)
    publish(DrillOutcome(drill, str), settings, StateStore(tmp_path / "blocked"), str, echoed.append, now=1.0)
    assert echoed and echoed[0].startswith("warning: could not write the drill state")



def test_every_run_rewrites_the_verdicts_and_the_status_page_from_the_state(steps, tmp_path):
    settings, store, _seen = steps
    from tests.unit.config.test_load import BASE
    base = BASE.replace("BORG_REPO_BASE_PATH=/backup/repos", "BORG_REPO_BASE_PATH=ssh://borg@backup:22/repos")
    settings = settings_with(tmp_path, f"STATE_DIR={tmp_path}/state\nPROMETHEUS_TEXTFILE={tmp_path}/m/o.prom\n"
                                       f"STATUS_PAGE_DIR={tmp_path}/www\n", base=base)
    asked = []

    def pool():
        asked.append(1)
        return "ONLINE", True

    store.save_checks({"git": CheckRecord(90.0, True), "photo": CheckRecord(90.0, True)})
    report = RunReport(started_at=0.0, datasets=[DatasetResult("git", OK, duration=3.5, original_size=2048,
                                                               archives=2), DatasetResult("photo", OK)],
                       uncovered={"photo": ["a volume"]})
    publish(BackupOutcome(report), settings, store, str, print, now=100.0, pool_health=pool)
    assert [n.to_json() for n in store.nights()["git"]] == [{"time": 100.0, "result": OK, "bytes": 2048,
                                                          "deduplicated": None, "files": None, "duration": 3.5,
                                                          "uncovered": 0}]
    verdicts = (settings.prometheus_textfile.parent / "o_verdict.prom").read_text()
    assert 'orchestrator_service_protected{service="git"} 0' in verdicts  # never drilled yet
    assert 'orchestrator_service_risk{service="git",reason="never_drilled"} 1' in verdicts
    assert 'orchestrator_service_risk{service="photo",reason="uncovered"} 1' in verdicts
    publish(DrillOutcome(DrillReport([DrillResult("git", "git-1", "s", COMPARED)], finished_at=110.0), str),
            settings, store, str, print, now=110.0, pool_health=pool)
    verdicts = (settings.prometheus_textfile.parent / "o_verdict.prom").read_text()
    assert 'orchestrator_service_protected{service="git"} 1' in verdicts
    assert 'orchestrator_service_risk{service="photo",reason="uncovered"} 1' in verdicts  # the last night's
    page = (tmp_path / "www" / "index.html").read_text()
    assert page.count('<tr class="service">') == len(settings.services)
    assert "PROTECTED" in page and "1 mount(s) no backup reaches" in page
    assert [p.name for p in (tmp_path / "www").iterdir()] == ["index.html"]  # no temp file left
    assert len(asked) == 2


def test_without_textfile_or_page_no_verdict_is_worked_out_and_no_pool_asked(tmp_path):
    settings = settings_with(tmp_path, f"STATE_DIR={tmp_path}/state\n")
    store = StateStore(settings.state_dir)
    publish_module.publish_verdicts(settings, store, 1.0, lambda: pytest.fail("zpool asked"))
    assert not (tmp_path / "www").exists()


def test_an_unchanged_night_charts_the_size_of_the_archive_that_holds_it(steps):
    settings, store, _seen = steps
    first = RunReport(started_at=0.0, datasets=[DatasetResult("git", OK, duration=9.0, original_size=500, nfiles=7)])
    publish(BackupOutcome(first), settings, store, str, print, now=1.0)
    second = RunReport(started_at=0.0, datasets=[DatasetResult("git", UNCHANGED, duration=0.2),
                                                  DatasetResult("photo", SKIPPED)])
    publish(BackupOutcome(second), settings, store, str, print, now=2.0)
    nights = store.nights()
    assert list(nights) == ["git"]  # a skipped service has no night
    assert [(n.bytes, n.files, n.duration, n.deduplicated) for n in nights["git"]] == [
        (500, 7, 9.0, None), (500, 7, 0.2, 0)]


def test_restore_points_are_what_the_state_recorded_newest_archives_last(tmp_path):
    store = StateStore(tmp_path / "state")
    store.save_history({"git": [HistoryPoint("s2", 900.0, "crash-consistent", None),
                                HistoryPoint("s1", 100.0, "consistent", "git-2033-05-10T03:30:00Z")]})
    store.save_repositories({"git": RepositoryRecord("f", "r", tuple(
        f"git-2033-05-0{d}T03:30:00Z" for d in range(1, 9)))})
    store.save_kept({"git": Kept("s1", "git-2033-05-11T03:30:00Z")})
    points = publish_module.restore_points(store, ["git", "photo"], now=1000.0)
    snaps, names = points["git"]
    assert snaps == [{"snapshot": "s1", "consistency": "consistent", "archive": "git-2033-05-10T03:30:00Z",
                      "age_seconds": 900.0},
                     {"snapshot": "s2", "consistency": "crash-consistent", "archive": None, "age_seconds": 100.0}]
    # the last listing, the history's archives and the kept one, the newest ARCHIVES_SHOWN (5)
    assert names == [f"git-2033-05-{d}T03:30:00Z" for d in ("06", "07", "08", "10", "11")]
    assert points["photo"] == ([], [])


def test_a_night_reads_the_nights_before_once_however_many_services(tmp_path):
    """nights.json holds NIGHTS_KEPT nights of every service (3,000 at 100 stacks): a night's
    record reads it a fixed number of times, not once per service (issue 38)."""
    class Counting(StateStore):
        reads = 0

        def nights(self):
            Counting.reads += 1
            return super().nights()

    store = Counting(tmp_path / "state")
    services = [f"s{i:02d}" for i in range(20)]
    report = RunReport(started_at=0.0, datasets=[DatasetResult(s, OK, archives=1, nfiles=3) for s in services])
    BackupOutcome(report).record(store, 1.0)
    assert Counting.reads <= 2  # the nights before, and add_nights' own read
    assert sorted(store.nights()) == services
