"""What must hold after every step, whatever the faults did. Each check returns the violations
it found as sentences (empty: it holds)."""

from __future__ import annotations

import fcntl
import json
import subprocess
import time
from pathlib import Path

from management.config import load_settings
from management.cycles.history import snapshot_time, thin
from management.state import HISTORY, StateStore
from tests.chaos.world import Run, World
from tests.lab.conftest import our_snapshots, views_left
from tests.lab.envfile import LAB_PASSPHRASE

GOOD = ("ok", "warning", "unchanged")


def stacks(world: World, before: set[str], runs: list[Run], crashed: bool) -> list[str]:
    """Every stack that ran before runs, or a run said which did not (and failed)."""
    deadline = time.monotonic() + 30  # a restarted dockerd brings `unless-stopped` containers back
    while (missing := before - world.cycle.containers()) and time.monotonic() < deadline:
        time.sleep(1)
    if not missing or crashed:
        return []
    prefix = world.cycle.prefix
    out = []
    for name in sorted(missing):
        service = name[len(prefix):].replace("central_hub", "reverseproxy").partition("-db")[0]
        said = [r for r in runs if r.code not in (0, None) and service in r.output]
        if not said:
            out.append(f"stack {service} ran before the step and does not now, and no failed run named it")
    return out


def leftovers(world: World, networks: set[str], crashed: bool) -> list[str]:
    """No snapshot beyond the kept and history ones, no view or scratch dataset, no lock held,
    no mount, container or network the tool made for the run. After a crash the next night
    must clear them (the heal check), so they are not counted here."""
    if crashed:
        return []
    v = world.cycle.values
    out = []
    # which snapshots are kept is in kept_snapshots.json and history.json: while the campaign has
    # one of them cut in half, the night after (which owes everything) is the check
    if not any(Path(p).name in ("kept_snapshots.json", "history.json") for p in broken_by_campaign(world)):
        if left := our_snapshots(world.cycle.parent, v["STATE_DIR"]):
            out.append(f"snapshots left: {left}")
    if left := views_left(v["VIEW_DATASET"]):
        out.append(f"view or scratch datasets left: {left}")
    if _lock_held(Path(v["LOCK_FILE"])):
        out.append(f"the run lock {v['LOCK_FILE']} is still held")
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
              if line.split()[1].startswith((str(world.root), v["VIEW_MOUNTPOINT"]))]
    if mounts:
        out.append(f"mounts left: {mounts}")
    names = subprocess.run(["docker", "ps", "-a", "--format", "{{.Names}}"], capture_output=True, text=True,
                           timeout=60).stdout.split()
    stack_names = world.stack_containers()
    if extra := [n for n in names if n.startswith(world.cycle.prefix) and n not in stack_names]:
        out.append(f"containers left: {extra}")
    if extra := sorted(current_networks(world) - networks):
        out.append(f"networks left: {extra}")
    copies = Path(v["STATE_DIR"]) / "stack-copies"
    if copies.is_dir() and any(copies.iterdir()):
        out.append(f"stack copies left: {sorted(p.name for p in copies.iterdir())}")
    return out


def current_networks(world: World) -> set[str]:
    names = subprocess.run(["docker", "network", "ls", "--format", "{{.Name}}"], capture_output=True, text=True,
                           timeout=60).stdout.split()
    return {n for n in names if world.cycle.prefix in n}


def _lock_held(path: Path) -> bool:
    if not path.exists():
        return False
    with path.open("a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
    return False


def broken_by_campaign(world: World) -> list[str]:
    """The state files the campaign cut that no run has written since."""
    for name, mtime in list(world.truncated.items()):
        path = Path(name)
        if not path.exists() or path.stat().st_mtime != mtime:
            del world.truncated[name]
    return list(world.truncated)


def state_files(world: World) -> list[str]:
    """Every state file parses, but one the campaign broke that no run has written since."""
    out = []
    broken = broken_by_campaign(world)
    for path in sorted(Path(world.cycle.values["STATE_DIR"]).rglob("*.json")):
        if str(path) in broken:
            continue
        try:
            json.loads(path.read_text())
        except ValueError as exc:
            out.append(f"state file {path.name} does not parse: {exc}")
    return out


def secrets(world: World, runs: list[Run]) -> list[str]:
    """The passphrase is in no output, no command line (the calls log) and no state file."""
    out = [f"the passphrase in the output of `{' '.join(r.args)}`" for r in runs if LAB_PASSPHRASE in r.output]
    if world.calls.is_file() and LAB_PASSPHRASE in world.calls.read_text(errors="replace"):
        out.append("the passphrase in a command line")
    for path in Path(world.cycle.values["STATE_DIR"]).rglob("*"):
        if path.is_file() and LAB_PASSPHRASE.encode() in path.read_bytes():
            out.append(f"the passphrase in state file {path}")
    return out


def no_traceback(runs: list[Run]) -> list[str]:
    return [f"`{' '.join(r.args)}` died with a traceback:\n{r.output[-1500:]}"
            for r in runs if "Traceback (most recent call last)" in r.output]


def archives_equal_snapshots(world: World, run: Run) -> tuple[list[str], Run | None]:
    """Every archive the run reported made equals its snapshot: a drill of those services."""
    made = sorted({d["service"] for d in run.json().get("datasets", []) if d.get("archive")
                   and d.get("result") in GOOD})
    if not made:
        return [], None
    drill = world.run("drill", "--json", *made)
    if drill.code != 0:
        return [f"the drill of {made} after the run that made their archives failed:\n{drill.output[-2000:]}"], drill
    return [], drill


def healed(run: Run) -> list[str]:
    """The clean night after a fault is OK for every service."""
    report = run.json()
    bad = [f"{d['service']}: {d['result']} {d.get('message', '')}".strip()
           for d in report.get("datasets", []) if d.get("result") not in GOOD]
    if run.code != 0 or bad or not report.get("datasets"):
        return [f"the clean night after the fault is not OK (exit {run.code}): {bad}\n{run.output[-2500:]}"]
    return []


def lost_points(known: dict[str, float], before: set[str], after: set[str], recorded_after: dict[str, float] | None,
                policy: dict[str, str], said: str, nows: list[float], prefix: str = "orchestrator") -> list[str]:
    """The local restore points of one service a step lost: `known` (its history's points, name ->
    time, as last read whole) that were on the pool before the step (`before`) and are not after
    (`after`), though SNAPSHOT_RETENTION keeps them (under any of `nows`: the clock may have been
    moved) and no run's output (`said`) names them as removed for a nearly full pool.
    `recorded_after` is the history after the step (None: it does not parse)."""
    gone = sorted(n for n in known if n in before and n not in after)
    if not gone:
        return []
    candidates = dict(known)
    if recorded_after is not None:
        candidates.update(recorded_after)
    else:  # cut short: what is on the pool is what the tool rebuilds it from
        candidates.update({n: t for n in after if (t := snapshot_time(prefix, n)) is not None})
    stays = [thin(list(candidates.items()), policy, now) for now in nows]
    return [n for n in gone if all(n in stay for stay in stays) and n not in said]


class RestorePoints:
    """Local restore points never shrink but by SNAPSHOT_RETENTION, or by the room a nearly full
    pool needs (which the run names). It remembers the history as last read whole, so that a
    history.json the campaign cut in half hides no loss: the loss it would have hidden (every
    point taken for a leftover) is the one this check was written for."""

    def __init__(self, world: World):
        self.world = world
        settings, _ = load_settings(world.cycle.env_path)
        self.policy = settings.snapshot_retention
        self.prefix = settings.snapshot_prefix
        self.parent = settings.zfs_parent_dataset
        self.known: dict[str, dict[str, float]] = {}
        self.before: dict[str, set[str]] = {}
        self.remember()

    def _history(self) -> dict[str, dict[str, float]] | None:
        """service -> {snapshot: time}, read by the tool's own reader; None while it does not parse."""
        store = StateStore(Path(self.world.cycle.values["STATE_DIR"]))
        if store.unreadable(HISTORY):
            return None
        return {svc: {p.snapshot: p.time for p in points} for svc, points in store.history().items()}

    def _pool(self) -> dict[str, set[str]]:
        out = subprocess.run(["zfs", "list", "-H", "-o", "name", "-t", "snapshot", "-r", self.parent],
                             capture_output=True, text=True, timeout=120).stdout.split()
        pool: dict[str, set[str]] = {}
        for full in out:
            dataset, _, name = full.partition("@")
            if name.startswith(self.prefix + "-") and dataset.startswith(self.parent + "/"):
                pool.setdefault(dataset[len(self.parent) + 1:], set()).add(name)
        return pool

    def remember(self) -> None:
        history = self._history()
        if history is not None:
            self.known = history

    def start(self) -> None:
        """Before the step's operation: what is on the pool."""
        self.before = self._pool()

    def check(self, runs: list[Run], crashed: bool) -> list[str]:
        """After a crash the run could not say what a full pool made it remove: not counted
        (the night after owes everything, as for the leftovers)."""
        if crashed:
            self.remember()
            return []
        after = self._pool()
        recorded = self._history()
        said = "\n".join(r.output for r in runs)
        now = time.time()
        out = []
        for service, points in sorted(self.known.items()):
            nows = [now, max(points.values(), default=now)]
            lost = lost_points(points, self.before.get(service, set()), after.get(service, set()),
                               None if recorded is None else recorded.get(service, {}), self.policy, said, nows,
                               self.prefix)
            if lost:
                out.append(f"{service}: local restore point(s) {lost} are gone, though SNAPSHOT_RETENTION "
                           f"({self.policy}) keeps them and no run said the pool's fill removed them")
        self.remember()
        return out
