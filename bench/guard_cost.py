#!/usr/bin/env python3
"""make bench-guard: what the mass-change guard costs a night, against the night it rides on,
printed as one markdown table (docs/performance.md quotes it).

    guard_cost.py [--files 20000] [--size-mb 400] [--runs 3]

The guard reads nothing of its own: its counts come from the per-file lines borg create prints
(`--list --filter=AME`, parsed as they stream by the tool's StderrReader), then a few integer
comparisons and one small state file. So its cost is (1) what those lines cost borg, and (2)
what parsing them costs the tool. Both are measured here, on a dataset of --files files (mostly
small, a few large; bench/restore_path.py's seed) behind the hub, for two nights:

  1%   one file in a hundred rewritten (an ordinary night);
  all  every file rewritten (the ransomware night: the most lines borg can print).

For each: the tool's own night (`backup --json`, wall), then, on a clone of the same snapshot at
a fixed path, `borg create` into two repositories that hold the same archives and caches, one
with the tool's argv and one without `--list --filter=AME` (order alternated): (1) is their
difference. (2) is the StderrReader over the lines the first printed. Medians over --runs.

Needs root and the lab (`tests/lab/lab.sh up`); everything it makes carries a unique prefix and
is removed at the end. Nothing is asserted: it prints what it measured, with the goal.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from restore_path import cli, log, seed  # noqa: E402 - beside this file

from management.runner import Runner  # noqa: E402
from management.tools.borg import StderrReader, create_argv  # noqa: E402
from management.tools.zfs import ZFSManager  # noqa: E402
from tests.conftest import lab_from_env  # noqa: E402
from tests.lab.conftest import build_cycle, teardown_cycle  # noqa: E402

SERVICE = "photo"
GOAL = 0.05  # of the night


def borg(argv: list[str], env: dict, cwd: Path | None = None) -> subprocess.CompletedProcess:
    r = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd, timeout=7200)
    if r.returncode not in (0, 1):
        raise SystemExit(f"bench: {' '.join(argv)} failed:\n{r.stdout}{r.stderr[-3000:]}")
    return r


def rewrite(files: list[Path], fraction: float, rng: random.Random) -> None:
    """`fraction` of the files rewritten in place with new bytes of the same size."""
    for path in rng.sample(files, max(1, int(len(files) * fraction))):
        size = path.stat().st_size
        path.write_bytes(os.urandom(size))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=20000)
    ap.add_argument("--size-mb", type=int, default=400)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    lab = lab_from_env()
    rng = random.Random(5)
    m: dict[str, list[float]] = {}
    lines: dict[str, int] = {}

    def add(key: str, value: float) -> None:
        m.setdefault(key, []).append(value)

    with tempfile.TemporaryDirectory(prefix="bench-guard-") as tmp:
        cyc = build_cycle(lab, Path(tmp), spokes=[SERVICE],
                          extra={"CHANGE_GUARD_PERCENT": "0", "CHANGE_GUARD_FACTOR": "0",  # never held: 3 runs
                                 "PRUNE_GUARD_SHRINK": "0", "BORG_TIMEOUT": "86400", "COMMAND_TIMEOUT": "3600"})
        dataset = f"{cyc.parent}/{SERVICE}"
        clone, mnt = f"{cyc.parent}-guardbench", Path(tmp) / "snapshot"
        env = {**os.environ, "BORG_PASSPHRASE": "bench-only", "BORG_BASE_DIR": str(Path(tmp) / "borg"),
               "BORG_RELOCATED_REPO_ACCESS_IS_OK": "yes", "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK": "yes"}
        repos = {"with": Path(tmp) / "with", "without": Path(tmp) / "without"}
        zfs = ZFSManager(Runner())

        def on_snapshot(name: str, fn) -> None:
            """A clone of dataset@name at the same path every time (borg's files cache keys on it)."""
            subprocess.run(["zfs", "snapshot", f"{dataset}@{name}"], check=True, timeout=300)
            subprocess.run(["zfs", "clone", "-o", f"mountpoint={mnt}", f"{dataset}@{name}", clone], check=True,
                           timeout=300)
            try:
                fn()
            finally:
                zfs.destroy_view(clone)  # unmounted first, and a busy answer retried, as the tool does
                subprocess.run(["zfs", "destroy", f"{dataset}@{name}"], check=True, timeout=300)

        def creates(key: str, n: int) -> None:
            order = ("with", "without") if n % 2 == 0 else ("without", "with")
            for which in order:
                argv = create_argv(str(repos[which]), f"{SERVICE}-{key.rstrip('%')}-{n}", compression="lz4",
                                   excludes=None)
                if which == "without":
                    argv = [x for x in argv if x not in ("--list", "--filter=AME")]
                t0 = time.monotonic()
                r = borg(argv, env, cwd=mnt)
                add(f"{key}-{which}", time.monotonic() - t0)
                if which == "with":
                    reader = StderrReader()
                    t0 = time.monotonic()
                    for line in r.stderr.splitlines():
                        reader(line)
                    add(f"{key}-parse", time.monotonic() - t0)
                    lines[key] = reader.listed

        try:
            data = cyc.base / SERVICE / "data"
            log(f"seeding {a.files} files, {a.size_mb} MB")
            seed(data, a.files, a.size_mb)
            files = sorted(p for p in data.rglob("*") if p.is_file())
            for repo in repos.values():
                borg(["borg", "init", "--encryption=repokey-blake2", str(repo)], env)
            time.sleep(1.1)
            log("first night: the tool, then both repositories")
            cli(cyc, "backup", "--json")
            on_snapshot("guardbench-0", lambda: creates("first", 0))
            for n in range(1, a.runs + 1):
                for key, fraction in (("1%", 0.01), ("all", 1.0)):
                    log(f"run {n}/{a.runs}: {key} of the files rewritten")
                    rewrite(files, fraction, rng)
                    time.sleep(1.1)  # zfs-fuse's 1-second ctimes: not the second borg last saw
                    t0 = time.monotonic()
                    report = json.loads(cli(cyc, "backup", "--json").stdout)
                    add(f"{key}-night", time.monotonic() - t0)
                    photo = next(d for d in report["datasets"] if d["service"] == SERVICE)
                    log(f"  night {m[f'{key}-night'][-1]:.1f}s, changed {photo.get('changed')}")
                    on_snapshot(f"guardbench-{key.rstrip('%')}-{n}", lambda k=key, i=n: creates(k, i))
        finally:
            if zfs.exists(clone):
                zfs.destroy_view(clone)
            teardown_cycle(cyc)

    med = {k: statistics.median(v) for k, v in m.items()}
    print(f"The mass-change guard's cost on a dataset of {a.files:,} files, {a.size_mb} MB; medians of {a.runs} "
          "run(s), seconds, zfs-fuse lab, the tool's repository over ssh on loopback.")
    print()
    print("| night | the tool's night | borg create with / without the per-file lines | parsing them | "
          "the guard's cost | share of the night | goal | result |")
    print("|---|---|---|---|---|---|---|---|")
    for key, what in (("1%", "1% of the files rewritten"), ("all", "every file rewritten")):
        listing = max(0.0, med[f"{key}-with"] - med[f"{key}-without"])
        cost = listing + med[f"{key}-parse"]
        share = cost / med[f"{key}-night"]
        print(f"| {what} ({lines.get(key, 0):,} lines) | {med[f'{key}-night']:.2f} | {med[f'{key}-with']:.2f} / "
              f"{med[f'{key}-without']:.2f} | {med[f'{key}-parse']:.3f} | {cost:.2f} | {share:.1%} | "
              f"≤ {GOAL:.0%} | {'PASS' if share <= GOAL else 'MISS'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
