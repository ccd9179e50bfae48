"""management/fleet.py: the per-host summary of what the fleet playbooks collected."""
from __future__ import annotations

import json

from management.views import fleet


def _status(services, stale=(), problems=()):
    return {"rc": 0, "stdout": json.dumps({"time": 0, "stale_after_hours": 36, "stale": list(stale),
                                           "services": services, "problems": list(problems)}), "stderr": ""}



def _svc(name, state="running", age=3600.0, drill=None):
    return {"service": name, "stack": {"state": state, "running": 1, "total": 1, "health": "-"},
            "dataset": {"name": f"p/{name}", "exists": True},
            "last_backup": {"time": 1.0, "age_seconds": age, "stale": False, "archive": "a"}, "drill": drill}



def _write(tmp_path, records):
    for host, record in records.items():
        (tmp_path / f"{host}.json").write_text(json.dumps(record))



def test_status_with_two_hosts_shows_stacks_oldest_backup_stale_and_drill(tmp_path):
    _write(tmp_path, {
        "atlas": _status([_svc("git", age=7200), _svc("photo", state="stopped", age=40 * 3600)], stale=["photo"]),
        "helios": _status([_svc("media", drill={"ok": True, "age_seconds": 86400 * 4})]),
    })
    text, code = fleet.summarise("status", tmp_path)
    lines = text.splitlines()
    assert code == 0 and lines[-1] == "fleet-status: 2/2 host(s) answered"
    atlas = next(line for line in lines if line.startswith("atlas"))
    assert "1/2 running" in atlas and "40h ago" in atlas and "photo" in atlas and "never" in atlas
    helios = next(line for line in lines if line.startswith("helios"))
    assert "ok 4d ago" in helios



def test_status_with_an_unreachable_host_reports_it_and_the_others_and_exits_1(tmp_path):
    _write(tmp_path, {"atlas": _status([_svc("git")]),
                      "helios": {"unreachable": True, "msg": "ssh: connect to host 10.0.0.3 port 2222: timed out"}})
    text, code = fleet.summarise("status", tmp_path)
    assert code == 1
    assert "UNREACHABLE: ssh: connect" in text and "1/1 running" in text and "not: helios" in text



def test_status_with_a_failed_command_shows_its_stderr(tmp_path):
    _write(tmp_path, {"atlas": {"rc": 3, "stdout": "", "stderr": "config: BORG_REPO_BASE_PATH missing\nmore"}})
    text, code = fleet.summarise("status", tmp_path)
    assert code == 1 and "FAILED rc=3: config: BORG_REPO_BASE_PATH missing" in text



def test_a_host_without_a_result_file_is_named_when_expected(tmp_path):
    _write(tmp_path, {"atlas": _status([])})
    text, code = fleet.summarise("status", tmp_path, ["atlas", "overwatch"])
    assert code == 1 and "overwatch" in text and "no result written" in text



def test_backup_reports_each_host_and_the_first_error_of_a_failed_one(tmp_path):
    good = {"ok": True, "downtime": 2.5, "errors": [], "datasets": [{"service": "git", "result": "ok"}]}
    bad = {"ok": False, "downtime": None, "errors": ["zfs: pool datapool unavailable"],
           "datasets": [{"service": "media", "result": "failed", "message": "x"}]}
    _write(tmp_path, {"atlas": {"rc": 0, "stdout": json.dumps(good)},
                      "helios": {"rc": 1, "stdout": json.dumps(bad)}})
    text, code = fleet.summarise("backup", tmp_path)
    assert code == 1
    atlas = next(line for line in text.splitlines() if line.startswith("atlas"))
    assert "ok" in atlas and "1/1" in atlas and "2.5s" in atlas
    assert "zfs: pool datapool unavailable" in text and "1/2 host(s) backed up; not: helios" in text



def test_backup_output_that_is_not_json_is_a_failure_with_its_text(tmp_path):
    _write(tmp_path, {"atlas": {"rc": 2, "stdout": "", "stderr": "error: another run holds the lock"}})
    text, code = fleet.summarise("backup", tmp_path)
    assert code == 1 and "another run holds the lock" in text



def test_no_results_at_all_is_an_error(tmp_path):
    assert fleet.summarise("status", tmp_path)[1] == 1



def test_main_usage_error_exits_2(capsys):
    assert fleet.main(["nope"]) == 2

