"""The downtime window's promises: stop -> snapshot -> start on every way out."""

import subprocess

from management.cycles.backup import BackupOrchestrator
from management.cycles.context import RunContext
from management.errors import CommandError
from management.results import FAILED, OK
from tests.fakes import FakeRunner
from tests.unit.config.test_load import BASE, settings_with
from tests.unit.cycles.backup.world import (
    World,
    kinds,
    orchestrator,
)

LIVE_DB = {"consistency": "live", "before-snapshot": [{"service": "db", "command": ["psql", "-c", "CHECKPOINT"]}]}



def test_full_cycle_order_hub_stops_last_and_starts_first(settings):
    world = World()
    report = orchestrator(settings, world).backup()
    assert report.ok, report
    assert kinds(world, "stop") == ["git", "photo", "reverseproxy"]
    assert kinds(world, "start") == ["reverseproxy", "git", "photo"]
    assert len(kinds(world, "snapshot")) == 1 and kinds(world, "snapshot")[0].startswith("datapool/services@")
    last_start = max(i for i, e in enumerate(world.events) if e[0] == "start")
    first_create = min(i for i, e in enumerate(world.events) if e[0] == "create")
    assert last_start < first_create, "borg must run after the stacks are back"
    assert world.snaps == set() and world.views == set()
    assert report.downtime is not None and world.running == {"git", "photo", "reverseproxy"}


def test_stacks_that_were_stopped_stay_stopped(settings):
    world = World(running={"git", "reverseproxy"})
    orchestrator(settings, world).backup()
    assert "photo" not in kinds(world, "stop") + kinds(world, "start")
    assert world.running == {"git", "reverseproxy"}


def test_snapshot_failure_restarts_stacks_and_runs_no_borg(settings):
    world = World()
    world.fail["snapshot"] = True
    report = orchestrator(settings, world).backup()
    assert not report.ok and "out of space" in report.errors[0]
    assert sorted(kinds(world, "start")) == ["git", "photo", "reverseproxy"]
    assert kinds(world, "create") == []


def test_a_snapshot_command_killed_after_zfs_took_it_leaves_no_snapshot(settings):
    """Found by the chaos campaign (seed 65, step 23): `zfs snapshot -r` was killed after ZFS had
    taken the snapshot; the night failed and left it, for the next night to find."""
    world = World()
    world.fail["snapshot"] = "made"
    report = orchestrator(settings, world).backup()
    assert not report.ok and kinds(world, "create") == []
    assert sorted(kinds(world, "start")) == ["git", "photo", "reverseproxy"]
    assert world.snaps == set()


def test_stack_failing_to_stop_is_reported_and_the_rest_goes_on(settings):
    world = World()
    world.fail[("stop", "photo")] = True
    report = orchestrator(settings, world).backup()
    assert any("photo: stop failed" in f for f in report.stack_failures)
    assert kinds(world, "create") == ["git", "photo"] and not report.ok


def test_a_stack_compose_cannot_read_is_left_running_and_snapshotted_crash_consistent(settings):
    world = World()
    world.unreadable["photo"] = "required variable IMG is missing a value"
    report = orchestrator(settings, world).backup()
    first_stop = next(i for i, e in enumerate(world.events) if e[0] == "stop")
    assert world.events.index(("read", ("git", "photo", "reverseproxy"))) < first_stop  # read before the window
    assert kinds(world, "stop") == ["git", "reverseproxy"] and "photo" in world.running
    assert kinds(world, "create") == ["git", "photo"]  # its data is still in the one snapshot
    (failure,) = report.stack_failures
    assert failure.startswith("photo: not stopped, compose cannot read it (/services/photo/compose.yaml: "
                              "required variable IMG is missing a value)") and "crash-consistent" in failure
    assert not report.ok


def test_sigterm_while_stopping_skips_snapshot_and_restarts_everything(settings):
    world = World()
    world.fail[("signal-during-stop", "git")] = True
    report = orchestrator(settings, world).backup()
    assert report.interrupted == "interrupted by SIGTERM"
    assert kinds(world, "snapshot") == [] and kinds(world, "create") == []
    assert world.running == {"git", "photo", "reverseproxy"}
    assert not report.ok


def test_a_live_stack_is_not_stopped_and_its_hook_runs_right_before_the_snapshot(settings):
    world = World()
    world.policies["photo"] = LIVE_DB
    report = orchestrator(settings, world).backup()
    assert report.ok and report.live_stacks == ["photo"]
    assert kinds(world, "stop") == ["git", "reverseproxy"] and "photo" not in kinds(world, "start")
    order = [e[0] for e in world.events if e[0] in ("stop", "hook", "snapshot", "start")]
    assert order == ["stop", "stop", "hook", "snapshot", "start", "start"]
    assert report.stack_downtime["photo"] == 0.0 and set(report.stack_downtime) == {"git", "photo", "reverseproxy"}
    assert kinds(world, "create") == ["git", "photo"]


def test_a_failing_hook_stops_that_stack_for_the_snapshot_and_the_night_is_still_ok(settings):
    world = World()
    world.policies["photo"] = LIVE_DB
    world.fail[("hook", "photo")] = True
    report = orchestrator(settings, world).backup()
    order = [e for e in world.events if e[0] in ("stop", "hook", "snapshot", "start")]
    assert [e[0] for e in order] == ["stop", "stop", "hook", "stop", "snapshot", "start", "start", "start"]
    assert order[3] == ("stop", "photo") and report.live_stacks == []
    assert report.ok and "photo" in report.restarted_stacks
    (note,) = report.notes
    assert "before-snapshot 'psql -c CHECKPOINT' in db failed" in note and "stop mode this night" in note


def test_an_invalid_policy_is_noted_and_the_stack_is_stopped(settings):
    world = World()
    world.policies["photo"] = {"consistency": "sometimes"}
    report = orchestrator(settings, world).backup()
    assert "photo" in kinds(world, "stop") and report.live_stacks == []
    assert any("'sometimes' must be 'stop' or 'live'" in n for n in report.notes)


def test_when_every_stack_is_live_nothing_stops(settings):
    world = World()
    for name in ("git", "photo", "reverseproxy"):
        world.policies[name] = {"consistency": "live"}
    report = orchestrator(settings, world).backup()
    assert report.ok and kinds(world, "stop") == [] and kinds(world, "start") == []
    assert report.downtime is None and sorted(report.live_stacks) == ["git", "photo", "reverseproxy"]


def test_a_stack_folder_that_cannot_be_copied_fails_its_service_alone(tmp_path):
    services = tmp_path / "services"
    for name in ("git", "photo"):
        (services / name).mkdir(parents=True)
        (services / name / "compose.yaml").write_text("services: {}\n")
    settings = settings_with(tmp_path, f"LOCK_FILE={tmp_path}/lock\nSTATE_DIR={tmp_path}/state\nKEEP_LAST_SNAPSHOT=0\n"
                             f"VIEW_MOUNTPOINT={tmp_path}/views\n",
                             base=BASE.replace("SERVICES_DIR=/home/runner/services", f"SERVICES_DIR={services}"))

    class Views(World):
        def create_view(self, snap, view, path, readonly=True):
            path.mkdir(parents=True)
            super().create_view(snap, view, path, readonly)

    world = Views()
    copies: list[list[str]] = []

    class PhotoWontCopy(FakeRunner):  # the one cp for both fails; so does photo's own
        def run(self, argv, **kw):
            if argv[0] == "cp":
                copies.append(argv[argv.index("--") + 1:])
                if str(services / "photo") in argv:
                    raise CommandError("cp", 1, "cp: error reading 'photo/db.sqlite': Input/output error")
            if argv[0] in ("cp", "rm"):
                subprocess.run(argv, check=True)
            return super().run(argv, **kw)

    ctx = RunContext(settings, PhotoWontCopy(), world, world, world, echo=lambda _: None)
    report = BackupOrchestrator(ctx).backup()
    assert copies[:3] == [[str(services / "git"), str(services / "photo")], [str(services / "git")],
                          [str(services / "photo")]]  # then each alone, to name the one that fails
    results = {d.service: d for d in report.datasets}
    assert results["git"].result == OK and "git" in kinds(world, "create")
    assert results["photo"].result == FAILED and f"copying the stack folder {services / 'photo'} failed" in \
        results["photo"].message
    assert not report.ok
