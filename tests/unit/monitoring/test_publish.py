import http.server
import threading

from management.monitoring.publish import push, push_url_for
from management.results import FAILED, OK, DatasetResult, RunReport


def report():
    r = RunReport(started_at=0.0, snapshot="datapool/services@orchestrator-x", downtime=3.25,
                  stopped_stacks=["git", "photo"], restarted_stacks=["git", "photo"])
    r.datasets = [
        DatasetResult("git", OK, "git-x", 12.5, 1500, 2_500_000, 1_000),
        DatasetResult("photo", FAILED, message="borg: repository does not exist\nmore"),
    ]
    return r



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

