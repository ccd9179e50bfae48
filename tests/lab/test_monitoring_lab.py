"""Monitoring on the lab: the push URL (healthchecks.io / Uptime Kuma style) gets start,
then success or fail, and the node_exporter textfile keeps a service's last success across a
failed night. The push server is a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import os
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.lab.conftest import build_cycle, teardown_cycle
from tests.lab.envfile import LAB_PASSPHRASE, run_cli

pytestmark = pytest.mark.lab


class Recorder(BaseHTTPRequestHandler):
    seen: list[tuple[str, str, str]] = []

    def _record(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode(errors="replace") if length else ""
        Recorder.seen.append((self.command, self.path, body))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"OK")

    do_GET = do_POST = _record

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass


def metric(text: str, name: str, service: str) -> float | None:
    m = re.search(rf'^{name}{{service="{service}"}} (\S+)$', text, re.M)
    return float(m.group(1)) if m else None


def test_push_url_and_prometheus_textfile_on_success_and_on_a_failed_night(lab, tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    token = "tok3n7c1a"
    prom = tmp_path / "textfile" / "orchestrator.prom"
    Recorder.seen = []
    cyc = build_cycle(lab, tmp_path, extra={"PUSH_URL": f"http://127.0.0.1:{server.server_port}/ping/{token}",
                                             "PROMETHEUS_TEXTFILE": str(prom)})
    try:
        ok = run_cli(cyc.env_path, "backup", timeout=600)
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert [(m, p) for m, p, _ in Recorder.seen] == [("GET", f"/ping/{token}/start"), ("POST", f"/ping/{token}")]
        body = Recorder.seen[-1][2]
        assert '"ok": true' in body and LAB_PASSPHRASE not in body and token not in body
        text = prom.read_text()
        assert oct(prom.stat().st_mode & 0o777) == "0o644"
        first_success = metric(text, "orchestrator_backup_last_success_timestamp_seconds", "git")
        assert metric(text, "orchestrator_backup_success", "git") == 1 and first_success
        assert metric(text, "orchestrator_backup_files", "git") == 63  # 62 data files + the stack's compose.yaml
        assert metric(text, "orchestrator_backup_downtime_seconds", "git") > 0

        repo = f"{lab.borg_repos}/{cyc.prefix}/git"
        os.chmod(repo, 0)  # the git repository cannot be used tonight
        try:
            failed = run_cli(cyc.env_path, "backup", timeout=600)
        finally:
            os.chmod(repo, 0o700)
        assert failed.returncode == 1
        assert [p for _, p, _ in Recorder.seen[2:]] == [f"/ping/{token}/start", f"/ping/{token}/fail"]
        text = prom.read_text()
        assert metric(text, "orchestrator_backup_success", "git") == 0
        assert metric(text, "orchestrator_backup_last_success_timestamp_seconds", "git") == first_success
        assert metric(text, "orchestrator_backup_success", "photo") == 1
        assert metric(text, "orchestrator_backup_last_success_timestamp_seconds", "photo") > first_success
        # no temp file left: the backup's file and the verdicts every run rewrites
        assert sorted(p.name for p in prom.parent.iterdir()) == [prom.name, "orchestrator_verdict.prom"]
        assert metric(prom.with_name("orchestrator_verdict.prom").read_text(), "orchestrator_service_protected",
                      "git") == 0  # never drilled
    finally:
        server.shutdown()
        teardown_cycle(cyc)
