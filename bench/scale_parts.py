#!/usr/bin/env python3
"""Issue 38, the parts that need no lab: how the tool's own walks, state files and `versions`
timeline grow with files (2,000 / 20,000 / 200,000) and stacks (1 / 10 / 100). Prints markdown.

    scale_parts.py [--sizes 2000,20000,200000] [--stacks 1,10,100] [--root /var/tmp/wip38-scale]
                   [--runs 3] [--profile] [--keep]

Runs no zfs, docker or borg. Synthetic trees (mostly files of 0-512 bytes, 1 in 200 of 64 KiB,
100 per folder, 100 folders per parent) are written under --root and removed at the end (unless
--keep). Each function runs in its own child process, --runs times: the table shows the median
wall time, the time per 1,000 entries (flat = linear) and the child's peak RSS (ru_maxrss) minus
the RSS it had after its imports. The page cache is warm (the trees were just written): a cold
walk on zfs-fuse needs the lab.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path, PurePosixPath

HERE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HERE))

BIG_EVERY = 200
BIG = 64 * 1024


def make_tree(root: Path, n: int, seed: int = 1) -> None:
    rnd = random.Random(seed)
    blob = os.urandom(BIG)
    for i in range(n):
        folder = root / f"a{i // 10000:03d}" / f"b{i // 100:05d}"
        if i % 100 == 0:
            folder.mkdir(parents=True, exist_ok=True)
        size = BIG if i % BIG_EVERY == 0 else rnd.randrange(0, 513)
        with open(folder / f"f{i:07d}.jpg", "wb") as fh:
            fh.write(blob[:size])
    os.symlink("a000/b00000/f0000000.jpg", root / "link")


def rss_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


# -- the functions under test (child side) ----------------------------------------------------

def _fn(name: str, tree: Path, copy: Path):
    from management.cycles.timetravel import version_at
    from management.host.storage import wrong_owner_entries
    from management.stacks.trees import compare_trees, stack_manifest, tree_manifest, walk

    return {
        "walk": lambda: sum(1 for _ in walk(tree)),
        "tree_manifest": lambda: tree_manifest(tree, time.time() + 10),
        "stack_manifest": lambda: len(stack_manifest(tree, b"k" * 32)),
        "compare_trees": lambda: compare_trees(tree, copy).entries,
        "version_at(folder)": lambda: version_at(tree.parent, PurePosixPath(tree.name)).entries,
        "wrong_owner_entries": lambda: len(wrong_owner_entries(tree, os.getuid(), os.getgid())),
    }[name]


def child(name: str, tree: Path, copy: Path, runs: int, profile: bool) -> None:
    fn = _fn(name, tree, copy)
    base = rss_kb()
    if profile:
        prof = cProfile.Profile()
        prof.enable()
        fn()
        prof.disable()
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(8)
        print(json.dumps({"profile": out.getvalue()}))
        return
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    print(json.dumps({"median": statistics.median(times), "base_kb": base, "peak_kb": rss_kb()}))


def in_child(name: str, tree: Path, copy: Path, runs: int, profile: bool = False) -> dict:
    argv = [sys.executable, __file__, "--child", name, str(tree), str(copy), str(runs)] + (["--profile"] if profile
                                                                                          else [])
    out = subprocess.run(argv, check=True, capture_output=True, text=True, cwd=HERE).stdout
    return json.loads(out.strip().splitlines()[-1])


FUNCS = ["walk", "tree_manifest", "compare_trees", "stack_manifest", "version_at(folder)", "wrong_owner_entries"]


def files_table(root: Path, sizes: list[int], runs: int, profile: bool) -> list[str]:
    rows = ["| function | files | median s | ms per 1,000 entries | peak RSS MB (over base) |",
            "|---|---:|---:|---:|---:|"]
    profiles = []
    for n in sizes:
        tree, copy = root / f"tree-{n}", root / f"copy-{n}"
        t = time.perf_counter()
        make_tree(tree, n)
        built = time.perf_counter() - t
        t = time.perf_counter()
        subprocess.run(["cp", "-a", str(tree), str(copy)], check=True)
        copied = time.perf_counter() - t
        entries = n + n // 100 + n // 10000 + (1 if n % 10000 else 0) + 1
        print(f"# built {n} files in {built:.1f} s, cp -a in {copied:.1f} s (a floor for a plain copy)",
              file=sys.stderr)
        rows.append(f"| (floor) cp -a of the tree | {n:,} | {copied:.2f} | {1000 * copied / entries:.3f} | - |")
        for name in FUNCS:
            r = in_child(name, tree, copy, runs)
            rows.append(f"| {name} | {n:,} | {r['median']:.3f} | {1000 * r['median'] / entries:.3f} | "
                        f"{r['peak_kb'] / 1024:.1f} (+{(r['peak_kb'] - r['base_kb']) / 1024:.1f}) |")
            print(rows[-1], file=sys.stderr)
        if profile and n == max(sizes):
            for name in ("tree_manifest", "compare_trees"):
                profiles.append((name, n, in_child(name, tree, copy, 1, profile=True)["profile"]))
        shutil.rmtree(tree)
        shutil.rmtree(copy)
    out = rows
    for name, n, text in profiles:
        out += ["", f"cProfile of {name} at {n:,} files (tottime):", "", "```", *_trim(text), "```"]
    return out


def _trim(text: str) -> list[str]:
    lines = [ln.rstrip() for ln in text.splitlines() if ln.strip()]
    start = next((i for i, ln in enumerate(lines) if ln.lstrip().startswith("ncalls")), 0)
    return [lines[0].strip(), *lines[start:start + 9]]


# -- state files -------------------------------------------------------------------------------

def _state_cases(store, services: list[str], history_points: int) -> list[tuple]:
    """(label, records, fill, load, save, file name) per state file, at its largest for `services`."""
    from management.state import NIGHTS_KEPT, Changed, HistoryPoint, Kept, MassChange, Night, PruneHold

    n = len(services)
    manifest = {f"f{j}": f"file 644 0 0 123 '' {'ab' * 20}" for j in range(8)}
    kept = {s: Kept(f"orchestrator-2026120{i % 9}", f"{s}-2026-12-07", "ab" * 32, manifest, "cd" * 32)
            for i, s in enumerate(services)}
    history = {s: [HistoryPoint(f"orchestrator-{k:05d}", 1.7e9 + 3600 * k, "consistent", f"{s}-{k}")
                   for k in range(history_points)] for s in services}
    holds = {s: PruneHold("mass change", 1.7e9, f"{s}-x", "cd" * 32,
                           MassChange("12% of files", f"{s}-x", "orchestrator-1")) for s in services}

    def nights_save():
        for k in range(NIGHTS_KEPT):
            store.add_nights({s: Night(1.7e9 + 86400 * k, "OK", 1 << 30, 1 << 20, 200000, 120.0, 0,
                                       Changed(1, 2, 3, 200000, 1 << 20)) for s in services})

    return [
        ("nights.json (NIGHTS_KEPT=30)", NIGHTS_KEPT * n, nights_save, store.nights,
         lambda: store.add_nights({s: Night(1.7e9, "OK") for s in services}), "nights.json"),
        (f"history.json ({history_points} points)", history_points * n, lambda: store.save_history(history),
         store.history, lambda: store.save_history(history), "history.json"),
        ("kept_snapshots.json (8-file stack manifest)", n, lambda: store.save_kept(kept), store.kept,
         lambda: store.save_kept(kept), "kept_snapshots.json"),
        ("prune_holds.json", n, lambda: store.save_prune_holds(holds), store.prune_holds,
         lambda: store.save_prune_holds(holds), "prune_holds.json"),
    ]


def _night_record_row(store, services: list[str], runs: int) -> str:
    """A backup night's state record at the end of the run (publish: last_success, archives,
    nights), on top of NIGHTS_KEPT nights of every service."""
    from management.monitoring.publish import BackupOutcome
    from management.results import OK, DatasetResult, RunReport

    report = RunReport(started_at=0.0, datasets=[DatasetResult(s, OK, archives=30, nfiles=200000, duration=1.0)
                                                 for s in services])
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        BackupOutcome(report).record(store, 1.8e9)
        times.append(time.perf_counter() - t)
    m = statistics.median(times)
    return f"| a night's record (BackupOutcome.record: 3 files) | {len(services)} | - | - | - | {1000 * m:.2f} | - |"


def state_table(root: Path, stacks_list: list[int], runs: int, history_points: int) -> list[str]:
    from management.state import StateStore

    rows = ["| state file | stacks | records | bytes | load ms | save ms | load per stack x stacks ms |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    for n in stacks_list:
        d = Path(tempfile.mkdtemp(dir=root, prefix=f"state-{n}-"))
        store = StateStore(d)
        services = [f"svc{i:03d}" for i in range(n)]
        cases = _state_cases(store, services, history_points)
        for label, records, fill, load, save, fname in cases:
            fill()
            loads, saves = [], []
            for _ in range(runs):
                t = time.perf_counter()
                load()
                loads.append(time.perf_counter() - t)
                t = time.perf_counter()
                save()
                saves.append(time.perf_counter() - t)
            lm, sm = statistics.median(loads), statistics.median(saves)
            rows.append(f"| {label} | {n} | {records:,} | {(d / fname).stat().st_size:,} | {1000 * lm:.2f} | "
                        f"{1000 * sm:.2f} | {1000 * lm * n:.1f} |")
        rows.append(_night_record_row(store, services, runs))
        shutil.rmtree(d)
    return rows


# -- the versions timeline (fakes: no zfs, no borg) ---------------------------------------------

def versions_table(root: Path, runs: int) -> list[str]:
    from management.cycles.context import RunContext
    from management.cycles.timetravel import TimeTravel
    from management.runner import Runner
    from management.state import HistoryPoint
    from management.tools.zfs import Snapshot
    from tests.unit.config.test_load import BASE, settings_with

    class Fakes:
        def __init__(self, points: int, archives: int, files: int):
            self.points, self.archives = points, archives
            self.items = [{"path": "data", "type": "d", "mtime": "2026-01-01T00:00:00", "size": 0}] + [
                {"path": f"data/f{i}", "type": "-", "mtime": "2026-01-01T00:00:00", "size": 100}
                for i in range(files)]

        def snapshots(self, dataset):
            return [Snapshot(f"{dataset}@orchestrator-{k:05d}", 1_800_000_000 + k, 0) for k in range(self.points)]

        def list_archives(self, service):
            return [{"name": f"git-old-{k:05d}", "time": "2020-01-01T00:00:00"} for k in range(self.archives)]

        def list_path(self, service, archive, path):
            return self.items if path == "data" else self.items[1:2]

        def exists(self, name):
            return False

    rows = ["| path | local snapshots | archives without one | files in the path | median s | "
            "µs per (point x file) |", "|---|---:|---:|---:|---:|---:|"]
    base = Path(tempfile.mkdtemp(dir=root, prefix="versions-"))
    for points, archives, files in [(10, 10, 100), (100, 100, 100), (10, 10, 2000), (100, 100, 2000),
                                    (100, 100, 20000)]:
        case = base / f"{points}-{files}"
        pool = case / "pool"
        mountpoint = pool / "git"
        shared = case / "snapshot-tree"
        (shared / "data").mkdir(parents=True)
        for i in range(files):
            (shared / "data" / f"f{i}").write_bytes(b"x" * 100)
        (mountpoint / ".zfs" / "snapshot").mkdir(parents=True)
        shutil.copytree(shared / "data", mountpoint / "data")
        for k in range(points):  # every snapshot the same tree (a symlinked root; the path below is checked)
            os.symlink(shared, mountpoint / ".zfs" / "snapshot" / f"orchestrator-{k:05d}")
        text = BASE.replace("ZFS_BASE_MOUNTPOINT=/datapool/services", f"ZFS_BASE_MOUNTPOINT={pool}")
        settings = settings_with(case, f"LOCK_FILE={case}/lock\nSTATE_DIR={case}/state\n", text)
        fakes = Fakes(points, archives, files)
        ctx = RunContext(settings, Runner(), fakes, None, fakes, echo=lambda _: None)
        ctx.state.save_history({"git": [HistoryPoint(f"orchestrator-{k:05d}", 1.8e9 + k, "consistent", f"git-{k}")
                                        for k in range(points)]})
        travel = TimeTravel(ctx)
        for path in ("data/f1", "data"):
            times = []
            for _ in range(runs):
                t = time.perf_counter()
                travel.versions("git", path).lines()
                times.append(time.perf_counter() - t)
            m = statistics.median(times)
            per = files if path == "data" else 1
            rows.append(f"| {path} | {points} | {archives} | {per:,} | {m:.3f} | "
                        f"{1e6 * m / ((points + archives) * per):.2f} |")
        shutil.rmtree(case)
    shutil.rmtree(base)
    return rows


# -- per-stack compose models and docker calls (a fake runner: no docker) -----------------------

def stacks_table(root: Path, stacks_list: list[int], runs: int) -> list[str]:
    """What `check-stacks`, `status` (its docker part) and the window ask compose and docker at
    N stacks, counted from the argv a fake runner sees, and the tool's own Python time around
    them (compose's answers cost nothing here: the lab measures `docker compose config`)."""
    from management.runner import Result
    from management.state import StateStore
    from management.tools.compose import DockerComposeManager
    from tests.fakes import FakeRunner
    from tests.unit.config.test_load import BASE, settings_with
    from tests.unit.stacks.test_rules import hub_model, spoke_model, stack_dir

    class Counting(FakeRunner):
        """Answers by verb, in O(1): the model of each stack, every container at once."""

        def __init__(self, models: dict[str, str]):
            super().__init__()
            self.models = models

        def run(self, argv, **kw):
            argv = tuple(str(a) for a in argv)
            self.calls.append(type("C", (), {"argv": argv})())
            if argv[:2] == ("docker", "compose") and "config" in argv:
                return Result(argv, 0, self.models[argv[3]])
            if argv[:2] == ("docker", "compose") and argv[2:3] == ("version",):
                return Result(argv, 0, "Docker Compose version v2.29.0")
            if argv[:2] == ("docker", "ps") and "--format" in argv:
                return Result(argv, 0, "".join(f"id-{n}\t{n}\n" for n in self.models))
            if argv[:2] == ("docker", "ps"):
                return Result(argv, 0, f"id-{argv[-1].rsplit('=', 1)[-1]}\n")
            if argv[:2] == ("docker", "inspect"):
                return Result(argv, 0, "".join(f"/{i[3:]}-app\trunning\tnone\t0\n" for i in argv[4:]))
            if argv[:3] == ("docker", "network", "ls"):  # every external network exists already
                return Result(argv, 0, "".join(f"{n}_net\n" for n in self.models))
            return Result(argv, 0, "")

    def verb(argv) -> str:
        if argv[:2] == ("docker", "compose"):
            return f"compose {argv[4] if len(argv) > 4 else argv[2]}"
        return " ".join(argv[:2])

    rows = ["| command (fake docker) | stacks | compose `config` per stack | docker/compose processes | "
            "processes per stack | tool's Python s |", "|---|---:|---:|---:|---:|---:|"]
    for n in stacks_list:
        case = Path(tempfile.mkdtemp(dir=root, prefix=f"stacks-{n}-"))
        services = case / "services"
        spokes = [f"s{i:03d}" for i in range(max(0, n - 1))]
        models = {"reverseproxy": hub_model(nets=tuple(f"{s}_net" for s in spokes) or ("none_net",))}
        for s in spokes:
            models[s] = spoke_model(s, f"{s}_net", f"{s}_app")
        caddy = "".join(f"{s}.lan {{\n\treverse_proxy {s}_app:80\n}}\n" for s in spokes)
        for name, model in models.items():
            stack_dir(services, name, model, caddy if name == "reverseproxy" else None)
        settings = settings_with(case, "HUB_SERVICE=reverseproxy\nCOMPOSE_PARALLEL=4\n",
                                 base=BASE.replace("SERVICES_DIR=/home/runner/services", f"SERVICES_DIR={services}"))
        answers = {k: json.dumps(v) for k, v in models.items()}

        def check_stacks(d):
            d.check(), d.accepted(), d.coverage(), d.discover_names()

        def status(d):
            d.status(), d.coverage(d.discover_names())

        def window(d):
            d.stop(None), d.start(None)

        store = StateStore(case / "state")
        for label, fn, kept in (("check-stacks", check_stacks, False),
                                ("check-stacks, the models kept (nothing changed)", check_stacks, True),
                                ("status (docker and compose part)", status, False),
                                ("status, the models kept (nothing changed)", status, True),
                                ("window: stop + start", window, False)):
            times, calls = [], []
            for i in range(runs + kept):
                runner = Counting(answers)
                runner.base_env = {"PATH": os.environ.get("PATH", os.defpath)}  # docker, for the models' key
                d = DockerComposeManager(settings, runner, None, echo=lambda _m: None, models=store if kept else None)
                t = time.perf_counter()
                fn(d)
                if kept and i == 0:
                    continue  # the first run keeps the models: the ones after are measured
                times.append(time.perf_counter() - t)
                calls = [verb(c.argv) for c in runner.calls]
            configs = calls.count("compose config")
            rows.append(f"| {label} | {n} | {configs / n:.0f} | {len(calls)} | {len(calls) / n:.2f} | "
                        f"{statistics.median(times):.3f} |")
        shutil.rmtree(case)
    return rows


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _, _, name, tree, copy, runs, *rest = sys.argv
        child(name, Path(tree), Path(copy), int(runs), "--profile" in rest)
        return
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="2000,20000,200000")
    p.add_argument("--stacks", default="1,10,100")
    p.add_argument("--history-points", type=int, default=60)
    p.add_argument("--root", default="/var/tmp/wip38-scale")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--profile", action="store_true")
    p.add_argument("--only", choices=["files", "state", "stacks", "versions"])
    p.add_argument("--keep", action="store_true")
    a = p.parse_args()
    root = Path(a.root)
    root.mkdir(parents=True, exist_ok=True)
    try:
        out = []
        if a.only in (None, "files"):
            out += ["## Walks, by files", ""] + files_table(root, [int(x) for x in a.sizes.split(",")], a.runs,
                                                            a.profile) + [""]
        if a.only in (None, "state"):
            out += ["## State files, by stacks", ""] + state_table(root, [int(x) for x in a.stacks.split(",")],
                                                                  a.runs, a.history_points) + [""]
        if a.only in (None, "stacks"):
            out += ["## Compose and docker per stack (fake runner)", ""] + stacks_table(
                root, [int(x) for x in a.stacks.split(",")], a.runs) + [""]
        if a.only in (None, "versions"):
            out += ["## `versions` timeline (fake zfs and borg)", ""] + versions_table(root, a.runs) + [""]
        print("\n".join(out))
    finally:
        if not a.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
