"""`status`: per service, the stack and dataset as the tools report them now, joined with what
the runs left in STATE_DIR; stale ones are marked. Fake runner, real managers, tmp state."""

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import orchestrator
from management.errors import CommandError, ValidationError
from management.tools.compose import DockerComposeManager
from management.tools.containers import PROJECT_LABEL
from management.tools.zfs import ZFSManager
from management.views import status
from tests.fakes import FakeRunner
from tests.unit.config.test_load import BASE, write

NOW = 2_000_000_000.0
H = 3600.0
ZFS_GET = ("zfs", "get", "-H", "-p", "-r", "-o", "name,property,value", "mountpoint,mounted,used,creation",
           "datapool/services")
PROPS = (
    "datapool/services\tmountpoint\t/datapool/services\ndatapool/services\tmounted\tyes\n"
    "datapool/services\tused\t5000\n"
    "datapool/services/git\tmountpoint\t/datapool/services/git\ndatapool/services/git\tmounted\tyes\n"
    "datapool/services/git\tused\t2500000\n"
    "datapool/services/git@orchestrator-1\tmountpoint\t-\ndatapool/services/git@orchestrator-1\tused\t10\n"
    "datapool/services/photo\tmountpoint\t/datapool/services/photo\ndatapool/services/photo\tmounted\tno\n"
    "datapool/services/photo\tused\t1000\n"
)


def ps(stack):
    return ("docker", "ps", "-a", "-q", "--filter", f"label={PROJECT_LABEL}={stack}")


PS_ALL = ("docker", "ps", "-a", "--filter", f"label={PROJECT_LABEL}")  # every project's containers at once


def setup(tmp_path, stacks=("git", "web"), answers=None, extra=""):
    services = tmp_path / "services"
    for name in stacks:
        (services / name).mkdir(parents=True)
        (services / name / "compose.yaml").write_text("services: {}\n")
    state = tmp_path / "state"
    state.mkdir()
    env = write(tmp_path, BASE.replace("SERVICES_DIR=/home/runner/services", f"SERVICES_DIR={services}")
                + f"STATE_DIR={state}\n" + extra)
    from management.config import load_settings

    settings = load_settings(env)[0]
    fake = FakeRunner({ZFS_GET: PROPS, ps("git"): "c1\nc2\n", ps("web"): "", PS_ALL: "c1\tgit\nc2\tgit\n",
                       ("docker", "inspect"): "/git-app-1\trunning\thealthy\n/git-db-1\trunning\tnone\n",
                       **(answers or {})})
    docker = DockerComposeManager(settings, fake, None)
    return settings, fake, ZFSManager(fake), docker, state


def write_state(state, name, data):
    (state / name).write_text(json.dumps(data))


def test_one_row_per_service_listed_ones_first_then_the_other_stack_folders(tmp_path):
    settings, fake, zfs, docker, state = setup(tmp_path)
    report = status.collect(settings, zfs, docker, now=NOW)
    assert [r.service for r in report.services] == ["git", "photo", "web"]
    git, photo, web = report.services
    assert git.stack == status.StackState("running", 2, 2, "healthy")
    assert git.dataset == status.DatasetState("datapool/services/git", True, True, 2500000, "/datapool/services/git")
    assert photo.stack is None and photo.dataset.mounted is False
    # a stack folder no listed path names is a service too: its dataset is looked for (missing here)
    assert web.dataset == status.DatasetState("datapool/services/web", False, False) and web.stack.state == "absent"
    # the datasets come from ONE zfs call; docker is asked only about the stack folders
    assert [a for a in fake.argvs if a[0] == "zfs"] == [ZFS_GET]
    assert ps("photo") not in fake.argvs
    assert [a[1] for a in fake.argvs if a[:2] in (("docker", "ps"), ("docker", "inspect"))] == ["ps", "inspect"]
    assert all(not c.mutating for c in fake.calls)


def test_last_backup_age_archive_and_staleness_from_state_files(tmp_path):
    settings, _fake, zfs, docker, state = setup(tmp_path)
    write_state(state, "last_success.json", {"git": NOW - 3 * H, "photo": NOW - 37 * H})
    kept = {"snapshot": "orchestrator-x", "archive": "git-2033-05-18T03:30:00Z", "manifest": None}
    write_state(state, "kept_snapshots.json", {"git": kept})
    report = status.collect(settings, zfs, docker, now=NOW)
    git, photo, web = report.services
    assert (git.last_backup_age, git.stale, git.last_archive) == (3 * H, False, "git-2033-05-18T03:30:00Z")
    assert photo.stale and photo.last_archive is None
    assert web.stale and web.last_backup is None  # a stack folder is backed up like any service: never is stale
    assert report.stale == ["photo", "web"]


def test_never_backed_up_is_stale_and_stale_after_is_the_setting(tmp_path):
    settings, _fake, zfs, docker, state = setup(tmp_path, extra="STALE_AFTER=2\n")
    write_state(state, "last_success.json", {"git": NOW - 3 * H})
    report = status.collect(settings, zfs, docker, now=NOW)
    assert report.stale == ["git", "photo", "web"] and report.stale_after_hours == 2


def test_drill_update_and_rollback_points(tmp_path):
    settings, _fake, zfs, docker, state = setup(tmp_path)
    drill = {"time": NOW - 50 * H, "ok": False, "mode": "compared", "archive": "photo-a", "entries": 3, "bytes": 10,
             "differences": 1, "message": "1 differs", "last_success": None}
    write_state(state, "drills.json", {"photo": drill})
    write_state(state, "last_update.json", {"web": {"time": NOW - 100 * H, "result": "rolled back", "message": "x"}})
    (state / "updates" / "web").mkdir(parents=True)
    for stamp in ("20330101T000000Z", "20330102T000000Z"):
        (state / "updates" / "web" / f"pre-update-{stamp}.json").write_text("{}")
    (state / "updates" / "web" / "notes.txt").write_text("not ours")
    report = status.collect(settings, zfs, docker, now=NOW)
    _git, photo, web = report.services
    assert photo.drill == {**drill, "age_seconds": 50 * H}
    assert web.update["result"] == "rolled back" and web.update["age_seconds"] == 100 * H
    assert web.rollback_points == ["pre-update-20330101T000000Z", "pre-update-20330102T000000Z"]
    lines = [line for line, _ in status.render(report)]
    assert "FAILED 50h ago" in lines[2] and "rolled back 4d ago (2 rollback points)" in lines[3]


def test_unreadable_state_files_count_as_no_run(tmp_path):
    settings, _fake, zfs, docker, state = setup(tmp_path)
    (state / "drills.json").write_text("{not json")
    (state / "last_update.json").write_text("[1, 2]")
    report = status.collect(settings, zfs, docker, now=NOW)
    assert all(r.drill is None and r.update is None for r in report.services)


def test_a_missing_parent_dataset_is_missing_datasets_not_an_error(tmp_path):
    gone = CommandError("zfs get ...", 1, "cannot open 'datapool/services': dataset does not exist")
    settings, _fake, zfs, docker, _state = setup(tmp_path, answers={ZFS_GET: gone})
    report = status.collect(settings, zfs, docker, now=NOW)
    assert report.problems == []
    assert report.services[0].dataset == status.DatasetState("datapool/services/git", False, False)
    assert "MISSING" in status.render(report)[1][0]


def test_a_tool_that_does_not_answer_is_a_problem_and_question_marks(tmp_path):
    settings, _fake, zfs, docker, _state = setup(tmp_path, answers={
        ZFS_GET: CommandError("zfs get ...", 1, "internal error: zfs-fuse is not running"),
        ps("git"): CommandError("docker ps ...", 1, "Cannot connect to the Docker daemon"),
        PS_ALL: CommandError("docker ps ...", 1, "Cannot connect to the Docker daemon")})
    report = status.collect(settings, zfs, docker, now=NOW)
    assert report.problems == ["zfs: internal error: zfs-fuse is not running",
                               "docker: Cannot connect to the Docker daemon"]
    git = report.services[0]
    assert git.dataset.exists is None and git.stack.state == "unknown"
    row = status.render(report)[1][0].split()
    assert row[:5] == ["git", "?", "-", "?", "?"]


def test_naming_services_picks_rows_and_an_unknown_name_is_refused(tmp_path):
    settings, _fake, zfs, docker, _state = setup(tmp_path)
    picked = status.collect(settings, zfs, docker, ["web", "git"], now=NOW).services
    assert [r.service for r in picked] == ["git", "web"]
    with pytest.raises(ValidationError, match="unknown service"):
        status.collect(settings, zfs, docker, ["nope"], now=NOW)


def test_render_marks_stale_in_text_and_highlights_the_row(tmp_path):
    settings, _fake, zfs, docker, state = setup(tmp_path)
    write_state(state, "last_success.json", {"git": NOW - 2 * H, "photo": NOW - 80 * H})
    lines = status.render(status.collect(settings, zfs, docker, now=NOW))
    header, git, photo, web = (line for line, _ in lines[:4])
    assert header.split()[:7] == ["SERVICE", "STACK", "HEALTH", "DATASET", "USED", "COVERAGE", "LAST"]
    assert "running 2/2" in git and "healthy" in git and "mounted" in git and "2.5 MB" in git and "2h ago" in git
    assert "STALE" not in git and "3d ago STALE" in photo and "NOT MOUNTED" in photo
    assert [h for _, h in lines[:4]] == [False, False, True, True]
    assert any("stale: photo" in line and h for line, h in lines)
    assert "ARCHIVES" in header and not any("not counted" in line for line, _ in lines)


def test_age_reads_in_hours_up_to_three_days():
    assert [status.age(s) for s in (59, 61 * 60, 36 * H, 71.9 * H, 72 * H, None)] == ["0m", "1h", "36h", "71h", "3d",
                                                                                     "?"]


def cli(tmp_path, monkeypatch, fake, *args):
    monkeypatch.setattr(orchestrator.App, "runner", property(lambda self: fake))
    return CliRunner().invoke(orchestrator.cli, ["--env-file", str(tmp_path / ".env"), "status", *args])


def test_cli_json_is_the_same_report(tmp_path, monkeypatch):
    _settings, fake, _zfs, _docker, state = setup(tmp_path)
    write_state(state, "last_success.json", {"git": 1.0})
    result = cli(tmp_path, monkeypatch, fake, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["stale_after_hours"] == 36 and data["stale"] == ["git", "photo", "web"]
    git = data["services"][0]
    assert git["service"] == "git" and git["stack"] == {"state": "running", "running": 2, "total": 2,
                                                         "health": "healthy"}
    assert git["dataset"]["mounted"] is True and git["dataset"]["used"] == 2500000
    assert git["last_backup"]["time"] == 1.0 and git["last_backup"]["stale"] is True
    assert data["services"][2]["last_backup"]["stale"] is True  # web: a stack folder, never backed up


def test_cli_table_says_stale_without_a_tty_and_refuses_unknown_names(tmp_path, monkeypatch):
    _settings, fake, _zfs, _docker, _state = setup(tmp_path)
    result = cli(tmp_path, monkeypatch, fake)
    assert result.exit_code == 0 and "never STALE" in result.output and "\x1b[" not in result.output
    bad = cli(tmp_path, monkeypatch, fake, "nope")
    assert bad.exit_code == 2 and "unknown service" in bad.output


def test_cli_masks_secrets(tmp_path, monkeypatch):
    _settings, fake, _zfs, _docker, state = setup(tmp_path)
    from tests.unit.config.test_load import PASS

    write_state(state, "last_update.json", {"git": {"time": NOW, "result": "failed", "message": f"pull {PASS}"}})
    result = cli(tmp_path, monkeypatch, fake, "--json")
    assert PASS not in result.output and "pull ***" in result.output


def test_a_stack_with_data_no_backup_reaches_is_marked_uncovered_in_text_json_and_highlight(tmp_path):
    config = ("docker", "compose", "-p", "git", "config", "--format", "json")
    model = {"services": {"db": {"image": "postgres", "volumes": [
        {"type": "volume", "source": "pgdata", "target": "/var/lib/postgresql/data"}]}}, "volumes": {"pgdata": {}}}
    settings, _fake, zfs, docker, _state = setup(tmp_path, answers={("docker", "compose", "version"): "v2",
                                                                    config: json.dumps(model)})
    report = status.collect(settings, zfs, docker, now=NOW)
    git = report.services[0]
    assert [c["target"] for c in git.uncovered] == ["/var/lib/postgresql/data"]
    assert report.uncovered == ["git"] and report.to_dict()["uncovered"] == ["git"]
    lines = status.render(report)
    assert "1 UNCOVERED" in lines[1][0] and lines[1][1]
    assert any(line.startswith("not backed up: git: 1 mount(s)") and h for line, h in lines)


def test_each_backed_up_service_has_one_verdict_with_its_reasons(tmp_path):
    settings, _fake, zfs, docker, state = setup(tmp_path)
    write_state(state, "last_success.json", {"git": NOW - 3 * H})
    report = status.collect(settings, zfs, docker, now=NOW)
    git = report.services[0]
    assert git.verdict == "AT RISK" and "never drilled" in git.risks and "its repository was never checked" in git.risks
    assert "no good backup" not in " ".join(git.risks)
    assert report.to_dict()["services"][0]["verdict"] == "AT RISK"
    lines = [line for line, _h in status.render(report)]
    assert lines[0].split()[-1] == "VERDICT" and lines[1].endswith("AT RISK")
    assert any(line.startswith("at risk: git: ") for line in lines)



# --- the pool -------------------------------------------------------------------------------

ZSTATUS = ("zpool", "status", "datapool")
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "zpool-status"


def zfs_fuse(name: str, scrubbed: float | None = None) -> str:
    text = (FIXTURES / name).read_text().replace("cap5128", "datapool")
    return text.replace("Tue Dec  1 19:25:47 2026", time.ctime(scrubbed)) if scrubbed else text


def test_the_pool_line_mirror_scrubbed(tmp_path):
    settings, _fake, zfs, docker, _state = setup(
        tmp_path, answers={ZSTATUS: zfs_fuse("zfs-fuse-mirror-scrubbed.txt", NOW - 4 * 24 * H)})
    report = status.collect(settings, zfs, docker, now=NOW)
    assert report.pool.layout == "mirror of 2 disks" and report.pool.redundant is True
    assert report.to_dict()["pool"]["scrub"]["age_seconds"] == 4 * 24 * H
    assert status.render(report)[-1] == ("pool: datapool ONLINE, mirror of 2 disks, last scrub 4d ago, 0 error(s)",
                                         False)
    assert not any("redundancy" in r for r in report.services[0].risks)


def test_a_one_disk_pool_never_scrubbed_is_highlighted_and_a_reason_of_the_verdict(tmp_path):
    settings, _fake, zfs, docker, _state = setup(tmp_path, answers={ZSTATUS: zfs_fuse("zfs-fuse-single.txt")})
    report = status.collect(settings, zfs, docker, now=NOW)
    line, highlighted = status.render(report)[-1]
    assert line == "pool: datapool ONLINE, 1 disk, NO REDUNDANCY (see make attach-mirror), never scrubbed"
    assert highlighted
    assert "the pool has no redundancy (one disk: corruption is found, not repaired)" in report.services[0].risks


def test_a_degraded_pool_names_the_disk(tmp_path):
    settings, _fake, zfs, docker, _state = setup(
        tmp_path, answers={ZSTATUS: zfs_fuse("zfs-fuse-degraded.txt", NOW - H)})
    report = status.collect(settings, zfs, docker, now=NOW)
    line, highlighted = status.render(report)[-1]
    assert line.startswith("pool: datapool DEGRADED, mirror of 2 disks, not ONLINE: mirror-0 DEGRADED, "
                           "/var/tmp/poolcap/b.img OFFLINE, last scrub ") and highlighted
    assert report.to_dict()["pool"]["state"] == "DEGRADED"


def test_no_zpool_answer_no_pool_line(tmp_path):
    settings, _fake, zfs, docker, _state = setup(tmp_path)  # the fake says nothing for zpool status
    report = status.collect(settings, zfs, docker, now=NOW)
    assert report.pool is None and report.to_dict()["pool"] is None
    assert not any(line.startswith("pool:") for line, _h in status.render(report))


# --- local history ----------------------------------------------------------------------------

HISTORY_PROPS = PROPS + (
    "datapool/services/git@orchestrator-20330515T033000Z\tcreation\t1999600000\n"
    "datapool/services/git@orchestrator-20330515T033000Z\tused\t1200000000\n"
    "datapool/services/git@orchestrator-20330517T120000Z\tcreation\t1999800000\n"
    "datapool/services/git@orchestrator-20330517T120000Z\tused\t300000\n"
    "datapool/services/git@by-hand\tcreation\t1999900000\ndatapool/services/git@by-hand\tused\t99\n"
)


def history_state(state):
    write_state(state, "history.json", {
        "git": [{"snapshot": "orchestrator-20330517T120000Z", "time": NOW - 9 * H, "consistency": "crash-consistent",
                 "archive": None},
                {"snapshot": "orchestrator-20330515T033000Z", "time": NOW - 6 * 24 * H, "consistency": "consistent",
                 "archive": "git-2033-05-15T03:30:00Z"},
                # destroyed by hand: no longer on the pool, not counted
                {"snapshot": "orchestrator-20330510T033000Z", "time": NOW - 11 * 24 * H, "consistency": "consistent",
                 "archive": "git-2033-05-10T03:30:00Z"}]})


def test_history_per_service_from_the_same_one_zfs_query_joined_with_history_json(tmp_path):
    settings, fake, zfs, docker, state = setup(tmp_path, answers={ZFS_GET: HISTORY_PROPS})
    history_state(state)
    report = status.collect(settings, zfs, docker, now=NOW)
    git, photo, web = report.services
    assert [a for a in fake.argvs if a[0] == "zfs"] == [ZFS_GET]  # still ONE zfs call
    h = git.history
    assert (h.snapshots, h.bytes, h.oldest_age, h.newest_age, h.crash_consistent) == (
        2, 1200300000, 6 * 24 * H, 9 * H, 1)
    assert [p["snapshot"] for p in h.points] == ["orchestrator-20330515T033000Z", "orchestrator-20330517T120000Z"]
    assert h.points[0]["used"] == 1200000000 and h.points[0]["archive"] == "git-2033-05-15T03:30:00Z"
    assert photo.history.snapshots == 0 and web.history.snapshots == 0  # web: a stack folder, a service too
    row = report.to_dict()["services"][0]["history"]
    assert row["snapshots"] == 2 and row["bytes"] == 1200300000 and row["points"][1]["consistency"] == \
        "crash-consistent"


def test_history_column_short_form_and_a_note_saying_what_the_space_is(tmp_path):
    settings, _fake, zfs, docker, state = setup(tmp_path, answers={ZFS_GET: HISTORY_PROPS})
    history_state(state)
    lines = status.render(status.collect(settings, zfs, docker, now=NOW))
    header, git, photo = (line for line, _ in lines[:3])
    assert "HISTORY" in header.split()
    col = header.index("HISTORY")
    assert git[col:].startswith("2 (1.2 GB, 6d..9h, 1 crash-consistent)")
    assert photo[col:].startswith("none ")
    assert any(line.startswith("history: snapshots on the pool (the space unique to them") for line, _ in lines)


def test_history_off_unknown_and_one_snapshot(tmp_path):
    settings, _fake, zfs, docker, state = setup(tmp_path, extra="SNAPSHOT_RETENTION=off\n")
    report = status.collect(settings, zfs, docker, now=NOW)
    assert status.history_cell(report.services[0], report.history_on) == "off"
    assert report.to_dict()["history_on"] is False
    assert not any(line.startswith("history: ") for line, _ in status.render(report))
    one = status.ServiceStatus("git", status.DatasetState("d", True), None,
                               history=status.HistorySummary(1, 5000, 3 * H, 3 * H, 0, []))
    assert status.history_cell(one, True) == "1 (5.0 kB, 3h)"
    assert status.history_cell(status.ServiceStatus("git", status.DatasetState("d", None), None), True) == "?"
    assert status.history_cell(status.ServiceStatus("x", None, None), True) == "-"


def test_history_is_unknown_when_zfs_does_not_answer(tmp_path):
    settings, _fake, zfs, docker, state = setup(
        tmp_path, answers={ZFS_GET: CommandError("zfs get ...", 1, "internal error: zfs-fuse is not running")})
    history_state(state)
    report = status.collect(settings, zfs, docker, now=NOW)
    assert all(r.history is None for r in report.services)
    assert status.history_cell(report.services[0], True) == "?"


def test_cli_html_page_lists_the_restore_points_from_the_state(tmp_path, monkeypatch):
    _settings, fake, _zfs, _docker, state = setup(tmp_path, answers={ZFS_GET: HISTORY_PROPS})
    history_state(state)
    out = tmp_path / "page.html"
    result = cli(tmp_path, monkeypatch, fake, "--html", str(out))
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert page.count('<tr class="restore">') == 3  # git, photo and the stack folder web
    assert "orchestrator-20330517T120000Z" in page and "crash-consistent" in page
    assert "git-2033-05-15T03:30:00Z" in page and "make restore-path SERVICE_NAME=git" in page
    assert not [a for a in fake.argvs if a[0] == "borg"]


def test_the_changed_column_and_json_show_what_the_last_night_changed(tmp_path):
    settings, _fake, zfs, docker, state = setup(tmp_path)
    changed = {"added": 12, "modified": 3, "deleted": 0, "files": 500, "bytes": 10}
    write_state(state, "nights.json", {"git": [{"time": NOW, "files": 500, "changed": changed}],
                                       "photo": [{"time": NOW, "files": 5000, "changed": {
                                           "added": 0, "modified": 4812, "deleted": None, "held": True}}]})
    report = status.collect(settings, zfs, docker, now=NOW)
    git, photo, web = report.services
    assert git.changed == changed and web.changed is None
    assert report.to_dict()["services"][0]["changed"] == changed
    assert status.changed_cell(git.changed) == "+12 ~3 -0"
    assert status.changed_cell(photo.changed) == "+0 ~4,812 -? MASS"
    assert status.changed_cell(None) == "-"
    lines = [line for line, _ in status.render(report)]
    assert "CHANGED" in lines[0] and "+12 ~3 -0" in lines[1]
