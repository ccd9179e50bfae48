"""Apprise notifications (a real json:// POST to a receiver on 127.0.0.1) and the progress
display: live on a terminal, a plain line every PROGRESS_INTERVAL otherwise."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

from management.monitoring.notify import Message, backup_message, notify, send, wanted
from management.results import FAILED, OK, UNCHANGED, DatasetResult, RunReport
from tests.unit.config.test_load import settings_with


class Receiver:
    """An HTTP server on 127.0.0.1 that keeps every JSON body posted to it."""

    def __init__(self, status: int = 200):
        self.bodies: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length", 0))
                outer.bodies.append(json.loads(self.rfile.read(length) or b"{}"))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()



def night(failed: bool) -> RunReport:
    report = RunReport(started_at=0.0, downtime=2.5)
    report.datasets = [DatasetResult("git", OK, "git-2026-11-24T03:30:00Z"),
                       DatasetResult("photo", FAILED if failed else UNCHANGED, "",
                                     message="repository ssh://u@h/photo is not usable: Permission denied"
                                     if failed else "nothing written since orchestrator-1")]
    return report



def test_the_message_names_each_service_with_its_result_and_why():
    message = backup_message(night(failed=True))
    assert not message.ok and message.title.endswith("FAILED (photo)")
    assert "git: ok (git-2026-11-24T03:30:00Z)" in message.body
    assert "photo: failed: repository ssh://u@h/photo is not usable: Permission denied" in message.body
    assert "downtime: 2.5s" in message.body
    ok = backup_message(night(failed=False))
    assert ok.ok and ok.title.endswith(": OK") and "photo: unchanged: nothing written" in ok.body



def test_notify_on_failure_only_by_default():
    assert wanted("failure", Message("t", "b", ok=False)) and not wanted("failure", Message("t", "b", ok=True))
    assert wanted("always", Message("t", "b", ok=True))



def test_a_json_receiver_gets_the_failed_night_with_secrets_masked():
    secret = "token-abcdef123456"
    with Receiver() as rx:
        message = Message("backup on vm: FAILED (photo)", f"photo: failed: passphrase {secret} rejected", ok=False)
        warning = send([f"json://127.0.0.1:{rx.port}/hook"], message, lambda t: t.replace(secret, "***"))
    assert warning is None
    assert len(rx.bodies) == 1
    body = rx.bodies[0]
    assert body["title"] == "backup on vm: FAILED (photo)" and "photo: failed" in body["message"]
    assert secret not in json.dumps(body) and body["type"] == "failure"



def test_a_notifier_that_fails_is_a_warning_without_its_url(tmp_path):
    with Receiver(status=500) as rx:
        url = f"json://127.0.0.1:{rx.port}/secret-path-token-9999"
        echoed: list[str] = []
        settings = settings_with(tmp_path, f"NOTIFY_URLS={url} not-a-url-but-ignored-here://x\n")
        notify(settings, Message("t", "b", ok=False), lambda t: t, echoed.append)
    assert len(echoed) == 1 and "failed for 2 of 2 NOTIFY_URLS" in echoed[0]
    assert "secret-path-token" not in echoed[0]

