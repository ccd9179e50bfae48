"""What must hold after every step, whatever the faults did. Each check returns the violations
it found as sentences (empty: it holds)."""

from __future__ import annotations

import fcntl
import json
import subprocess
import time
from pathlib import Path

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
