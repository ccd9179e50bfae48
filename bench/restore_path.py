#!/usr/bin/env python3
"""make bench-restore (its first table): one file back, against borg and a whole restore doing
the same in the same run, printed as one markdown table (docs/restore.md quotes it).

    restore_path.py [--files 20000] [--size-mb 2048] [--target-mb 5] [--nights 30] [--runs 3]

One spoke behind the hub, its dataset seeded with --files files (mostly small, a few large) of
--size-mb in all, and a --target-mb file rewritten every night for --nights nights (one archive a
night, kept: BORG_RETENTION=within=1d). Then, medians over --runs:

  (a) the target deleted, `restore-path` without WHEN: last night's snapshot (a copy);
  (b) `restore-path WHEN=<the newest archive>` with no local snapshot left: only that path is
      extracted from it;
  (c) the same from the archive --nights old;
  floors, in the same run: `borg extract ARCHIVE PATH` alone for (b) and (c), `borg extract` of
  the whole archive, and `make restore` of the whole service.

Needs root and the lab (`tests/lab/lab.sh up`); everything it makes carries a unique prefix and
is removed at the end. Nothing is asserted: it prints what it measured, with each goal.
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

from management.config import load_settings  # noqa: E402
from management.runner import Runner  # noqa: E402
from management.tools.borg import BorgBackupRepoManager  # noqa: E402
from tests.conftest import lab_from_env  # noqa: E402
from tests.lab.conftest import build_cycle, teardown_cycle  # noqa: E402
from tests.lab.envfile import run_cli  # noqa: E402

SERVICE = "photo"
TARGET = "data/album/target.bin"


def log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def timed(argv_or_fn, *, env=None, cwd=None) -> float:
    t0 = time.monotonic()
    if callable(argv_or_fn):
        argv_or_fn()
    else:
        r = subprocess.run(argv_or_fn, capture_output=True, text=True, env=env, cwd=cwd, timeout=7200)
        if r.returncode not in (0, 1):
            raise SystemExit(f"bench: {' '.join(argv_or_fn)} failed:\n{r.stdout}{r.stderr}")
    return time.monotonic() - t0


def cli(cyc, *args: str) -> subprocess.CompletedProcess:
    r = run_cli(cyc.env_path, *args, timeout=7200)
    if r.returncode != 0:
        raise SystemExit(f"bench: {' '.join(args)} failed:\n{r.stdout}{r.stderr}")
    return r


def seed(root: Path, files: int, size_mb: int) -> None:
    """Mostly small files, a few large ones: 1% of the files hold half of the bytes."""
    rng = random.Random(11)
    total = size_mb * 1024 * 1024
    large = max(1, files // 100)
    small_size = max(1, (total // 2) // max(1, files - large))
    large_size = (total // 2) // large
    chunk = os.urandom(large_size)
    for i in range(files):
        path = root / "library" / f"d{i % 200:03d}" / f"f{i:06d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        if i % 100 == 0:
            path.write_bytes(chunk[: large_size - rng.randint(0, 1024)] + os.urandom(1024))
        else:
            path.write_bytes(os.urandom(rng.randint(small_size // 2, small_size * 3 // 2)))
    for p in [root, *root.rglob("*")]:
        os.lchown(p, 100999, 100999)


def borg_env(cyc) -> tuple[dict[str, str], str]:
    settings, _ = load_settings(cyc.env_path)
    borg = BorgBackupRepoManager(settings, Runner())
    return {**os.environ, **borg.env()}, borg.repo(SERVICE)


def destroy_history(cyc) -> None:
    """No local snapshot of the dataset left (as with SNAPSHOT_RETENTION=off after the pool was
    rebuilt): every restore point is an archive."""
    dataset = f"{cyc.parent}/{SERVICE}"
    out = subprocess.run(["zfs", "list", "-H", "-t", "snapshot", "-o", "name", "-r", dataset], capture_output=True,
                         text=True, check=True).stdout.split()
    for snap in out:
        subprocess.run(["zfs", "destroy", snap], check=True, capture_output=True, timeout=300)
    state = Path(cyc.values["STATE_DIR"])
    for name in ("history.json", "kept_snapshots.json"):
        (state / name).unlink(missing_ok=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=20000)
    ap.add_argument("--size-mb", type=int, default=2048)
    ap.add_argument("--target-mb", type=int, default=5)
    ap.add_argument("--nights", type=int, default=30)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    lab = lab_from_env()
    m: dict[str, list[float]] = {}

    def add(key: str, value: float) -> None:
        m.setdefault(key, []).append(value)

    with tempfile.TemporaryDirectory(prefix="bench-restore-path-") as tmp:
        cyc = build_cycle(lab, Path(tmp), spokes=[SERVICE],
                          extra={"SNAPSHOT_RETENTION": "within=1d", "BORG_RETENTION": "within=1d",
                                 "PRUNE_GUARD_SHRINK": "0", "BORG_TIMEOUT": "86400", "COMMAND_TIMEOUT": "3600"})
        try:
            data = cyc.base / SERVICE / "data"
            log(f"seeding {a.files} files, {a.size_mb} MB")
            seed(data, a.files, a.size_mb)
            target = cyc.base / SERVICE / TARGET
            target.parent.mkdir(parents=True, exist_ok=True)
            archives = []
            for n in range(a.nights):
                target.write_bytes(os.urandom(a.target_mb * 1024 * 1024))
                os.lchown(target, 100999, 100999)
                time.sleep(1.1)
                t0 = time.monotonic()
                report = json.loads(cli(cyc, "backup", "--json").stdout)
                archives.append(next(d["archive"] for d in report["datasets"] if d["service"] == SERVICE))
                log(f"night {n + 1}/{a.nights}: {time.monotonic() - t0:.1f}s ({archives[-1]})")
            env, repo = borg_env(cyc)
            for i in range(a.runs):
                log(f"run {i + 1}/{a.runs}: (a) from last night's snapshot")
                target.unlink()
                add("a", timed(lambda: cli(cyc, "restore-path", "--yes", SERVICE, TARGET)))
            destroy_history(cyc)  # (b), (c) and the floors read archives only
            for i in range(a.runs):
                log(f"run {i + 1}/{a.runs}: (b), (c) and borg alone")
                for key, archive in (("b", archives[-1]), ("c", archives[0])):
                    add(key, timed(lambda arc=archive: cli(cyc, "restore-path", "--yes", "--when", arc, SERVICE,
                                                           TARGET)))
                    with tempfile.TemporaryDirectory(prefix="extract-", dir=tmp) as out:
                        add(f"{key}-floor", timed(["borg", "extract", "--numeric-ids", "--sparse",
                                                   f"{repo}::{archive}", f"pp:{TARGET}"], env=env, cwd=out))
            log("the whole archive, borg alone")
            with tempfile.TemporaryDirectory(prefix="extract-all-", dir=tmp) as out:
                add("whole", timed(["borg", "extract", "--numeric-ids", "--sparse", f"{repo}::{archives[-1]}"],
                                   env=env, cwd=out))
            log("the whole service, make restore")
            add("restore", timed(lambda: cli(cyc, "restore", "--yes", SERVICE, archives[-1])))
        finally:
            teardown_cycle(cyc)

    med = {k: statistics.median(v) for k, v in m.items()}
    rows = [
        ("(a) last night's snapshot", med["a"], None, "≤ 1 s", med["a"] <= 1.0),
        ("(b) the newest archive", med["b"], med["b-floor"], "≤ 1.2× borg extract PATH alone",
         med["b"] <= 1.2 * med["b-floor"]),
        (f"(c) the archive {a.nights} nights old", med["c"], med["c-floor"], "≤ 1.2× borg extract PATH alone",
         med["c"] <= 1.2 * med["c-floor"]),
    ]
    print(f"One {a.target_mb} MB file back from a dataset of {a.files} files, {a.size_mb} MB, {a.nights} nightly "
          f"archives; medians of {a.runs} run(s), seconds, zfs-fuse lab, repository over ssh on loopback.")
    print()
    print("| restore-path of one file from | measured | floor (same run) | ratio | goal | result |")
    print("|---|---|---|---|---|---|")
    for what, value, floor, goal, ok in rows:
        ratio = f"{value / floor:.2f}" if floor else "-"
        print(f"| {what} | {value:.2f} | {f'{floor:.2f}' if floor else '-'} | {ratio} | {goal} | "
              f"{'PASS' if ok else 'MISS'} |")
    print(f"| side by side: `borg extract` of the whole archive | {med['whole']:.2f} | | | | |")
    print(f"| side by side: `make restore` of the whole service | {med['restore']:.2f} | | | | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
