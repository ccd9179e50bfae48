#!/usr/bin/env python3
"""make bench-scale: what the tool costs as files and stacks grow, each cost beside the tool it
drives doing the same work alone in the same run (the floor), printed as markdown tables with
PASS or MISS against the goals of issue 38 (docs/performance.md, "Scale", quotes a run).

    scale.py [--files 2000,20000,200000] [--kb-per-file 20] [--stacks 1,10,100] [--only files|stacks]
             [--pool-gb 24] [--runs 2]

Files (one spoke whose dataset holds N files: mostly small, 1 in 100 large, --kb-per-file on
average), on a zfs-fuse pool of its own (--pool-gb, a sparse file; the lab's is 6 GB):
  the tool's first night, then borg create alone into a repository of its own, from a clone of the
  same snapshot (a stable path, so borg's files cache serves its second night as it serves the
  tool's); 1 % of the files rewritten, the same pair again; a night with nothing changed (its wall
  minus its window) against the change walk alone on a clone of the same data (`find` printing
  every entry's stat, cold, then the tool's tree_manifest); `restore` of the whole service against
  `borg extract` of the same archive alone onto the same pool; `restore-path` of one file from the
  newest archive (no local snapshot left) against `borg extract PATH` alone; one `zfs snapshot -r`
  and one `zfs get -r`. The tool's peak RSS is its own process's VmHWM (borg's are borg's),
  polled.
Stacks (N small spokes behind the hub, on the lab's pool):
  `status` and `check-stacks` (median of --runs); a night with nothing changed and its window
  (stop issued .. every stack healthy again) against bare `docker compose` stopping every stack
  at once, then `up -d --wait` of every stack at once (median of --runs each, alternating).

Each floor runs right after the tool's run it is compared with, on caches that run warmed: the
floor has the easier order. Needs root and the lab (`tests/lab/lab.sh up`); everything it makes
carries a unique prefix and is removed at the end, its pool too.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from management.config import load_settings  # noqa: E402
from management.runner import Runner  # noqa: E402
from management.stacks.trees import tree_manifest  # noqa: E402
from management.tools.borg import BorgBackupRepoManager  # noqa: E402
from tests.conftest import lab_from_env  # noqa: E402
from tests.lab.conftest import build_cycle, teardown_cycle  # noqa: E402
from tests.lab.envfile import cli_argv  # noqa: E402

SERVICE = "photo"
WORK = Path("/var/tmp/orchestrator-bench-scale")
APP_UID = 100999


def log(msg: str) -> None:
    print(f"bench-scale: {msg}", file=sys.stderr, flush=True)


def sh(argv: list[str], *, cwd: str | Path | None = None, env: dict | None = None,
       timeout: float = 7200) -> subprocess.CompletedProcess:
    r = subprocess.run(argv, capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout)
    if r.returncode != 0 and not (argv[0] == "borg" and r.returncode == 1):  # borg's 1 is a warning
        raise SystemExit(f"bench-scale: {' '.join(argv)} failed ({r.returncode}):\n"
                         f"{r.stdout[-2000:]}{r.stderr[-2000:]}")
    return r


def timed(fn) -> float:
    t0 = time.monotonic()
    fn()
    return time.monotonic() - t0


def tool(cyc, *args: str) -> tuple[float, float, subprocess.CompletedProcess]:
    """(wall s, peak RSS MB of the tool's own process, result): VmHWM is a high-water mark, so
    its last reading before the process ends is the peak."""
    t0 = time.monotonic()
    proc = subprocess.Popen(cli_argv(cyc.env_path, *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = [0]

    def poll() -> None:
        status = Path(f"/proc/{proc.pid}/status")
        while proc.poll() is None:
            try:
                for line in status.read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak[0] = max(peak[0], int(line.split()[1]))
            except (OSError, ValueError):
                pass
            time.sleep(0.05)

    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    out, err = proc.communicate(timeout=7200)
    wall = time.monotonic() - t0
    watcher.join()
    r = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    if r.returncode != 0:
        raise SystemExit(f"bench-scale: {' '.join(args)} failed ({r.returncode}):\n{out[-3000:]}{err[-3000:]}")
    return wall, peak[0] / 1024, r


def night(cyc) -> tuple[float, float, float, dict]:
    """A backup of every service: (wall, window, RSS MB, report)."""
    wall, rss, r = tool(cyc, "backup", "--json")
    report = json.loads(r.stdout)
    return wall, report.get("downtime") or 0.0, rss, report


def archive_of(report: dict, service: str = SERVICE) -> str:
    return next(d["archive"] for d in report["datasets"] if d["service"] == service)


def seed(root: Path, files: int, kb_per_file: int) -> list[Path]:
    """Mostly small files, 1 in 100 large: the large hold half of the bytes."""
    rng = random.Random(38)
    total = files * kb_per_file * 1024
    large = max(1, files // 100)
    small = max(1, (total // 2) // max(1, files - large))
    big = (total // 2) // large
    block = os.urandom(big + 4096)
    paths = []
    for i in range(files):
        path = root / "library" / f"d{i // 1000:03d}" / f"f{i:06d}.bin"
        if i % 1000 == 0:
            path.parent.mkdir(parents=True, exist_ok=True)
        if i % 100 == 0:
            off = rng.randint(0, 4096)
            path.write_bytes(block[off:off + big - 1024] + os.urandom(1024))
        else:
            path.write_bytes(os.urandom(rng.randint(small // 2, small * 3 // 2)))
        paths.append(path)
    for p in [root, *root.rglob("*")]:
        os.lchown(p, APP_UID, APP_UID)
    return paths


def rewrite(paths: list[Path], fraction: float) -> int:
    rng = random.Random(len(paths))
    chosen = rng.sample(paths, max(1, int(len(paths) * fraction)))
    for p in chosen:
        p.write_bytes(os.urandom(p.stat().st_size or 1))
    return len(chosen)


def zfs_floors(parent: str) -> tuple[float, float]:
    """One `zfs snapshot -r` of the tree (then destroyed), one `zfs get -r` of every dataset."""
    snap = f"{parent}@bench-scale-floor"
    t_snap = timed(lambda: sh(["zfs", "snapshot", "-r", snap]))
    sh(["zfs", "destroy", "-r", snap])
    t_get = timed(lambda: sh(["zfs", "get", "-H", "-p", "-r", "-o", "name,value", "used", parent]))
    return t_snap, t_get


def destroy(dataset: str) -> None:
    """A dataset of the bench's (and what is below it) destroyed. zfs-fuse calls a dataset busy
    for a moment after a process that read it ended (borg extract): unmount, then retry, bounded."""
    subprocess.run(["zfs", "unmount", "-f", dataset], capture_output=True, timeout=120)
    for _ in range(20):
        if subprocess.run(["zfs", "destroy", "-r", dataset], capture_output=True, timeout=600).returncode == 0:
            return
        time.sleep(0.5)
    raise SystemExit(f"bench-scale: cannot destroy {dataset}")


def walk_floors(cyc, mountpoint: Path) -> tuple[float, float]:
    """What a quiet night on zfs-fuse must do per dataset, alone: stat every entry of a clone of
    the data (zfs-fuse has no `written@`). Two timings on the same clone: `find -printf` of every
    entry's stat, and the tool's own tree_manifest in this process."""
    snap = f"{cyc.parent}/{SERVICE}@bench-scale-walk"
    sh(["zfs", "snapshot", snap])
    try:
        with Clone(cyc.parent.split("/")[0], f"{cyc.prefix}-walk", mountpoint) as clone:
            root = clone.at(snap)
            find = timed(lambda: sh(["find", ".", "-printf", "%i %m %U %G %s %T@ %C@ %p\\n"], cwd=root))
            own = timed(lambda: tree_manifest(root, time.time()))
    finally:
        sh(["zfs", "destroy", snap])
    return find, own


class BorgAlone:
    """borg create / extract without the tool, into a repository of its own next to the tool's."""

    def __init__(self, cyc):
        settings, _ = load_settings(cyc.env_path)
        borg = BorgBackupRepoManager(settings, Runner())
        self.env = {**os.environ, **borg.env()}
        self.compression = settings.borg_compression
        self.repo = borg.repo(SERVICE)
        self.floor_repo = f"{cyc.values['BORG_REPO_BASE_PATH']}/zz-floor"
        sh(["borg", "init", "--encryption=repokey-blake2", "--make-parent-dirs", self.floor_repo], env=self.env)
        self.n = 0

    def create(self, cwd: Path) -> float:
        self.n += 1
        return timed(lambda: sh(["borg", "create", "--numeric-ids", "--one-file-system",
                                 f"--compression={self.compression}", f"{self.floor_repo}::floor-{self.n}", "."],
                                cwd=cwd, env=self.env))

    def extract(self, archive: str, cwd: Path, *paths: str) -> float:
        return timed(lambda: sh(["borg", "extract", "--numeric-ids", "--sparse", f"{self.repo}::{archive}",
                                 *(f"pp:{p}" for p in paths)], cwd=cwd, env=self.env))


class Clone:
    """A snapshot read where borg alone reads it: a clone at one stable path (zfs-fuse has no .zfs)."""

    def __init__(self, pool: str, prefix: str, mountpoint: Path):
        self.dataset, self.mountpoint = f"{pool}/{prefix}-floorview", mountpoint

    def __enter__(self):
        return self

    def at(self, snapshot: str) -> Path:
        self.drop()
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        sh(["zfs", "clone", "-o", f"mountpoint={self.mountpoint}", "-o", "readonly=on", snapshot, self.dataset])
        return self.mountpoint

    def drop(self) -> None:
        if subprocess.run(["zfs", "list", "-H", self.dataset], capture_output=True).returncode == 0:
            destroy(self.dataset)

    def __exit__(self, *exc):
        self.drop()


class ScalePool:
    """A file-backed zfs-fuse pool of the bench's own, large enough for the top size (the lab's
    is 6 GB). Created here, destroyed here."""

    def __init__(self, gb: int):
        self.gb = gb
        self.name = f"orchscale{os.getpid()}"
        self.image = WORK / f"{self.name}.img"
        self.mountpoint = WORK / self.name

    def __enter__(self):
        WORK.mkdir(parents=True, exist_ok=True)
        sh(["truncate", "-s", f"{self.gb}G", str(self.image)])
        sh(["zpool", "create", "-f", "-m", str(self.mountpoint), self.name, str(self.image)])
        return self

    def __exit__(self, *exc):
        for _ in range(20):
            if subprocess.run(["zpool", "destroy", "-f", self.name], capture_output=True).returncode == 0:
                break
            time.sleep(1)
        self.image.unlink(missing_ok=True)


def files_size(lab, n: int) -> dict:
    m: dict = {"n": n}
    with tempfile.TemporaryDirectory(prefix="bench-scale-", dir=WORK) as tmp:
        # the guards are off: after a first night (every file added, none modified) the 1% night's
        # 2,000 modified files at 200,000 are "over 10 times the most of its last night" by design,
        # and a held prune fails the night this bench times
        cyc = build_cycle(lab, Path(tmp), spokes=[SERVICE],
                          extra={"BORG_TIMEOUT": "86400", "COMMAND_TIMEOUT": "7200", "PRUNE_GUARD_SHRINK": "0",
                                 "CHANGE_GUARD_PERCENT": "0", "CHANGE_GUARD_FACTOR": "0"})
        try:
            tool(cyc, "init-repos")
            data = cyc.base / SERVICE / "data"
            log(f"{n} files: seeding ~{n * args.kb_per_file // 1024} MB")
            paths = seed(data, n, args.kb_per_file)
            time.sleep(1.1)
            m["zfs_snapshot"], m["zfs_get"] = zfs_floors(cyc.parent)
            borg = BorgAlone(cyc)
            with Clone(lab.pool, cyc.prefix, Path(tmp) / "floorview") as clone:
                log(f"{n} files: the first night, then borg alone")
                m["first"], m["first_window"], m["rss_first"], rep = night(cyc)
                m["first_floor"] = borg.create(clone.at(f"{cyc.parent}/{SERVICE}@{rep['snapshot'].split('@')[1]}"))
                changed = rewrite(paths, 0.01)
                time.sleep(1.1)
                log(f"{n} files: {changed} rewritten (1 %), the night, then borg alone")
                m["pct"], m["pct_window"], m["rss_pct"], rep = night(cyc)
                archive = archive_of(rep)
                m["pct_floor"] = borg.create(clone.at(f"{cyc.parent}/{SERVICE}@{rep['snapshot'].split('@')[1]}"))
            log(f"{n} files: a night with nothing changed")
            m["quiet"], m["quiet_window"], m["rss_quiet"], rep = night(cyc)
            assert archive_of(rep) and next(d for d in rep["datasets"] if d["service"] == SERVICE)["result"] \
                == "unchanged", rep
            log(f"{n} files: the change walk alone, on a clone of the same data")
            m["walk_floor"], m["walk_tool"] = walk_floors(cyc, Path(tmp) / "walkview")
            log(f"{n} files: restore of the whole service, then borg extract alone")
            m["restore"], m["rss_restore"], _ = tool(cyc, "restore", "--yes", SERVICE, archive)
            scratch = f"{cyc.parent}-extract"
            sh(["zfs", "create", "-o", f"mountpoint={tmp}/extract", scratch])
            try:
                m["restore_floor"] = borg.extract(archive, Path(tmp) / "extract")
            finally:
                destroy(scratch)
            log(f"{n} files: restore-path of one file from the newest archive, then borg extract PATH alone")
            target = str(paths[1].relative_to(cyc.base / SERVICE))
            drop_local_history(cyc)
            m["path"], _, _ = tool(cyc, "restore-path", "--yes", "--when", archive, SERVICE, target)
            with tempfile.TemporaryDirectory(dir=tmp) as out:
                m["path_floor"] = borg.extract(archive, Path(out), target)
        finally:
            teardown_cycle(cyc)
            remove_repositories(lab, cyc)
    return m


def remove_repositories(lab, cyc) -> None:
    """The repositories this size made on the borg server (the tool's and borg alone's)."""
    subprocess.run(["rm", "-rf", "--", f"{lab.borg_repos}/{cyc.prefix}"], timeout=600)


def drop_local_history(cyc) -> None:
    """No local snapshot left (SNAPSHOT_RETENTION=off, a rebuilt pool): only archives remain."""
    dataset = f"{cyc.parent}/{SERVICE}"
    names = subprocess.run(["zfs", "list", "-H", "-t", "snapshot", "-o", "name", "-r", dataset], capture_output=True,
                           text=True, check=True).stdout.split()
    for snap in names:
        sh(["zfs", "destroy", snap])
    for name in ("history.json", "kept_snapshots.json"):
        (Path(cyc.values["STATE_DIR"]) / name).unlink(missing_ok=True)


def each_stack(cyc, words: list[str], workers: int | None = None) -> None:
    """`compose WORDS` in every stack folder, `workers` at a time (all at once by default)."""
    folders = sorted(p for p in cyc.services_dir.iterdir() if (p / "compose.yaml").exists())
    compose = ["docker-compose"] if cyc.values.get("COMPOSE_COMMAND") == "v1" else ["docker", "compose"]
    with ThreadPoolExecutor(max_workers=workers or len(folders)) as pool:
        list(pool.map(lambda f: sh([*compose, *words], cwd=f, timeout=600), folders))


def bare_compose_window(cyc) -> float:
    """Every stack stopped at once, then every stack up at once, waiting for health: compose alone."""
    return timed(lambda: (each_stack(cyc, ["stop"]), each_stack(cyc, ["up", "-d", "--wait"])))


def bare_compose_config(cyc) -> float:
    """compose's model of every stack, as many at a time as the tool asks (COMPOSE_PARALLEL, 32)."""
    return timed(lambda: each_stack(cyc, ["config", "--format", "json"], workers=32))


def stacks_size(lab, n: int) -> dict:
    m: dict = {"n": n}
    spokes = [f"s{i:03d}" for i in range(n)]
    with tempfile.TemporaryDirectory(prefix="bench-scale-", dir=WORK) as tmp:
        log(f"{n} stacks: building them")
        # 100 healthchecks a second on two cores: a spoke may take more than the lab's 60 s to be
        # healthy when all start at once (a first run at 100 stacks: 3 of 100 were not)
        cyc = build_cycle(lab, Path(tmp), spokes=spokes, extra={"COMMAND_TIMEOUT": "1800", "HEALTH_TIMEOUT": "600"})
        try:
            tool(cyc, "init-repos")
            log(f"{n} stacks: the first night")
            m["first"], m["first_window"], _, _ = night(cyc)
            m["zfs_snapshot"], m["zfs_get"] = zfs_floors(cyc.parent)
            # the first of each asks compose (no model kept yet), the next ones find the kept models
            m["status_cold"], m["check_cold"] = tool(cyc, "status")[0], tool(cyc, "check-stacks")[0]
            status, check, quiet, window, floor, config = [], [], [], [], [], []
            for i in range(args.runs):
                log(f"{n} stacks: run {i + 1}/{args.runs}: status, check-stacks, a quiet night, bare compose")
                status.append(tool(cyc, "status")[0])
                check.append(tool(cyc, "check-stacks")[0])
                config.append(bare_compose_config(cyc))
                wall, win, _, _ = night(cyc)
                quiet.append(wall)
                window.append(win)
                floor.append(bare_compose_window(cyc))
            m.update(status=statistics.median(status), check=statistics.median(check), quiet=statistics.median(quiet),
                     window=statistics.median(window), window_floor=statistics.median(floor),
                     config=statistics.median(config))
        finally:
            teardown_cycle(cyc)
            remove_repositories(lab, cyc)
    return m


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}×" if b else "-"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def files_tables(rows: list[dict]) -> None:
    top = rows[-1]
    small = rows[0]
    print(f"### Files: one dataset of N files (~{args.kb_per_file} KB each on average; mostly small, 1 in 100 "
          f"large), zfs-fuse, repository over ssh on loopback; seconds\n")
    print("| files | first night | borg alone | ratio | 1% night | window + borg alone | ratio "
          "| quiet night − window | restore | borg extract alone | ratio | restore-path | borg extract PATH "
          "| stat walk alone (`find`) | the tool's walk alone | zfs snapshot -r | zfs get -r | peak RSS MB |")
    print("|" + "---|" * 18)
    for m in rows:
        pct_floor = m["pct_window"] + m["pct_floor"]
        print(f"| {m['n']:,} | {m['first']:.1f} | {m['first_floor']:.1f} | {ratio(m['first'], m['first_floor'])} "
              f"| {m['pct']:.1f} | {pct_floor:.1f} | {ratio(m['pct'], pct_floor)} "
              f"| {m['quiet'] - m['quiet_window']:.2f} | {m['restore']:.1f} | {m['restore_floor']:.1f} "
              f"| {ratio(m['restore'], m['restore_floor'])} | {m['path']:.2f} | {m['path_floor']:.2f} "
              f"| {m.get('walk_floor', float('nan')):.2f} | {m.get('walk_tool', float('nan')):.2f} "
              f"| {m['zfs_snapshot']:.2f} | {m['zfs_get']:.2f} "
              f"| {max(m['rss_first'], m['rss_pct'], m['rss_quiet'], m['rss_restore']):.0f} |")
    print()
    print(f"| target (at {top['n']:,} files) | measured | goal | result |")
    print("|---|---|---|---|")
    pct_floor = top["pct_window"] + top["pct_floor"]
    rss = max(top["rss_first"], top["rss_pct"], top["rss_quiet"], top["rss_restore"])
    for what, measured, goal, ok in (
        ("first night, wall", f"{top['first']:.1f} s = {ratio(top['first'], top['first_floor'])} borg alone",
         "≤ 1.05× borg alone", top["first"] <= 1.05 * top["first_floor"]),
        ("1%-changed night", f"{top['pct']:.1f} s = {ratio(top['pct'], pct_floor)} (window + borg alone)",
         "≤ 1.1× (window + borg alone)", top["pct"] <= 1.1 * pct_floor),
        ("unchanged night minus its window", f"{top['quiet'] - top['quiet_window']:.2f} s (a stat walk of the "
         f"data alone: {top.get('walk_floor', float('nan')):.2f} s)", "≤ 2 s on zfs-fuse",
         top["quiet"] - top["quiet_window"] <= 2.0),
        ("restore-all", f"{top['restore']:.1f} s = {ratio(top['restore'], top['restore_floor'])} borg extract alone",
         "≤ 1.05× borg extract alone", top["restore"] <= 1.05 * top["restore_floor"]),
        ("restore-path of one file", f"{top['path']:.2f} s at {top['n']:,} files, {small['path']:.2f} s at "
         f"{small['n']:,} ({ratio(top['path'], small['path'])})", "flat in the archive's size (≤ 1.5× from the "
         "smallest size to the largest)", top["path"] <= 1.5 * small["path"]),
        ("the tool's peak RSS", f"{rss:.0f} MB", "≤ 150 MB", rss <= 150),
    ):
        print(f"| {what} | {measured} | {goal} | {verdict(ok)} |")
    print()


def stacks_tables(rows: list[dict]) -> None:
    top = rows[-1]
    print(f"### Stacks: N small spokes behind the hub (busybox httpd with a healthcheck, one dataset each), "
          f"zfs-fuse; seconds, medians of {args.runs}\n")
    print("| stacks | status (first: compose asked) | check-stacks (first) | `compose config` of every stack alone "
          "| quiet night | its window | bare compose stop + up --wait | ratio | zfs snapshot -r | zfs get -r |")
    print("|" + "---|" * 10)
    for m in rows:
        print(f"| {m['n']} | {m['status']:.2f} ({m['status_cold']:.2f}) | {m['check']:.2f} ({m['check_cold']:.2f}) "
              f"| {m['config']:.2f} | {m['quiet']:.1f} "
              f"| {m['window']:.1f} "
              f"| {m['window_floor']:.1f} | {ratio(m['window'], m['window_floor'])} | {m['zfs_snapshot']:.2f} "
              f"| {m['zfs_get']:.2f} |")
    print()
    print(f"| target (at {top['n']} stacks) | measured | goal | result |")
    print("|---|---|---|---|")
    for what, measured, goal, ok in (
        ("window", f"{top['window']:.1f} s = {ratio(top['window'], top['window_floor'])} bare compose",
         "≤ 1.05× bare compose", top["window"] <= 1.05 * top["window_floor"]),
        ("`status`", f"{top['status']:.2f} s (compose config alone: {top['config']:.2f} s)", "≤ 1 s",
         top["status"] <= 1.0),
        ("`check-stacks`", f"{top['check']:.2f} s (compose config alone: {top['config']:.2f} s)", "≤ 5 s",
         top["check"] <= 5.0),
    ):
        print(f"| {what} | {measured} | {goal} | {verdict(ok)} |")
    print()


def main() -> int:
    global args
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", default="2000,20000,200000", help="sizes of the files dimension, comma-separated")
    ap.add_argument("--kb-per-file", type=int, default=20, help="average file size (KB)")
    ap.add_argument("--stacks", default="1,10,100", help="sizes of the stacks dimension, comma-separated")
    ap.add_argument("--only", choices=["files", "stacks"])
    ap.add_argument("--pool-gb", type=int, default=24, help="the files dimension's own pool (a sparse file)")
    ap.add_argument("--runs", type=int, default=2)
    args = ap.parse_args()
    lab = lab_from_env()
    WORK.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    files_rows, stack_rows = [], []
    if args.only != "stacks":
        with ScalePool(args.pool_gb) as pool:
            scale_lab = dataclasses.replace(lab, pool=pool.name, pool_mountpoint=pool.mountpoint)
            for n in (int(x) for x in args.files.split(",")):
                files_rows.append(files_size(scale_lab, n))
                log(json.dumps(files_rows[-1]))
    if args.only != "files":
        for n in (int(x) for x in args.stacks.split(",")):
            stack_rows.append(stacks_size(lab, n))
            log(json.dumps(stack_rows[-1]))
    if files_rows:
        files_tables(files_rows)
    if stack_rows:
        stacks_tables(stack_rows)
    print(f"bench-scale: {time.monotonic() - started:.0f} s in all", file=sys.stderr)
    return 0


args: argparse.Namespace

if __name__ == "__main__":
    sys.exit(main())
