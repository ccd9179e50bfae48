"""The fake world the backup cycle's tests run in: fake managers that record the order of events."""

import math
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from management.cycles.backup import BackupOrchestrator
from management.cycles.context import RunContext
from management.errors import CommandError
from tests.fakes import FakeRunner


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
        self.last_run = 0.0  # when the last run on this world started (orchestrator())
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
        if self.fail.get("snapshot") == "made":  # killed after ZFS took it
            self.snaps.add(f"{dataset}@{name}")
            self.snaps |= {f"{d}@{name}" for d in self.datasets if recursive and d.startswith(dataset + "/")}
            raise CommandError("zfs snapshot", -9, "")
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

    def clear_leftovers(self, parent):
        left = self.list_views(parent)
        for view in left:
            self.destroy_view(view)
        return left

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


def orchestrator(settings, world):
    """A run on `world`, starting in a second of its own: a night takes seconds and ZFS refuses a
    second snapshot of one name, so two nights never share one. Two runs of a test within one
    second would (this fake allows it), and a night would then drop the snapshot an earlier one
    kept: a test that passed or failed by where the second boundary fell (one in six, loaded)."""
    start = max(time.time(), math.floor(world.last_run) + 1.0)
    world.last_run = start
    t0 = time.monotonic()
    return BackupOrchestrator(RunContext(settings, FakeRunner(), world, world, world, echo=lambda _: None,
                                         clock=lambda: start + (time.monotonic() - t0)))


def kinds(world, kind):
    return [e[1] for e in world.events if e[0] == kind]


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


def mass_world(settings, **extra):
    """photo with 1,000 files over two nights: the second rewrote them all, ransomware-style (half
    renamed: 500 added, 500 modified, 500 deleted)."""
    world = World()
    world.changes = {"photo": {"nfiles": 1000, "added": 1000, "modified": 0}}
    return world
