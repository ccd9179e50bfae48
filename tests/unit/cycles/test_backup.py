"""The cycle's promises, with fake managers that record the order of events."""

import dataclasses
import os
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from management.cycles.backup import BackupOrchestrator, compact_due, snapshot_name, start_order, stop_order
from management.cycles.context import RunContext
from management.errors import CommandError, OrchestratorError
from management.results import FAILED, OK
from management.state import StateStore
from tests.fakes import FakeRunner
from tests.unit.config.test_load import BASE, settings_with


@dataclass
class StackResult:
    stack: str
    ok: bool = True
    message: str = ""
    started_at: float = 0.0
    finished_at: float = 0.0


@dataclass
class Model:
    name: str
    file: Path
    error: str | None = None
    extensions: dict = field(default_factory=dict)
    services: dict = field(default_factory=lambda: {"db": None, "web": None})


@dataclass
class Created:
    archive: str
    nfiles: int = 3
    original_size: int = 100
    deduplicated_size: int = 10
    warning: str = ""
    repository: str = "repo-id-1"
    added: int | None = None  # borg create's A lines (the data's)
    modified: int | None = None  # ... and M lines


class World:
    """Fake zfs + docker + borg sharing one event log."""

    def __init__(self, stacks=("git", "photo", "reverseproxy"), running=None):
        self.events = []
        self.names = list(stacks)
        self.running = set(self.names if running is None else running)
        self.unreadable = {}  # stack -> compose's error
        self.policies = {}  # stack -> its x-orchestrator block
        self.datasets = ["datapool/services", "datapool/services/git", "datapool/services/photo"]
        self.written = {}  # dataset -> bytes written since the kept snapshot (OpenZFS `written@`)
        self.snaps = set()
        self.created = {}  # dataset@snap -> its creation time (zfs's `creation`), for those a test sets
        self.views = set()
        self.mounted = {"datapool/services/git", "datapool/services/photo"}
        self.fail = {}
        self.uncovered = {}  # stack -> Coverage verdicts its mounts get
        self.listings = {}  # service -> Listing: what its repository holds (borg list in the preflight)
        self.fingerprints = {}  # service -> its local repository's fingerprint (None: remote)
        self.missing = set()  # services whose repository init_repo creates
        self.capacity = 50  # the pool's fill, percent
        self.changes = {}  # service -> what its next archive says: {nfiles, added, modified}

    # docker
    def discover_names(self):
        return list(self.names)

    def stacks(self, names):
        self.events.append(("read", tuple(names)))
        return [Model(n, Path(f"/services/{n}/compose.yaml"), self.unreadable.get(n),
                      {"x-orchestrator": self.policies[n]} if n in self.policies else {}) for n in names]

    def coverage(self, names):
        self.events.append(("coverage", tuple(names)))
        return {n: self.uncovered.get(n, []) for n in names}

    def run_hook(self, stack, service, command, timeout):
        self.events.append(("hook", f"{stack.name}/{service}"))
        if self.fail.get(("hook", stack.name)):
            raise CommandError("docker compose exec", 1, "psql: could not connect to server")
        return "CHECKPOINT\n"

    def running_stacks(self):
        return sorted(self.running)

    def stop(self, stacks):
        out = []
        for s in stacks:
            self.events.append(("stop", s))
            if self.fail.get(("stop", s)):
                out.append(StackResult(s, False, "boom"))
            else:
                self.running.discard(s)
                out.append(StackResult(s))
            if self.fail.get(("signal-during-stop", s)):
                os.kill(os.getpid(), signal.SIGTERM)
        return out

    def start(self, stacks):
        for s in stacks:
            self.events.append(("start", s))
            self.running.add(s)
        return [StackResult(s) for s in stacks]

    # zfs
    def is_mounted(self, dataset):
        return dataset in self.mounted

    def mounted_below(self, root):
        return {d for d in self.mounted if d == root or d.startswith(root + "/")}

    def snapshot(self, dataset, name, recursive=True):
        self.events.append(("snapshot", f"{dataset}@{name}"))
        if self.fail.get("snapshot"):
            raise CommandError("zfs snapshot", 1, "out of space")
        self.snaps.add(f"{dataset}@{name}")
        if recursive:  # every dataset below gets the same name, atomically
            self.snaps |= {f"{d}@{name}" for d in self.datasets if d.startswith(dataset + "/")}

    def snapshots(self, dataset):
        from management.tools.zfs import Snapshot
        return sorted((Snapshot(s, self.created.get(s, 0), 0) for s in self.list_snapshots(dataset)),
                      key=lambda s: (s.creation, s.name))

    def list_snapshots(self, dataset):
        return sorted(s for s in self.snaps if s.split("@")[0] == dataset or s.startswith(dataset + "/"))

    def destroy_recursive_snapshot(self, dataset, name, prefix):
        assert name.startswith(prefix + "-")
        self.events.append(("destroy", f"{dataset}@{name}"))
        below = (dataset + "/", dataset + "@")
        self.snaps = {s for s in self.snaps if not (s.endswith("@" + name) and s.startswith(below))}

    def destroy_ours(self, snap, prefix):
        assert snap.split("@")[1].startswith(prefix + "-")
        self.events.append(("destroy-one", snap))
        self.snaps.discard(snap)

    def written_since(self, snap, earlier):
        """OpenZFS-like: bytes written since `earlier`; `written` maps a dataset to it (default: changed)."""
        return self.written.get(snap.split("@")[0], 4096)

    def list_views(self, parent):
        return sorted(self.views)

    def pool_capacity(self, pool):
        return self.capacity

    def exists(self, name):
        return name in self.views or name in self.snaps or name in self.datasets

    def create_dataset(self, dataset):
        self.events.append(("create-dataset", dataset))
        self.datasets.append(dataset)
        self.mounted.add(dataset)

    def ensure_view_parent(self, parent):
        self.events.append(("view-parent", parent))

    def create_view(self, snap, view, path, readonly=True):
        self.events.append(("view", view))
        self.views.add(view)

    def set_readonly(self, view):
        self.events.append(("readonly", view))

    def destroy_view(self, view):
        self.views.discard(view)

    # borg
    def fingerprint(self, service):
        return self.fingerprints.get(service)

    def init_repo(self, service):
        self.events.append(("list", service))
        if self.fail.get(("init", service)):
            raise CommandError("borg info", 2, "Connection refused")
        if service in self.missing:  # as the real manager: borg init, then a new, empty listing
            self.missing.discard(service)
            self.events.append(("init", service))
            self.fingerprints[service] = f"{service}-new:1"
            self.listings[service] = type(next(iter(self.listings.values())))("", ()) if self.listings else None
            return True
        return False

    def create(self, service, path, progress=None):
        self.events.append(("create", service))
        if self.fail.get(("create", service)):
            raise CommandError("borg create", 2, "Repository does not exist")
        if self.fail.get(("signal-during-create", service)):
            os.kill(os.getpid(), signal.SIGTERM)
        if self.fingerprints.get(service):  # a commit, as the real repository's files show it
            self.fingerprints[service] += "+"
        if service in self.listings:  # as the real manager keeps it
            known = self.listings[service]
            self.listings[service] = type(known)(known.repository, (*known.archives, f"{service}-x"))
        return Created(f"{service}-x", **self.changes.get(service, {}))

    def prune(self, service):
        self.events.append(("prune", service))
        return 3

    def compact(self, service):
        self.events.append(("compact", service))


@pytest.fixture
def settings(tmp_path):
    """The cycle as it was before KEEP_LAST_SNAPSHOT and local history: every snapshot of the run is
    destroyed."""
    return settings_with(tmp_path, f"LOCK_FILE={tmp_path}/lock\nSTATE_DIR={tmp_path}/state\nHUB_SERVICE=reverseproxy\n"
                                   "KEEP_LAST_SNAPSHOT=0\nSNAPSHOT_RETENTION=off\n")


@pytest.fixture
def keeping(tmp_path):
    """The last backed-up snapshot is kept, unchanged datasets are skipped (the defaults), and no
    local history besides (SNAPSHOT_RETENTION=off; test_history.py has the defaults)."""
    return settings_with(tmp_path, f"LOCK_FILE={tmp_path}/lock\nSTATE_DIR={tmp_path}/state\nHUB_SERVICE=reverseproxy\n"
                                   "SNAPSHOT_RETENTION=off\n")


def orchestrator(settings, world):
    return BackupOrchestrator(RunContext(settings, FakeRunner(), world, world, world, echo=lambda _: None))


def kinds(world, kind):
    return [e[1] for e in world.events if e[0] == kind]


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


def test_failed_preflight_stops_nothing(settings):
    world = World()
    world.mounted.discard("datapool/services/photo")
    report = orchestrator(settings, world).backup()
    assert not report.ok and "not mounted" in report.errors[0]
    assert kinds(world, "stop") == [] and kinds(world, "snapshot") == []


def test_unreachable_repository_fails_only_its_service(settings):
    world = World()
    world.fail[("init", "photo")] = True
    report = orchestrator(settings, world).backup()
    results = {d.service: d.result for d in report.datasets}
    assert results == {"git": OK, "photo": FAILED} and not report.ok
    assert "Connection refused" in report.datasets[1].message
    assert kinds(world, "create") == ["git"] and world.snaps == set()
    assert sorted(kinds(world, "start")) == ["git", "photo", "reverseproxy"]


def test_no_usable_repository_stops_nothing(settings):
    world = World()
    world.fail[("init", "photo")] = world.fail[("init", "git")] = True
    report = orchestrator(settings, world).backup()
    assert not report.ok and "no repository is usable" in report.errors[-1]
    assert kinds(world, "stop") == [] and kinds(world, "snapshot") == []


def test_snapshot_failure_restarts_stacks_and_runs_no_borg(settings):
    world = World()
    world.fail["snapshot"] = True
    report = orchestrator(settings, world).backup()
    assert not report.ok and "out of space" in report.errors[0]
    assert sorted(kinds(world, "start")) == ["git", "photo", "reverseproxy"]
    assert kinds(world, "create") == []


def test_one_dataset_failing_does_not_stop_the_others(settings):
    world = World()
    world.fail[("create", "git")] = True
    report = orchestrator(settings, world).backup()
    results = {d.service: d.result for d in report.datasets}
    assert results == {"git": FAILED, "photo": OK}
    assert not report.ok and world.snaps == set() and world.views == set()


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


def test_sigterm_during_borg_removes_views_and_snapshot(settings):
    world = World()
    world.fail[("signal-during-create", "git")] = True
    report = orchestrator(settings, world).backup()
    assert report.interrupted and world.snaps == set() and world.views == set()
    assert world.running == {"git", "photo", "reverseproxy"}


def test_leftovers_of_a_killed_run_are_removed_but_foreign_snapshots_kept(settings):
    world = World()
    world.snaps = {"datapool/services@orchestrator-20260101T000000Z", "datapool/services@manual-keep"}
    world.views = {"datapool/orchestrator-views/git"}
    orchestrator(settings, world).backup()
    assert world.snaps == {"datapool/services@manual-keep"}


def test_backup_one_snapshots_only_that_dataset_and_stops_only_its_stack(settings):
    world = World()
    orchestrator(settings, world).backup(["git"])
    assert kinds(world, "stop") == ["git"] and kinds(world, "start") == ["git"]
    assert kinds(world, "snapshot")[0].startswith("datapool/services/git@")
    assert kinds(world, "create") == ["git"]


def test_unknown_service_is_rejected_before_anything(settings):
    world = World()
    with pytest.raises(OrchestratorError, match="unknown service"):
        orchestrator(settings, world).backup(["../etc"])
    assert world.events == []


def test_compact_runs_when_due_and_state_is_kept(settings):
    world = World()
    orchestrator(settings, world).backup()
    assert kinds(world, "compact") == ["git", "photo"]
    world.events.clear()
    orchestrator(settings, world).backup()
    assert kinds(world, "compact") == []  # default every 7 days
    assert Path(settings.state_dir / "compact.json").exists()


def test_pure_helpers():
    assert snapshot_name("orchestrator", 0) == "orchestrator-19700101T000000Z"
    assert stop_order(["hub", "a", "b"], "hub") == ["a", "b", "hub"]
    assert start_order(["a", "hub"], "hub") == ["hub", "a"]
    assert compact_due(None, 7, 0) and compact_due(0, 0, 1) and not compact_due(0, 7, 86400)


LIVE_DB = {"consistency": "live", "before-snapshot": [{"service": "db", "command": ["psql", "-c", "CHECKPOINT"]}]}


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


NIGHT = [1_800_000_000]


def run_nights(settings, world, n):
    """n nights, each a day after the last one run (a clock that moves a minute per call)."""
    def clock():
        NIGHT[0] += 60
        return NIGHT[0]

    orch = BackupOrchestrator(RunContext(settings, FakeRunner(), world, world, world, echo=lambda _: None, clock=clock))
    report = None
    for _ in range(n):
        NIGHT[0] += 86400
        report = orch.backup()
    return orch, report


def test_the_last_snapshot_is_kept_and_the_previous_destroyed_only_after_success(keeping):
    world = World()
    orch, first = run_nights(keeping, world, 1)
    assert first.ok
    kept = {s for s in world.snaps}
    assert {s.split("@")[0] for s in kept} == {"datapool/services/git", "datapool/services/photo"}  # not the parent
    night1 = orch.kept()["git"]["snapshot"]
    # night 2: git's backup fails: git keeps night 1, photo moves on to night 2
    world.fail[("create", "git")] = True
    _, second = run_nights(keeping, world, 1)
    after = orch.kept()
    assert after["git"]["snapshot"] == night1 and after["photo"]["snapshot"] != night1
    assert f"datapool/services/git@{night1}" in world.snaps
    assert f"datapool/services/photo@{night1}" not in world.snaps
    assert len(world.snaps) == 2


def test_an_unchanged_dataset_costs_no_borg_and_names_the_archive_that_holds_it(keeping):
    world = World()
    orch, _ = run_nights(keeping, world, 1)
    held = orch.kept()["git"]
    world.events.clear()
    world.written = {"datapool/services/git": 0}
    _, report = run_nights(keeping, world, 1)
    results = {d.service: d for d in report.datasets}
    assert results["git"].result == "unchanged" and results["git"].archive == held["archive"]
    assert "nothing written since" in results["git"].message
    assert kinds(world, "create") == ["photo"] and report.ok
    assert kinds(world, "view") == ["datapool/orchestrator-views/photo"]  # ZFS alone said so: no clone for git
    assert orch.kept()["git"] == held  # the archive's own snapshot stays, tonight's is gone
    assert not any(s.endswith(report.snapshot.split("@")[1]) and s.startswith("datapool/services/git")
                   for s in world.snaps)


def test_leftovers_never_include_a_kept_snapshot(keeping):
    world = World()
    orch, _ = run_nights(keeping, world, 1)
    kept = set(world.snaps)
    world.snaps |= {"datapool/services@orchestrator-20200101T000000Z",
                        "datapool/services/git@orchestrator-20200101T000000Z", "datapool/services/git@mine"}
    removed = orch.cleanup_leftovers()
    assert sorted(removed) == ["datapool/services/git@orchestrator-20200101T000000Z",
                               "datapool/services@orchestrator-20200101T000000Z"]
    assert world.snaps == kept | {"datapool/services/git@mine"}


def test_when_every_stack_is_live_nothing_stops(settings):
    world = World()
    for name in ("git", "photo", "reverseproxy"):
        world.policies[name] = {"consistency": "live"}
    report = orchestrator(settings, world).backup()
    assert report.ok and kinds(world, "stop") == [] and kinds(world, "start") == []
    assert report.downtime is None and sorted(report.live_stacks) == ["git", "photo", "reverseproxy"]


def test_data_no_backup_reaches_is_named_and_the_night_is_not_ok(settings):
    from management.stacks.coverage import COVERED, UNCOVERED, Coverage

    world = World()
    orch = orchestrator(settings, world)
    world.uncovered["photo"] = [Coverage("photo", "db", "volume pgdata", "/var/lib/postgresql/data", UNCOVERED,
                                         "docker volume on the OS disk", "make adopt SERVICE_NAME=photo"),
                                Coverage("photo", "app", "/x", "/data", COVERED, "dataset photo")]
    report = orch.backup()
    assert report.uncovered == {"photo": ["service 'db' volume pgdata -> /var/lib/postgresql/data: uncovered (docker "
                                          "volume on the OS disk); fix: make adopt SERVICE_NAME=photo"]}
    assert all(d.result == "ok" for d in report.datasets) and not report.ok  # every dataset is fine; the stack is not
    assert world.events.index(("coverage", ("git", "photo"))) < next(
        i for i, e in enumerate(world.events) if e[0] == "stop")  # read before the window


def test_a_stack_folder_no_listed_path_names_is_backed_up_with_a_dataset_made_for_it(tmp_path):
    services = tmp_path / "services"
    for name in ("git", "photo", "reverseproxy"):
        (services / name).mkdir(parents=True)
        (services / name / "compose.yaml").write_text("services: {}\n")
    settings = settings_with(tmp_path, f"LOCK_FILE={tmp_path}/lock\nSTATE_DIR={tmp_path}/state\nKEEP_LAST_SNAPSHOT=0\n"
                             f"VIEW_MOUNTPOINT={tmp_path}/views\n",
                             base=BASE.replace("SERVICES_DIR=/home/runner/services", f"SERVICES_DIR={services}"))
    assert settings.listed_services == ("git", "photo") and settings.services == ("git", "photo", "reverseproxy")

    class Views(World):
        def create_view(self, snap, view, path, readonly=True):
            path.mkdir(parents=True)
            super().create_view(snap, view, path, readonly)

    world = Views()

    class Copying(FakeRunner):
        def run(self, argv, **kw):
            if argv[0] in ("cp", "rm"):
                world.events.append((argv[0], argv[argv.index("--") + 1:] if argv[0] == "cp" else argv[-1]))
                subprocess.run(argv, check=True)
            return super().run(argv, **kw)

    report = BackupOrchestrator(RunContext(settings, Copying(), world, world, world, echo=lambda _: None)).backup()
    assert report.ok, report
    assert kinds(world, "create-dataset") == ["datapool/services/reverseproxy"]
    assert sorted(kinds(world, "create")) == ["git", "photo", "reverseproxy"]  # its folder has an archive
    assert world.events.index(("create-dataset", "datapool/services/reverseproxy")) < world.events.index(
        ("stop", "git"))
    # the stack folders are copied while the stacks are stopped, before the snapshot, by one cp (its
    # cost is downtime); the copies go into the views for borg, and are removed at the end
    copies = [(i, e[1]) for i, e in enumerate(world.events) if e[0] == "cp" and e[1][0].startswith(str(services))]
    snapshot = next(i for i, e in enumerate(world.events) if e[0] == "snapshot")
    last_stop = max(i for i, e in enumerate(world.events) if e[0] == "stop")
    first_start = min(i for i, e in enumerate(world.events) if e[0] == "start")
    [(at, folders)] = copies
    assert sorted(folders) == [str(services / n) for n in ("git", "photo", "reverseproxy")]
    assert last_stop < at < snapshot < first_start
    assert (tmp_path / "views" / "git" / ".orchestrator-stack" / "compose.yaml").read_text() == "services: {}\n"
    assert not list((tmp_path / "state" / "stack-copies").iterdir())


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


def test_an_unchanged_dataset_whose_archive_is_gone_from_the_repository_is_backed_up_in_full(keeping):
    from management.tools.borg import Listing

    world = World()
    world.written = {"datapool/services/git": 0, "datapool/services/photo": 0}
    orchestrator(keeping, world).backup()
    first = {s: e["archive"] for s, e in StateStore(keeping.state_dir).kept().items()}
    assert StateStore(keeping.state_dir).kept()["git"]["repository"] == "repo-id-1"
    world.events.clear()
    # git's repository still holds its archive; photo's was replaced by an empty one
    world.listings = {"git": Listing("repo-id-1", (first["git"],)), "photo": Listing("other-id", ())}
    report = orchestrator(keeping, world).backup()
    by = {d.service: d for d in report.datasets}
    assert by["git"].result == "unchanged" and by["git"].archives == 1  # counted from the repository
    assert by["photo"].result == "ok" and "is not the repository that held" in by["photo"].message
    assert kinds(world, "create") == ["photo"]
    world.listings = {"git": Listing("repo-id-1", ()), "photo": Listing("repo-id-1", (first["photo"],))}
    report = orchestrator(keeping, world).backup()
    assert "is not in" in {d.service: d for d in report.datasets}["git"].message


def test_a_local_repository_no_one_wrote_to_since_is_not_asked_again(keeping):
    """Nothing is asked of borg for a dataset that will not run: a local repository whose files
    say no one committed since this tool recorded it holds what the record says. A remote one
    (no fingerprint) is listed every night; a commit by anyone else means borg is asked again."""
    from management.tools.borg import Listing

    world = World()
    world.written = {"datapool/services/git": 0, "datapool/services/photo": 0}
    world.fingerprints = {"git": "gid:5"}  # photo's repository is remote: None
    world.listings = {s: Listing("repo-id-1", ()) for s in ("git", "photo")}
    orchestrator(keeping, world).backup()
    assert sorted(kinds(world, "list")) == ["git", "photo"]
    records = StateStore(keeping.state_dir).repositories()  # after its create
    assert records["git"] == {"fingerprint": "gid:5+", "repository": "repo-id-1", "archives": ["git-x"]}
    assert "photo" not in records

    world.events.clear()
    report = orchestrator(keeping, world).backup()
    assert kinds(world, "list") == ["photo"] and not kinds(world, "create")
    by = {d.service: d for d in report.datasets}
    assert by["git"].result == "unchanged" and by["git"].archives == 1  # counted from the record

    world.events.clear()
    world.fingerprints["git"] = "gid:9"  # someone else committed: a prune, a rollback, a new repository
    world.listings["git"] = Listing("repo-id-1", ())  # ... that left git's archive out
    report = orchestrator(keeping, world).backup()
    assert sorted(kinds(world, "list")) == ["git", "photo"] and kinds(world, "create") == ["git"]
    assert "is not in" in {d.service: d for d in report.datasets}["git"].message
    assert StateStore(keeping.state_dir).repositories()["git"]["fingerprint"] == "gid:9+"


def test_a_repository_listed_but_not_written_is_recorded_with_the_fingerprint_taken_before_the_listing(keeping):
    from management.tools.borg import Listing

    world = World()
    world.written = {"datapool/services/git": 0, "datapool/services/photo": 0}
    world.listings = {s: Listing("repo-id-1", ()) for s in ("git", "photo", "reverseproxy")}
    orchestrator(keeping, world).backup()  # no fingerprints yet: nothing recorded
    assert StateStore(keeping.state_dir).repositories() == {}
    world.fingerprints = {"git": "gid:1"}
    world.events.clear()
    orchestrator(keeping, world).backup()  # git unchanged, but listed: its record starts now
    assert kinds(world, "list") and not kinds(world, "create")
    assert StateStore(keeping.state_dir).repositories()["git"] == \
        {"fingerprint": "gid:1", "repository": "repo-id-1", "archives": ["git-x"]}


def test_init_repos_records_each_repository_so_the_first_night_lists_none(keeping):
    """`init-repos` records what it made (empty) or found (listed) with the fingerprint; the
    first night asks borg nothing before the window for those. A fingerprint that moved since
    (someone committed) is listed again (test above)."""
    from management.tools.borg import Listing

    world = World()
    world.listings = {"photo": Listing("repo-id-1", ("photo-old",))}
    world.missing = {"git"}
    world.fingerprints = {"photo": "pid:3"}
    cycle = orchestrator(keeping, world)
    assert [cycle.init_repo(s) for s in ("git", "photo")] == [True, False]
    assert kinds(world, "init") == ["git"] and kinds(world, "list") == ["git", "photo"]
    records = StateStore(keeping.state_dir).repositories()
    assert records == {"git": {"fingerprint": "git-new:1", "repository": "", "archives": []},
                       "photo": {"fingerprint": "pid:3", "repository": "repo-id-1", "archives": ["photo-old"]}}

    world.events.clear()
    world.listings = {}  # forgotten, as by a new process: only the records know
    report = orchestrator(keeping, world).backup()
    assert report.ok, report
    assert kinds(world, "list") == [] and sorted(kinds(world, "create")) == ["git", "photo"]
    records = StateStore(keeping.state_dir).repositories()
    assert records["git"] == {"fingerprint": "git-new:1+", "repository": "", "archives": ["git-x"]}
    assert records["photo"]["archives"] == ["photo-old", "photo-x"]


def test_init_repos_records_nothing_for_a_remote_repository_or_in_a_dry_run(keeping):
    from management.tools.borg import Listing

    world = World()
    world.listings = {"photo": Listing("repo-id-1", ())}  # photo is remote: no fingerprint
    world.missing = {"git"}
    orchestrator(keeping, world).init_repo("photo")
    assert StateStore(keeping.state_dir).repositories() == {}
    dry = BackupOrchestrator(RunContext(keeping, FakeRunner(dry_run=True), world, world, world, echo=lambda _: None))
    world.fingerprints = {"git": "x:1"}
    assert dry.init_repo("git") is True
    assert StateStore(keeping.state_dir).repositories() == {}


@pytest.mark.parametrize("previous, files, size, archive, newest, held", [
    (None, 10, 1000, "git-2033-01-02T00:00:00Z", None, None),
    ({"files": 100, "bytes": 10_000}, 90, 9_000, "git-2033-01-02T00:00:00Z", None, None),
    ({"files": 100, "bytes": 10_000}, 0, 0, "git-2033-01-02T00:00:00Z", None, "is empty; the one before held 100"),
    ({"files": 100, "bytes": 10_000}, 100, 4_000, "git-2033-01-02T00:00:00Z", None, "4000 bytes, 60% fewer"),
    ({"files": 100, "bytes": 10_000}, 40, 10_000, "git-2033-01-02T00:00:00Z", None, "40 files, 60% fewer"),
    (None, 10, 1000, "git-2033-01-01T00:00:00Z", "git-2033-01-02T00:00:00Z", "is the clock wrong"),
])
def test_the_prune_guard_holds_on_an_empty_shrunk_or_backdated_archive(previous, files, size, archive, newest, held):
    from management.cycles.backup import prune_hold

    reason = prune_hold(previous, files, size, archive, newest, 50)
    assert (reason is None) if held is None else (held in reason), reason
    assert prune_hold(previous, files, size, archive, newest, 0) is None  # off


def test_a_held_prune_keeps_every_archive_until_released(keeping):
    world = World()
    orchestrator(keeping, world).backup()
    state = StateStore(keeping.state_dir)
    counts = state.archive_counts()
    counts["photo"].update(files=1000, bytes=10_000_000)  # the night before held far more
    state.save_archive_counts(counts)
    world.events.clear()
    report = orchestrator(keeping, world).backup()
    assert not report.ok and list(report.held) == ["photo"] and "fewer" in report.held["photo"]
    assert kinds(world, "prune") == ["git"]
    world.events.clear()
    again = orchestrator(keeping, world).backup()  # held until a person says otherwise
    assert kinds(world, "prune") == ["git"] and "photo" in again.held
    assert state.release_prune("photo")["reason"] == report.held["photo"]
    world.events.clear()
    assert orchestrator(keeping, world).backup().ok and sorted(kinds(world, "prune")) == ["git", "photo"]


def test_a_hold_on_a_replaced_repository_is_dropped_with_a_note_and_a_new_one_records_its_repository(keeping):
    from management.tools.borg import Listing

    world = World()
    state = StateStore(keeping.state_dir)
    orchestrator(keeping, world).backup()
    counts = state.archive_counts()
    counts["photo"].update(files=1000, bytes=10_000_000)
    state.save_archive_counts(counts)
    held = orchestrator(keeping, world).backup()
    assert "photo" in held.held and state.prune_holds()["photo"]["repository"] == "repo-id-1"
    # the hold stays while its repository is the same one, holding its archive
    world.listings = {"photo": Listing("repo-id-1", (state.prune_holds()["photo"]["archive"],))}
    assert "photo" in orchestrator(keeping, world).backup().held
    # the repository was replaced (a new init): the hold names an archive that is no longer there
    world.listings = {"photo": Listing("new-repo-id", ())}
    world.events.clear()
    report = orchestrator(keeping, world).backup()
    assert "photo" not in report.held and "photo" not in state.prune_holds()
    assert "photo: prune hold dropped: it was set on repository repo-id-1, and the repository is now new-repo-id " \
           "(replaced)" in report.notes
    assert "photo" in kinds(world, "prune")
    # an older hold, without a repository id, whose archive is gone: dropped too
    state.save_prune_holds({"photo": {"reason": "x", "since": 1.0, "archive": "photo-gone"}})
    report = orchestrator(keeping, world).backup()
    assert "photo" not in report.held and any("photo-gone, is no longer in the repository" in n for n in report.notes)


def test_a_killed_runs_stack_copies_are_removed_with_the_last_snapshot_kept(keeping):
    left = keeping.state_dir / "stack-copies" / "orchestrator-20330101T000000Z" / "git"
    left.mkdir(parents=True)
    orch = orchestrator(keeping, World())
    removed = orch.cleanup_leftovers()
    assert str(left.parent) in removed
    assert ("rm", "-rf", "--one-file-system", "--", str(left.parent)) in orch.runner.argvs


def test_a_repository_nothing_was_pruned_from_yet_is_not_compacted_until_a_prune_removes_one(settings):
    """Its first nights: compact would free nothing. The schedule starts with the first prune
    that removes an archive; where the repository's listing is unknown, it compacts as due."""
    from management.tools.borg import Listing

    world = World()
    world.listings = {"git": Listing("id", ("git-1", "git-2")),
                      "photo": Listing("id", ("photo-1", "photo-2", "photo-3"))}
    orch = orchestrator(settings, world)
    orch.borg.listings = world.listings
    orch.backup()  # git: 3 archives, prune keeps 3 (the fake's): nothing removed; photo: 4 -> 3
    assert kinds(world, "compact") == ["photo"]
    world.events.clear()
    world.listings = {"git": Listing("id", ("git-1", "git-2", "git-3"))}
    orch = orchestrator(settings, world)
    orch.borg.listings = world.listings
    orch.backup()  # git: 4 -> 3, its first removal; photo's listing unknown and not due (7 days)
    assert kinds(world, "compact") == ["git"]


def test_an_append_only_night_never_prunes_or_compacts_and_says_so_once(tmp_path):
    from management.cycles.backup import APPEND_ONLY_NOTE
    from management.tools.borg import Listing

    s = settings_with(tmp_path, f"LOCK_FILE={tmp_path}/lock\nSTATE_DIR={tmp_path}/state\nHUB_SERVICE=reverseproxy\n"
                                "BORG_APPEND_ONLY=1\nBORG_COMPACT_EVERY_DAYS=0\n")
    world = World()
    world.listings = {"git": Listing("id", ("git-1", "git-2")), "photo": Listing("id", ())}
    orch = orchestrator(s, world)
    orch.borg.listings = world.listings
    report = orch.backup()
    assert report.ok and kinds(world, "create") and not kinds(world, "prune") and not kinds(world, "compact")
    assert report.notes.count(APPEND_ONLY_NOTE) == 1
    assert "prune/compact left to the trusted machine" in APPEND_ONLY_NOTE
    archives = {d.service: d.archives for d in report.datasets}
    assert archives["git"] == 3 and archives["photo"] == 1  # counted from the repository: it only grows


class Repos:
    """A fake borg for the trusted machine: archives per service with their stats."""

    def __init__(self, archives):
        self.archives = {svc: list(names) for svc, names in archives.items()}
        self.stats = {}  # archive -> (nfiles, size)
        self.events = []

    def list_archives(self, service):
        return [{"name": n} for n in self.archives[service]]

    def last_archives(self, service, last=2):
        stats = [(n, *self.stats.get(n, (10, 1000))) for n in self.archives[service][-last:]]
        return [{"name": n, "nfiles": files, "original_size": size} for n, files, size in stats]

    def prune(self, service):
        self.events.append(("prune", service))
        self.archives[service] = self.archives[service][-2:]  # the retention keeps two
        return 2

    def compact(self, service):
        self.events.append(("compact", service))


def trusted(settings, repos):
    from management.cycles.backup import TrustedPrune

    return TrustedPrune(RunContext(settings, FakeRunner(), None, None, repos, echo=lambda _: None))


def test_the_trusted_machine_prunes_and_compacts_and_holds_when_archives_vanished(keeping):
    repos = Repos({"git": ["git-1", "git-2", "git-3"], "photo": ["photo-1", "photo-2", "photo-3"]})
    report = trusted(keeping, repos).run(["git", "photo"])
    assert report.ok
    assert repos.events == [("prune", "git"), ("compact", "git"), ("prune", "photo"), ("compact", "photo")]
    assert StateStore(keeping.state_dir).trusted_kept() == {"git": ["git-2", "git-3"], "photo": ["photo-2", "photo-3"]}
    # the VM's key deleted photo's history (append-only: still recoverable until a compact)
    repos.archives["photo"] = ["photo-4"]
    repos.archives["git"].append("git-4")
    repos.events.clear()
    report = trusted(keeping, repos).run(["git", "photo"])
    assert not report.ok and list(report.held) == ["photo"] and "2 archive(s) the last trusted prune kept are gone" \
        in report.held["photo"]
    assert ("prune", "photo") not in repos.events and ("compact", "photo") not in repos.events
    assert ("prune", "git") in repos.events
    repos.events.clear()
    assert "photo" in trusted(keeping, repos).run(["photo"]).held and repos.events == []  # held until released
    StateStore(keeping.state_dir).release_prune("photo")  # the loss was meant (or rolled back and accepted)
    assert trusted(keeping, repos).run(["photo"]).ok and ("compact", "photo") in repos.events


def test_the_trusted_prune_keeps_the_prune_guard(keeping, monkeypatch):
    from management.monitoring import notify

    sent = []
    monkeypatch.setattr(notify, "send", lambda urls, message, mask: sent.append(message))
    repos = Repos({"git": ["git-1", "git-2"]})
    repos.stats = {"git-1": (1000, 10_000_000), "git-2": (0, 0)}  # emptied
    orch = trusted(keeping, repos)
    orch.s = dataclasses.replace(orch.s, notify_urls=("json://localhost/x",))
    report = orch.run(["git"])
    assert "git" in report.held and "empty" in report.held["git"] and repos.events == []
    assert StateStore(keeping.state_dir).prune_holds()["git"]["reason"] == report.held["git"]
    [message] = sent  # the trusted machine says it loudly, as the night does
    assert not message.ok and "1 held" in message.title and "prune held: git:" in message.body


def test_the_trusted_prune_compares_every_night_it_missed(keeping):
    repos = Repos({"git": ["git-1", "git-2"]})
    assert trusted(keeping, repos).run(["git"]).ok  # keeps git-1, git-2
    repos.archives["git"] += ["git-3", "git-4", "git-5"]  # three nights while the trusted machine was off
    repos.stats = {"git-3": (0, 0), "git-4": (0, 0), "git-5": (0, 0)}  # emptied on the first of them
    repos.events.clear()
    report = trusted(keeping, repos).run(["git"])
    assert "git-3 is empty" in report.held["git"] and repos.events == []


# -- what changed each night, and the mass-change guard -------------------------------------------


def test_a_nights_changes_are_counted_from_what_borg_create_said():
    from management.cycles.backup import night_changes

    # 1,000 files before; borg listed 20 added and 30 modified; the archive holds 1,005 files, 5 of
    # them the stack folder's: 1,000 + 20 - 1,000 = 20 deleted
    assert night_changes(20, 30, 1005, 5, 1000, 4096) == {"added": 20, "modified": 30, "deleted": 20,
                                                           "files": 1000, "bytes": 4096}
    assert night_changes(1000, 0, 1000, 0, None, 1)["deleted"] is None  # the first night: nothing before
    assert night_changes(None, None, 10, 0, 10, 0) is None  # a dry run: borg said nothing
    assert night_changes(0, 0, 900, 0, 800, 0)["deleted"] == 0  # never negative (a count from an older tool)


def test_the_baseline_is_the_last_archive_and_the_guard_held_nights_do_not_raise_the_bar():
    from management.cycles.backup import change_baseline

    nights = [{"files": 10, "changed": {"modified": 5, "deleted": 1, "files": 10}},
              {"files": 10, "changed": {"modified": 900, "deleted": 0, "files": 10, "held": True}},
              {"files": 12, "changed": {"modified": 2, "deleted": None, "files": 11}},
              {"files": None, "result": "failed"}]
    assert change_baseline(nights) == (11, [6, 2])
    assert change_baseline([{"files": 10}]) == (None, [])  # a night before this record existed
    assert change_baseline([]) == (None, [])


@pytest.mark.parametrize("changed, before, past, tripped", [
    ({"added": 0, "modified": 4812, "deleted": 0}, 5000, [], "mass change: 4,812 of 5,000 files modified"),
    ({"added": 31, "modified": 31, "deleted": 31}, 62, [], None),  # under the floor: 62 < 100
    ({"added": 0, "modified": 2400, "deleted": 200}, 5000, [], "2,400 of 5,000 files modified, 200 deleted"),
    ({"added": 0, "modified": 2000, "deleted": 0}, 5000, [], None),  # 40%: under 50%
    ({"added": 0, "modified": 1500, "deleted": 0}, 50000, [20, 140, 3], "over 10 times the most"),
    ({"added": 0, "modified": 1300, "deleted": 0}, 50000, [20, 140, 3], None),  # 10 x 140 = 1,400
    ({"added": 0, "modified": 900, "deleted": 0}, 50000, [0, 0], None),  # the bar is never under the floor
    ({"added": 2000, "modified": 0, "deleted": 0}, 5000, [0], None),  # an import of 2,000 photos
    ({"added": 0, "modified": 4812, "deleted": 0}, None, [], None),  # nothing known before, no history
])
def test_the_mass_change_guard_rule(changed, before, past, tripped):
    from management.cycles.backup import mass_change

    why = mass_change(changed, before, past, percent=50, factor=10, floor=100)
    assert (why is None) if tripped is None else (why is not None and tripped in why), why
    assert mass_change(changed, before, past, percent=0, factor=0, floor=100) is None  # both rules off


def test_the_guard_floor_and_its_rules_can_be_moved():
    from management.cycles.backup import mass_change

    changed = {"added": 31, "modified": 31, "deleted": 31}
    assert "mass change: 31 of 62 files modified, 31 deleted, 31 added (over 50% of its files)" == \
        mass_change(changed, 62, [], percent=50, factor=10, floor=10)
    assert mass_change(changed, 62, [], percent=100, factor=10, floor=10) is None


def mass_world(settings, **extra):
    """photo with 1,000 files over two nights: the second rewrote them all, ransomware-style (half
    renamed: 500 added, 500 modified, 500 deleted)."""
    world = World()
    world.changes = {"photo": {"nfiles": 1000, "added": 1000, "modified": 0}}
    return world


def test_a_mass_change_archives_holds_the_prune_keeps_the_snapshot_before_and_is_not_ok(keeping):
    state = StateStore(keeping.state_dir)
    world = mass_world(keeping)
    orch, first = run_nights(keeping, world, 1)
    assert first.ok and state.nights()["photo"][-1]["changed"] == {"added": 1000, "modified": 0, "deleted": None,
                                                                   "files": 1000, "bytes": 10}
    before = orch.kept()["photo"]
    world.changes["photo"] = {"nfiles": 1000, "added": 500, "modified": 500}
    world.events.clear()
    _, night = run_nights(keeping, world, 1)
    photo = next(d for d in night.datasets if d.service == "photo")
    assert kinds(world, "create") == ["git", "photo"]  # the night still archives
    assert kinds(world, "prune") == ["git"]  # photo's prune is held
    assert not night.ok and photo.result == "warning" and "mass change: 500 of 1,000 files modified" in photo.message
    assert night.mass_changes["photo"] == {"text": night.held["photo"],
                                           "archive": before["archive"], "snapshot": before["snapshot"]}
    hold = state.prune_holds()["photo"]
    assert hold["mass_change"]["snapshot"] == before["snapshot"] and hold["reason"].startswith("mass change: ")
    assert f"datapool/services/photo@{before['snapshot']}" in world.snaps  # the version before stays
    assert state.nights()["photo"][-1]["changed"]["held"] is True
    # the next night changes little: still held, the snapshot before still kept (also through a leftover cleanup)
    world.changes["photo"] = {"nfiles": 1000, "added": 0, "modified": 3}
    _, third = run_nights(keeping, world, 1)
    assert "photo" in third.held and not third.mass_changes and not third.ok
    assert f"datapool/services/photo@{before['snapshot']}" in world.snaps
    assert state.prune_holds()["photo"]["mass_change"]["snapshot"] == before["snapshot"]  # the first one's
    # released: prune again, and the snapshot before goes with the next night's cleanup
    assert state.release_prune("photo")
    world.events.clear()
    _, fourth = run_nights(keeping, world, 1)
    assert fourth.ok and "photo" in kinds(world, "prune")
    assert f"datapool/services/photo@{before['snapshot']}" not in world.snaps


def test_the_night_after_a_restore_is_not_weighed_by_the_guard_and_says_why(keeping):
    """A restore gives every file it brings back a new inode and ctime: borg lists them all as
    modified (63 of 63 in the lab). The night after a restore-safety snapshot newer than the last
    night is not weighed; one made before the last night does not spare the next."""
    state = StateStore(keeping.state_dir)
    world = mass_world(keeping)
    run_nights(keeping, world, 1)
    last_night = state.nights()["photo"][-1]["time"]
    world.snaps.add("datapool/services/photo@restore-safety-20261105T120000Z")
    world.created["datapool/services/photo@restore-safety-20261105T120000Z"] = int(last_night) + 3600
    world.changes["photo"] = {"nfiles": 1000, "added": 0, "modified": 1000}
    _, night = run_nights(keeping, world, 1)
    photo = next(d for d in night.datasets if d.service == "photo")
    assert night.ok and not night.held and not night.mass_changes, night
    assert "not weighed by the mass-change guard: restored since the last night " \
           "(restore-safety-20261105T120000Z)" in photo.message and "1,000 of 1,000 files modified" in photo.message
    assert "held" not in state.nights()["photo"][-1]["changed"] and state.nights()["photo"][-1]["changed"]["restored"]
    from management.cycles.backup import change_baseline
    assert change_baseline(state.nights()["photo"])[1] == [0]  # the restore's 1,000 do not raise the bar
    # the same rewrite a night later, with no restore since: held
    _, after = run_nights(keeping, world, 1)
    assert "photo" in after.mass_changes and not after.ok


def test_restored_since_takes_only_restore_safety_snapshots_made_after_the_last_night():
    from management.cycles.backup import restored_since
    from management.tools.zfs import Snapshot
    snaps = [Snapshot("p/photo@restore-safety-20261101T000000Z", 100, 0),
             Snapshot("p/photo@orchestrator-20261102T000000Z", 300, 0),
             Snapshot("p/photo@restore-safety-20261103T000000Z-2", 500, 0)]
    assert restored_since(snaps, 400.5) == "restore-safety-20261103T000000Z-2"
    assert restored_since(snaps, 600) is None and restored_since(snaps, None) is None
    assert restored_since(snaps[:2], 200) is None  # a history snapshot is not a restore


def test_the_snapshot_before_a_mass_change_is_kept_out_of_history_thinning(tmp_path):
    settings = settings_with(tmp_path, f"LOCK_FILE={tmp_path}/lock\nSTATE_DIR={tmp_path}/state\n"
                                       "HUB_SERVICE=reverseproxy\nSNAPSHOT_RETENTION=daily=1\n")
    state = StateStore(settings.state_dir)
    world = mass_world(settings)
    run_nights(settings, world, 1)
    world.changes["photo"] = {"nfiles": 1000, "added": 0, "modified": 2}
    run_nights(settings, world, 1)  # daily=1: only the newest night stays (and the kept one, the same)
    assert len([s for s in world.snaps if s.startswith("datapool/services/photo@")]) == 1
    before = state.kept()["photo"]["snapshot"]
    world.changes["photo"] = {"nfiles": 1000, "added": 0, "modified": 990}
    _, night = run_nights(settings, world, 1)
    assert "photo" in night.mass_changes and night.mass_changes["photo"]["snapshot"] == before
    for _ in range(2):  # later nights thin the history: the snapshot before stays
        world.changes["photo"] = {"nfiles": 1000, "added": 0, "modified": 1}
        run_nights(settings, world, 1)
        assert f"datapool/services/photo@{before}" in world.snaps
        assert before in {p["snapshot"] for p in state.history()["photo"]}
    state.release_prune("photo")
    run_nights(settings, world, 1)
    assert f"datapool/services/photo@{before}" not in world.snaps


def test_a_stack_that_rewrites_on_purpose_declares_its_limit_or_turns_the_guard_off(keeping):
    world = mass_world(keeping)
    world.policies["photo"] = {"mass-change": {"limit": "off", "reason": "re-encodes every night"}}
    run_nights(keeping, world, 1)
    world.changes["photo"] = {"nfiles": 1000, "added": 0, "modified": 1000}
    _, night = run_nights(keeping, world, 1)
    assert night.ok and not night.held
    world.policies["photo"] = {"mass-change": {"limit": 90, "reason": "thumbnails rebuilt"}}
    world.changes["photo"] = {"nfiles": 1000, "added": 0, "modified": 850}
    _, night = run_nights(keeping, world, 1)
    assert night.ok and not night.held
    world.changes["photo"] = {"nfiles": 1000, "added": 0, "modified": 950}
    _, night = run_nights(keeping, world, 1)
    assert "photo" in night.mass_changes and "declared limit 90%: thumbnails rebuilt" in night.held["photo"]
    # a declaration with a problem is noted, and the default applies
    StateStore(keeping.state_dir).release_prune("photo")
    world.policies["photo"] = {"mass-change": {"limit": "sometimes"}}
    world.changes["photo"] = {"nfiles": 1000, "added": 0, "modified": 600}
    _, night = run_nights(keeping, world, 1)
    assert "photo" in night.mass_changes
    assert any("mass-change.limit: 'sometimes'" in n and "CHANGE_GUARD_PERCENT applies" in n for n in night.notes)


def test_the_notification_gives_the_counts_and_the_commands_that_bring_the_version_before_back(keeping):
    from management.monitoring.notify import backup_message

    world = mass_world(keeping)
    orch, _ = run_nights(keeping, world, 1)
    before = orch.kept()["photo"]
    world.changes["photo"] = {"nfiles": 1000, "added": 500, "modified": 500}
    _, night = run_nights(keeping, world, 1)
    message = backup_message(night)
    assert not message.ok and "photo: mass change" in message.title
    assert "mass change: photo: 500 of 1,000 files modified, 500 deleted, 500 added" in message.body
    assert f"make restore SERVICE_NAME=photo ARCHIVE_NAME={before['archive']}" in message.body
    assert f"make restore-path SERVICE_NAME=photo FILE=<path> WHEN={before['snapshot']}" in message.body
