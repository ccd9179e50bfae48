"""Apprise notifications (a real json:// POST to a receiver on 127.0.0.1) and the progress
display: live on a terminal, a plain line every PROGRESS_INTERVAL otherwise."""

from __future__ import annotations

import io
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from management.notify import Message, backup_message, notify, send, split_urls, wanted
from management.progress import Progress, elapsed_text, progress_line
from management.report import FAILED, OK, UNCHANGED, DatasetResult, RunReport
from tests.unit.test_config import problems, settings_with


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


def test_notify_urls_are_secrets_and_bad_ones_are_named_by_position_only(tmp_path):
    s = settings_with(tmp_path, "NOTIFY_URLS=ntfys://ntfy.sh/homelab-topic-7f3a, tgram://123456:ABCDEFGH/42\n")
    assert s.notify_urls == ("ntfys://ntfy.sh/homelab-topic-7f3a", "tgram://123456:ABCDEFGH/42")
    assert "tgram://123456:ABCDEFGH/42" in s.secrets and "homelab-topic-7f3a" in s.secrets
    assert s.notify_on == "failure"
    assert split_urls("a://1,b://2\n c://3") == ["a://1", "b://2", "c://3"]


def test_bad_notify_url_is_reported_without_echoing_it(tmp_path):
    from tests.unit.test_config import BASE

    errors = problems(tmp_path, BASE + "NOTIFY_URLS=ntfys://ok/topic hunter2-secret\n")
    assert errors == ["NOTIFY_URLS: URL number 2 is not scheme://... (Apprise URLs, e.g. ntfys://ntfy.sh/topic; "
                      "separate several with spaces)"]
    assert not any("hunter2" in e for e in errors)


# -- progress ------------------------------------------------------------------------------


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_not_on_a_terminal_one_plain_line_per_interval():
    lines: list[str] = []
    clock = Clock()
    with Progress(lines.append, interval=300, clock=clock) as progress:
        update = progress.start("git", "backup")
        for _ in range(10):  # 10 updates over 100 s: less than the interval, no line
            clock.now += 10
            update(50_000_000, None, 100, "data/x")
        assert lines == []
        clock.now += 200  # 300 s since the start
        update(3_000_000_000, None, 4321, "data/y")
        progress.finish("git")
    assert lines == ["git: backup 3.0 GB read, 4321 files, 10.0 MB/s, 5m00s"]
    assert "\x1b" not in lines[0]


def test_on_a_terminal_a_live_block_with_a_line_per_running_dataset():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    stream, lines = Tty(), []
    clock = Clock()
    with Progress(lines.append, stream=stream, tty=True, interval=300, clock=clock) as progress:
        git, photo = progress.start("git", "backup"), progress.start("photo", "extract")
        clock.now += 4
        git(40_000_000, None, 12, "data/a")
        photo(5_000_000, 20_000_000, None, "data/b")
        text = progress._render().plain
        progress._live.refresh()
    assert text.splitlines() == ["git: backup 40.0 MB read, 12 files, 10.0 MB/s, 4s",
                                 "photo: extract 5.0 MB extracted of 20.0 MB (25%), 1.2 MB/s, 4s"]
    assert "git: backup 40.0 MB read" in stream.getvalue() and "\x1b[" in stream.getvalue()
    assert lines == []  # no plain lines on a terminal


@pytest.mark.parametrize("seconds, text", [(5, "5s"), (65, "1m05s"), (3725, "1h02m05s")])
def test_elapsed_text(seconds, text):
    assert elapsed_text(seconds) == text


def test_progress_line_without_files_or_total():
    from management.progress import _Task

    assert progress_line("git", _Task("restore", 0.0, done=1000), 1.0) == "git: restore 1.0 kB extracted, 1.0 kB/s, 1s"
