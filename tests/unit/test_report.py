import http.server
import threading

from management.report import (
    FAILED,
    OK,
    DatasetResult,
    RunReport,
    human_size,
    prometheus_text,
    push,
    push_url_for,
    render_table,
    write_atomic,
)


def report():
    r = RunReport(started_at=0.0, snapshot="datapool/services@orchestrator-x", downtime=3.25,
                  stopped_stacks=["git", "photo"], restarted_stacks=["git", "photo"])
    r.datasets = [
        DatasetResult("git", OK, "git-x", 12.5, 1500, 2_500_000, 1_000),
        DatasetResult("photo", FAILED, message="borg: repository does not exist\nmore"),
    ]
    return r


def test_table_names_every_service_the_downtime_and_the_failed_one():
    text = render_table(report())
    assert "git" in text and "1500" in text and "2.5 MB" in text and "1.0 kB" in text
    assert "downtime: 3.2s" in text or "downtime: 3.3s" in text
    assert "result: FAILED (photo)" in text
    assert "more" not in text  # only the first line of a message goes in the table


def test_ok_requires_every_dataset_ok_and_no_stack_failure():
    r = report()
    assert not r.ok
    r.datasets.pop()
    assert r.ok
    r.stack_failures.append("git: start failed")
    assert not r.ok


def test_prometheus_text_keeps_last_success_of_a_failed_service():
    text = prometheus_text(report(), {"git": 100.0, "photo": 50.0})
    assert 'orchestrator_backup_success{service="photo"} 0' in text
    assert 'orchestrator_backup_last_success_timestamp_seconds{service="photo"} 50.0' in text
    assert 'orchestrator_backup_downtime_seconds{service="git"} 3.25' in text
    assert 'orchestrator_backup_files{service="photo"}' not in text  # unknown is left out


def test_human_size():
    assert (human_size(None), human_size(999), human_size(1_500_000_000)) == ("-", "999 B", "1.5 GB")


def test_write_atomic_replaces_whole_file(tmp_path):
    path = tmp_path / "x.prom"
    write_atomic(path, "one\n")
    write_atomic(path, "two\n")
    assert path.read_text() == "two\n"
    assert [p.name for p in tmp_path.iterdir()] == ["x.prom"]


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
