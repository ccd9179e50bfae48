"""The cycle as a whole: the preflight, the repositories' records, coverage, init-repos."""

import subprocess

from management.cycles.backup import BackupOrchestrator
from management.cycles.context import RunContext
from management.results import FAILED, OK
from management.state import RepositoryRecord, StateStore
from tests.fakes import FakeRunner
from tests.unit.config.test_load import BASE, settings_with
from tests.unit.cycles.backup.world import (
    World,
    kinds,
    orchestrator,
)


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
    assert records["git"] == RepositoryRecord("gid:5+", "repo-id-1", ("git-x",))
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
    assert StateStore(keeping.state_dir).repositories()["git"].fingerprint == "gid:9+"


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
    assert StateStore(keeping.state_dir).repositories()["git"] == RepositoryRecord("gid:1", "repo-id-1", ("git-x",))


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
    assert records == {"git": RepositoryRecord("git-new:1", "", ()),
                       "photo": RepositoryRecord("pid:3", "repo-id-1", ("photo-old",))}

    world.events.clear()
    world.listings = {}  # forgotten, as by a new process: only the records know
    report = orchestrator(keeping, world).backup()
    assert report.ok, report
    assert kinds(world, "list") == [] and sorted(kinds(world, "create")) == ["git", "photo"]
    records = StateStore(keeping.state_dir).repositories()
    assert records["git"] == RepositoryRecord("git-new:1+", "", ("git-x",))
    assert records["photo"].archives == ("photo-old", "photo-x")


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
