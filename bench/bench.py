#!/usr/bin/env python3
"""make bench: downtime and nightly cost of this tool, a naive shell script and borgmatic,
measured on the same seeded workload in the test lab, printed as one markdown table.

    bench.py [--stacks 6] [--size-mb 1000] [--runs 2] [--seed 1] [--only tool|naive|borgmatic] [--keep]

Needs root and the lab (`tests/lab/lab.sh up`: zfs-fuse pool, dockerd with userns-remap,
busybox/caddy images, borg). Everything it makes carries a unique prefix (datasets, networks,
containers, compose projects, paths) and is removed at the end, also on Ctrl-C (unless --keep).

Per round (median over --runs rounds), each system starts from empty repositories:
  tool       orchestrator.py backup --json (full, compose v2), again with nothing changed
             (unchanged night), 1% of files changed and again (incremental), once more with
             every stack `x-orchestrator: consistency: live`; the full run on compose v1, and
             with BORG_PARALLEL=2; backup of a hub + 1 spoke setup (downtime)
  naive      bench/naive_backup.sh (full, then incremental on the next "night")
  borgmatic  the pinned borgmatic from PyPI, one config per dataset, command hooks
Measured identically for all: downtime by a watcher polling the Docker API every 50 ms
(first spoke container not running+healthy to the last one healthy again), wall time, CPU of
the run and its children (wait4), CPU of zfs-fuse/dockerd/containerd, peak RSS of the
orchestrating process (VmHWM polled) and of the run incl. children (wait4 maxrss), and the
files/bytes borg read (a `borg` shim adds --list --filter=AME to every `borg create`).
Nothing is asserted: the table shows PASS/MISS against the targets of issue 7.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
SHIM_DIR = BENCH / "borg-shim"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
BORGMATIC_VERSION = "2.1.10"
BORGMATIC_VENV = BENCH / ".borgmatic-venv"
WORK_BASE = Path("/var/tmp/orchestrator-bench")
PASSPHRASE = "bench-passphrase-not-secret-" + "5e1f"
COMPRESSION = "zstd,3"
APP_UID = 100999
ROOT_UID = 100000
SPOKE_PORT = 8080
STOP_SECONDS = 2
COMPOSE_V2 = ["docker", "compose"]  # the bench's own setup; the tool's rows say which compose they drive


def log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def sh(argv: list[str], *, timeout: float = 120, check: bool = True, env: dict | None = None,
       cwd: str | None = None) -> subprocess.CompletedProcess:
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({r.returncode}): {r.stderr.strip()[-800:]}")
    return r


def lab_env() -> dict[str, str]:
    out = sh(["bash", str(ROOT / "tests/lab/lab.sh"), "env"]).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


# --- Docker API over the unix socket (the watcher polls it every 50 ms) --------------------------


class DockerAPI(http.client.HTTPConnection):
    def __init__(self, path: str = "/var/run/docker.sock"):
        super().__init__("localhost", timeout=5)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(5)
        self.sock.connect(self.path)

    def containers(self, name_filter: str) -> list[dict]:
        q = json.dumps({"name": [name_filter]})
        from urllib.parse import quote
        self.request("GET", f"/containers/json?all=1&filters={quote(q)}")
        resp = self.getresponse()
        return json.loads(resp.read())


def container_up(c: dict) -> bool:
    """Running, and healthy when the container has a healthcheck."""
    status = c.get("Status", "")
    if c.get("State") != "running":
        return False
    return "(health" not in status and "(unhealthy)" not in status or "(healthy)" in status


class Watcher(threading.Thread):
    """Polls the spoke containers and the orchestrating process every `interval` seconds."""

    def __init__(self, names: list[str], name_filter: str, interval: float = 0.05):
        super().__init__(daemon=True)
        self.names = set(names)
        self.name_filter = name_filter
        self.interval = interval
        self.pid: int | None = None
        self.vm_hwm_kb = 0
        self.self_cpu = 0.0  # user+sys of the orchestrating process alone (its children not counted)
        self.first_down: float | None = None
        self.last_up: float | None = None
        self.all_up = True
        self.polls = 0
        self._stop_evt = threading.Event()
        self.api = DockerAPI()

    def poll(self) -> bool:
        try:
            rows = self.api.containers(self.name_filter)
        except (OSError, http.client.HTTPException, ValueError):
            self.api.close()
            self.api = DockerAPI()
            return self.all_up
        states = {c["Names"][0].lstrip("/"): container_up(c) for c in rows if c.get("Names")}
        return all(states.get(n, False) for n in self.names)

    def run(self) -> None:
        while not self._stop_evt.is_set():
            now = time.monotonic()
            up = self.poll()
            self.polls += 1
            if not up and self.first_down is None:
                self.first_down = now
            if up and not self.all_up:
                self.last_up = now
            self.all_up = up
            if self.pid:
                try:
                    for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                        if line.startswith("VmHWM:"):
                            self.vm_hwm_kb = max(self.vm_hwm_kb, int(line.split()[1]))
                    fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
                    self.self_cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime
                except (OSError, ValueError, IndexError):
                    pass
            self._stop_evt.wait(max(0.0, self.interval - (time.monotonic() - now)))

    def stop(self) -> None:
        self._stop_evt.set()
        self.join(5)

    @property
    def downtime(self) -> float | None:
        if self.first_down is None:
            return 0.0  # no spoke container was ever seen down
        if self.last_up is None or self.last_up < self.first_down:
            return float("nan")
        return self.last_up - self.first_down


def daemon_cpu() -> float:
    """CPU seconds used so far by zfs-fuse, dockerd and containerd (not children of the run)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for name in ("zfs-fuse", "dockerd", "containerd"):
        r = subprocess.run(["pgrep", "-x", name], capture_output=True, text=True)
        for pid in r.stdout.split():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / tick
            except (OSError, IndexError, ValueError):
                pass
    return total


@dataclass
class Measure:
    system: str
    kind: str
    wall: float = 0.0
    cpu: float = 0.0
    daemon_cpu: float = 0.0
    rss_self_mb: float = 0.0
    cpu_self: float = 0.0
    rss_tree_mb: float = 0.0
    downtime: float | None = None
    downtime_self: float | None = None
    files_read: int = 0
    bytes_read: int = 0
    unchanged_reread: int | None = None
    changed: int | None = None
    tool_files_read: int | None = None
    unchanged_datasets: int | None = None  # reported `unchanged` (no borg run) by the tool
    max_stack_downtime: float | None = None  # the longest per-stack downtime the tool reported
    borg_seconds: float = 0.0
    rc: int = 0
    extra: dict = field(default_factory=dict)


# --- the workload ------------------------------------------------------------------------------


class Workload:
    def __init__(self, args, lab: dict[str, str], prefix: str, work: Path, stacks: int, size_mb: float,
                 tag: str = ""):
        self.args = args
        self.lab = lab
        self.pool = lab["LAB_POOL"]
        self.prefix = prefix + tag
        self.work = work / (tag or "main")
        self.parent = f"{self.pool}/{self.prefix}"
        self.base = Path(lab["LAB_POOL_MOUNTPOINT"]) / self.prefix
        self.hub = f"{self.prefix}hub"
        self.spokes = [f"{self.prefix}s{i + 1}" for i in range(stacks)]
        self.services_dir = self.work / "services"
        self.size_mb = size_mb
        self.files: dict[str, int] = {}  # "<key>" (path below data/, unique) -> size
        self.by_spoke: dict[str, list[str]] = {s: [] for s in self.spokes}

    @property
    def stacks(self) -> list[str]:
        return [self.hub, *self.spokes]

    def container(self, stack: str) -> str:
        return f"{stack}-c"

    def net(self, spoke: str) -> str:
        return f"{spoke}_net"

    def compose_files(self) -> None:
        self.services_dir.mkdir(parents=True, exist_ok=True)
        busybox, caddy = self.lab["LAB_BUSYBOX_IMAGE"], self.lab["LAB_CADDY_IMAGE"]
        script = (f"httpd -p {SPOKE_PORT} -h /www; trap 'sleep {STOP_SECONDS}; exit 0' TERM; "
                  "while :; do sleep 3600 & wait $$!; done")
        for s in self.spokes:
            doc = {"services": {"web": {
                "image": busybox, "container_name": self.container(s), "user": "999:999",
                "command": ["sh", "-c", script], "stop_grace_period": "20s",
                "volumes": [f"{self.base}/{s}/data:/www"], "networks": [self.net(s)],
                "healthcheck": {"test": ["CMD", "wget", "-q", "-O", "/dev/null", f"http://127.0.0.1:{SPOKE_PORT}/"],
                                "interval": "1s", "timeout": "2s", "retries": 30}}},
                "networks": {self.net(s): {"external": True}}}
            (self.services_dir / s).mkdir(exist_ok=True)
            (self.services_dir / s / "compose.yaml").write_text(json.dumps(doc, indent=2) + "\n")
        hub_dir = self.services_dir / self.hub
        hub_dir.mkdir(exist_ok=True)
        doc = {"services": {"caddy": {
            "image": caddy, "container_name": self.container(self.hub),
            "volumes": ["./Caddyfile:/etc/caddy/Caddyfile:ro", f"{self.base}/{self.hub}/data:/data"],
            "networks": [self.net(s) for s in self.spokes]}},
            "networks": {self.net(s): {"external": True} for s in self.spokes}}
        (hub_dir / "compose.yaml").write_text(json.dumps(doc, indent=2) + "\n")
        sites = "".join(f"{s}.bench.test {{\n\ttls internal\n\treverse_proxy {self.container(s)}:{SPOKE_PORT}\n}}\n"
                        for s in self.spokes)
        (hub_dir / "Caddyfile").write_text("{\n\tadmin off\n\tskip_install_trust\n}\n\n" + sites)

    def volume_lines(self) -> list[str]:
        return [f"{self.hub}/data:REMAPPED_ROOT_UID"] + [f"{s}/data:REMAPPED_APP_UID" for s in self.spokes]

    def create_datasets(self) -> None:
        sh(["zfs", "create", "-o", f"mountpoint={self.base}", self.parent])
        for stack in self.stacks:
            sh(["zfs", "create", f"{self.parent}/{stack}"])
            data = self.base / stack / "data"
            data.mkdir(parents=True, exist_ok=True)
            uid = ROOT_UID if stack == self.hub else APP_UID
            os.chown(data, uid, uid)

    def generate(self, seed: int, small_share: float = 0.2, large_per_stack: int = 4) -> None:
        """Seeded: per spoke many small files (1-32 KiB, in 20 dirs) and a few large ones,
        random (incompressible) bytes. The same seed gives the same tree, byte for byte."""
        per_stack = self.size_mb * 1e6 / len(self.spokes)
        t0 = time.monotonic()
        for s in self.spokes:
            rng = random.Random(f"{seed}:{s[len(self.prefix):]}")
            data = self.base / s / "data"
            index = f"<h1>{s}</h1>\n".encode()
            (data / "index.html").write_bytes(index)
            os.chown(data / "index.html", APP_UID, APP_UID)
            small_budget = per_stack * small_share
            made = 0
            i = 0
            while made < small_budget:
                size = rng.randint(1024, 32 * 1024 - 1)
                self._write(s, data, f"{s}_d{i % 20:02d}/f{i:05d}.bin", rng.randbytes(size))
                made += size
                i += 1
            weights = [rng.uniform(0.5, 1.5) for _ in range(large_per_stack)]
            for j, w in enumerate(weights):
                size = int((per_stack - made) * w / sum(weights))
                self._write(s, data, f"{s}_large/big{j}.bin", rng.randbytes(size))
        # zfs-fuse keeps 1 s timestamps, and borg does not memorize in its files cache a file
        # whose ctime equals the newest ctime it saw (its same-second race protection). Data
        # written in one burst would all be "newest" and re-read every night, which no real
        # dataset looks like. A marker written a second later makes the burst "older".
        time.sleep(1.1)
        for s in self.spokes:
            marker = self.base / s / "data" / ".generated"
            marker.write_text(f"seed {seed}\n")
            os.chown(marker, APP_UID, APP_UID)
        total = sum(self.files.values())
        log(f"workload: {len(self.files)} files, {total / 1e6:.0f} MB in {len(self.spokes)} datasets "
            f"({time.monotonic() - t0:.0f}s to write)")

    def _write(self, spoke: str, data: Path, key: str, content: bytes) -> None:
        path = data / key
        if not path.parent.exists():
            path.parent.mkdir(parents=True)
            os.chown(path.parent, APP_UID, APP_UID)
        path.write_bytes(content)
        os.chown(path, APP_UID, APP_UID)
        self.files[key] = len(content)
        self.by_spoke[spoke].append(key)

    def change(self, seed: str, share: float = 0.01) -> set[str]:
        """Rewrite `share` of the files in place (same size, same inode, new random content)."""
        keys = sorted(self.files)
        rng = random.Random(seed)
        chosen = rng.sample(keys, max(1, round(len(keys) * share)))
        for key in chosen:
            spoke = next(s for s in self.spokes if key.startswith(s + "_"))
            with open(self.base / spoke / "data" / key, "r+b") as f:
                f.write(rng.randbytes(self.files[key]))
        # the same-second rule again (see generate): later runs must not re-read this burst
        time.sleep(1.1)
        for s in self.spokes:
            (self.base / s / "data" / ".generated").write_text(f"changed {seed}\n")
        return set(chosen)

    # stacks
    def compose(self, stack: str, *args: str, timeout: float = 120) -> None:
        d = self.services_dir / stack
        sh([*COMPOSE_V2, "-p", stack, *args], timeout=timeout, cwd=str(d))

    def set_live(self, live: bool, stacks: list[str] | None = None) -> None:
        """`stacks` (default every spoke and the hub) x-orchestrator consistency: live, or back
        to stop mode."""
        for stack in self.stacks if stacks is None else stacks:
            path = self.services_dir / stack / "compose.yaml"
            doc = json.loads(path.read_text())
            if live:
                doc["x-orchestrator"] = {"consistency": "live"}
            else:
                doc.pop("x-orchestrator", None)
            path.write_text(json.dumps(doc, indent=2) + "\n")

    def up(self) -> None:
        for s in self.spokes:
            if sh(["docker", "network", "inspect", self.net(s)], check=False).returncode != 0:
                sh(["docker", "network", "create", self.net(s)])
        for stack in self.stacks:
            self.compose(stack, "up", "-d")
        self.wait_healthy()

    def wait_healthy(self, timeout: float = 90) -> None:
        api = DockerAPI()
        deadline = time.monotonic() + timeout
        names = {self.container(s) for s in self.spokes}
        while time.monotonic() < deadline:
            rows = api.containers(self.prefix)
            up = {c["Names"][0].lstrip("/") for c in rows if container_up(c)}
            if names <= up:
                return
            time.sleep(0.2)
        raise RuntimeError(f"spokes not healthy after {timeout}s: {sorted(names - up)}")

    def teardown(self) -> None:
        for stack in self.stacks:
            d = self.services_dir / stack
            if (d / "compose.yaml").exists():
                subprocess.run([*COMPOSE_V2, "-p", stack, "down", "-t", "1"],
                               capture_output=True, timeout=120, cwd=str(d))
        for s in self.spokes:
            subprocess.run(["docker", "network", "rm", self.net(s)], capture_output=True, timeout=60)


def destroy_dataset(name: str) -> None:
    if subprocess.run(["zfs", "list", "-H", name], capture_output=True, timeout=60).returncode != 0:
        return
    r = subprocess.run(["zfs", "list", "-H", "-r", "-o", "name", name], capture_output=True, text=True, timeout=60)
    for ds in sorted(r.stdout.split(), key=lambda n: -n.count("/")):
        subprocess.run(["zfs", "unmount", "-f", ds], capture_output=True, timeout=60)
    for attempt in range(6):
        r = subprocess.run(["zfs", "destroy", "-r", "-f", name], capture_output=True, text=True, timeout=300)
        if r.returncode == 0:
            return
        time.sleep(0.5 * (attempt + 1))
    log(f"warning: could not destroy {name}: {r.stderr.strip()}")


# --- the three systems ---------------------------------------------------------------------------


class Bench:
    def __init__(self, args):
        self.args = args
        self.lab = lab_env()
        self.prefix = args.clean or ("bn" + secrets.token_hex(3))
        self.work = WORK_BASE / self.prefix
        self.wl = Workload(args, self.lab, self.prefix, self.work, args.stacks, args.size_mb)
        self.single = Workload(args, self.lab, self.prefix, self.work, 1, 5, tag="one")
        self.results: list[Measure] = []
        self.naive_clone_parent = f"{self.wl.pool}/{self.prefix}-naive"
        self.bm_clone_parent = f"{self.wl.pool}/{self.prefix}-bm"
        self.bm_root = Path("/run") / f"{self.prefix}-borgmatic"
        self.naive_root = Path("/run/naive")
        self.path_env = f"{SHIM_DIR}:{os.environ.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"
        self.python = sys.executable
        self.limit: dict[str, float] = {}

    # setup ------------------------------------------------------------------------------------

    def setup(self) -> None:
        avail = int(sh(["zfs", "get", "-H", "-p", "-o", "value", "available", self.wl.pool]).stdout.strip())
        need = self.args.size_mb * 1e6 * 1.3 + 200e6
        if avail < need:
            raise SystemExit(f"bench: pool {self.wl.pool} has {avail / 1e9:.1f} GB free, the workload needs "
                             f"~{need / 1e9:.1f} GB; use a smaller --size-mb")
        self.work.mkdir(parents=True)
        log(f"prefix {self.prefix}, work dir {self.work}")
        for wl in (self.wl, self.single):
            wl.compose_files()
            wl.create_datasets()
        self.wl.generate(self.args.seed)
        self.single.generate(self.args.seed, large_per_stack=1)
        for parent in (self.naive_clone_parent, self.bm_clone_parent):
            sh(["zfs", "create", "-o", "mountpoint=none", "-o", "canmount=off", parent])
        self.envs = {
            "tool": self.write_env(self.wl, "tool", borg_parallel=1),
            "tool-v1": self.write_env(self.wl, "tool-v1", borg_parallel=1, compose="v1"),
            "tool-p2": self.write_env(self.wl, "tool-p2", borg_parallel=2),
            "tool-one": self.write_env(self.single, "tool-one", borg_parallel=1),
        }
        if self.want("borgmatic"):
            self.ensure_borgmatic()
            self.write_borgmatic_configs()
        log("starting stacks")
        self.wl.up()
        if self.want("tool"):
            self.single.up()

    def want(self, system: str) -> bool:
        return self.args.only in (None, system)

    def write_env(self, wl: Workload, name: str, *, borg_parallel: int, compose: str = "v2") -> Path:
        d = self.work / name
        values = {
            "ADMIN_USER": "root",
            "MANAGEMENT_DIR": str(d / "management"),
            "VENV_DIR": str(ROOT / ".venv"),
            "SERVICES_DIR": str(wl.services_dir),
            "HUB_SERVICE": wl.hub,
            "ZFS_PARENT_DATASET": wl.parent,
            "ZFS_BASE_MOUNTPOINT": str(wl.base),
            "VIEW_DATASET": f"{wl.parent}-views",
            "VIEW_MOUNTPOINT": str(d / "views"),
            "BORG_REPO_BASE_PATH": str(d / "repos"),
            "BORG_BASE_DIR": str(d / "borg-base"),
            "BORG_PASSPHRASE": PASSPHRASE,
            "BORG_COMPRESSION": COMPRESSION,
            "BORG_PARALLEL": str(borg_parallel),
            **({"COMPOSE_PARALLEL": str(self.args.compose_parallel)} if self.args.compose_parallel else {}),
            "COMPOSE_COMMAND": compose,
            "STOP_TIMEOUT": "30",
            "HEALTH_TIMEOUT": "60",
            "COMMAND_TIMEOUT": "600",
            "LOCK_FILE": str(d / "orchestrator.lock"),
            "STATE_DIR": str(d / "state"),
            "REMAPPED_ROOT_UID": str(ROOT_UID),
            "REMAPPED_APP_UID": str(APP_UID),
        }
        (d / "management").mkdir(parents=True)
        lines = [f"{k}={v}" for k, v in values.items()]
        lines.append('SERVICE_VOLUME_PATHS_AND_OWNERS="\n' + "\n".join(wl.volume_lines()) + '\n"')
        env = d / ".env"
        env.write_text("\n".join(lines) + "\n")
        env.chmod(0o600)
        return env

    def ensure_borgmatic(self) -> None:
        exe = BORGMATIC_VENV / "bin" / "borgmatic"
        if exe.exists():
            r = sh([str(exe), "--version"], check=False)
            if r.stdout.strip() == BORGMATIC_VERSION:
                return
        log(f"installing borgmatic=={BORGMATIC_VERSION} into {BORGMATIC_VENV}")
        if not (BORGMATIC_VENV / "bin" / "python").exists():
            sh([sys.executable, "-m", "venv", str(BORGMATIC_VENV)])
        sh([str(BORGMATIC_VENV / "bin" / "pip"), "install", "-q", "--disable-pip-version-check",
            f"borgmatic=={BORGMATIC_VERSION}"], timeout=600)

    def write_borgmatic_configs(self) -> None:
        """One config per dataset, as borgmatic users do: hooks stop the stack, snapshot and
        clone to a fixed path before `create`, and start the stack and clean up after it."""
        d = self.work / "borgmatic"
        conf = d / "config.d"
        conf.mkdir(parents=True)
        wl = self.wl
        for stack in wl.stacks:
            compose = f"docker compose -p {stack} -f {wl.services_dir / stack / 'compose.yaml'}"
            snap = f"{wl.parent}/{stack}@borgmatic"
            clone = f"{self.bm_clone_parent}/{stack}"
            path = self.bm_root / stack
            doc = {
                "source_directories": [str(path)],
                "repositories": [{"path": str(d / "repos" / stack), "label": stack}],
                "compression": COMPRESSION,
                "encryption_passphrase": PASSPHRASE,
                "borg_base_directory": str(d / "borg-base"),
                "archive_name_format": f"{stack}-{{now}}",
                "keep_daily": 7, "keep_weekly": 4, "keep_monthly": 6,
                "commands": [
                    {"before": "action", "when": ["create"], "run": [
                        f"{compose} stop",
                        f"zfs snapshot {snap}",
                        f"zfs clone -o readonly=on -o mountpoint={path} {snap} {clone}",
                    ]},
                    {"after": "action", "when": ["create"], "run": [
                        f"{compose} start",
                        f"zfs unmount {clone}; for i in 1 2 3 4 5; do zfs destroy {clone} && break; sleep 0.5; done",
                        f"zfs destroy {snap}",
                    ]},
                ],
            }
            (conf / f"{stack}.yaml").write_text(json.dumps(doc, indent=2) + "\n")
        self.bm_conf = conf

    # repositories --------------------------------------------------------------------------------

    def repo_dirs(self, system: str) -> tuple[Path, Path, list[str]]:
        if system in ("tool", "tool-p2", "tool-one"):
            d = self.work / system
            stacks = (self.single if system == "tool-one" else self.wl).stacks
            return d / "repos", d / "borg-base", stacks
        d = self.work / system
        return d / "repos", d / "borg-base", self.wl.stacks

    def fresh_repos(self, system: str) -> None:
        """Empty repositories (initialised, as each system expects them: this tool by its own
        `init-repos`) and no borg cache."""
        repos, base, stacks = self.repo_dirs(system)
        shutil.rmtree(repos, ignore_errors=True)
        shutil.rmtree(base, ignore_errors=True)
        if system.startswith("tool"):
            shutil.rmtree(self.work / system / "state", ignore_errors=True)
        repos.mkdir(parents=True)
        base.mkdir(parents=True)
        if system.startswith("tool"):  # as README's setup does: `make init-repos`
            sh([self.python, str(ROOT / "orchestrator.py"), "--env-file", str(self.envs[system]), "init-repos"],
               timeout=600)
            return
        env = {**os.environ, "BORG_PASSPHRASE": PASSPHRASE, "BORG_BASE_DIR": str(base)}
        for stack in stacks:
            sh(["borg", "init", "-e", "repokey-blake2", str(repos / stack)], env=env, timeout=120)

    # one measured run ----------------------------------------------------------------------------

    def measure(self, system: str, kind: str, argv: list[str], env: dict[str, str], wl: Workload,
                changed: set[str] | None = None) -> Measure:
        m = Measure(system, kind)
        borg_log = self.work / f"borg-{system}-{kind}-{len(self.results)}.log"
        env = {**os.environ, **env, "PATH": self.path_env, "BENCH_BORG_LOG": str(borg_log)}
        out_path = self.work / f"out-{system}-{kind}-{len(self.results)}"
        watcher = Watcher([wl.container(s) for s in wl.spokes], wl.prefix)
        watcher.start()
        cpu0 = daemon_cpu()
        t0 = time.monotonic()
        with open(f"{out_path}.stdout", "wb") as so, open(f"{out_path}.stderr", "wb") as se:
            proc = subprocess.Popen(argv, stdout=so, stderr=se, env=env, cwd=str(ROOT))
            watcher.pid = proc.pid
            try:
                _, status, ru = os.wait4(proc.pid, 0)
            except BaseException:
                proc.send_signal(signal.SIGINT)
                proc.wait(120)
                raise
            proc.returncode = os.waitstatus_to_exitcode(status)
        m.wall = time.monotonic() - t0
        m.rc = proc.returncode
        m.cpu = ru.ru_utime + ru.ru_stime
        m.rss_tree_mb = ru.ru_maxrss / 1024
        try:  # the last containers may still be on their way to healthy
            wl.wait_healthy(60)
        finally:
            time.sleep(0.15)
            watcher.stop()
        m.daemon_cpu = daemon_cpu() - cpu0
        m.rss_self_mb = watcher.vm_hwm_kb / 1024
        m.cpu_self = watcher.self_cpu
        m.downtime = watcher.downtime
        if m.rc != 0:
            log(f"warning: {system} {kind} exited {m.rc}; see {out_path}.stderr")
        self.read_borg_log(m, borg_log, changed)
        if system.startswith("tool"):
            try:
                report = json.loads(Path(f"{out_path}.stdout").read_text())
                m.downtime_self = report.get("downtime")
                m.tool_files_read = sum(d.get("files_read") or 0 for d in report.get("datasets", []))
                m.unchanged_datasets = sum(d.get("result") == "unchanged" for d in report.get("datasets", []))
                per_stack = report.get("stack_downtime") or {}
                m.max_stack_downtime = max(per_stack.values()) if per_stack else None
                bad = [d["service"] for d in report.get("datasets", [])
                       if d.get("result") not in ("ok", "warning", "unchanged")]
                if bad or not report.get("ok"):
                    log(f"warning: {system} {kind}: report not ok: {bad} {report.get('errors')}")
            except (OSError, ValueError) as exc:
                log(f"warning: no JSON report from {system} {kind}: {exc}")
        self.results.append(m)
        dt = "-" if m.downtime is None else f"{m.downtime:.1f}s"
        log(f"{system:9} {kind:12} wall {m.wall:6.1f}s  downtime {dt:>6}  cpu {m.cpu:6.1f}s  "
            f"read {m.files_read} files / {m.bytes_read / 1e6:.0f} MB  rc {m.rc}")
        return m

    def read_borg_log(self, m: Measure, path: Path, changed: set[str] | None) -> None:
        if not path.exists():
            return
        keys_read: set[str] = set()
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("### "):
                command = line.split()[1]
                f = dict(kv.split("=", 1) for kv in line.split()[2:5])
                seconds = float(f["end"]) - float(f["start"])
                if command.startswith("zfs-"):  # the zfs shim: every zfs process, timed
                    m.extra["zfs_calls"] = m.extra.get("zfs_calls", 0) + 1
                    m.extra["zfs_seconds"] = m.extra.get("zfs_seconds", 0.0) + seconds
                    continue
                if command == "create":
                    m.borg_seconds += seconds
                calls = m.extra.setdefault("borg_calls", {})
                calls[command] = calls.get(command, 0) + 1
                m.extra["borg_all_seconds"] = m.extra.get("borg_all_seconds", 0.0) + seconds
                continue
            if line.startswith("{"):
                try:
                    j = json.loads(line)
                except ValueError:
                    continue
                if j.get("type") != "file_status" or j.get("status") not in ("A", "M"):
                    continue
                rel = j.get("path", "")
            elif re.match(r"^[AM] ", line):
                rel = line[2:]
            else:
                continue
            m.files_read += 1
            key = rel.split("/data/", 1)[1] if "/data/" in rel else rel.removeprefix("data/")
            keys_read.add(key)
            m.bytes_read += self.wl.files.get(key, self.single.files.get(key, 0))
        if changed is not None:
            m.changed = len(changed)
            m.unchanged_reread = len({k for k in keys_read if k in self.wl.files} - changed)

    # the systems ---------------------------------------------------------------------------------

    def run_tool(self, r: int) -> None:
        cli = [self.python, str(ROOT / "orchestrator.py"), "--env-file"]
        tool = [*cli, str(self.envs["tool"]), "backup", "--json"]
        self.fresh_repos("tool")
        self.measure("tool", "full", tool, {}, self.wl)
        self.measure("tool", "unchanged", tool, {}, self.wl, set())  # nothing written since the first night
        changed = self.wl.change(f"{self.args.seed}:change:{r}:tool")
        self.measure("tool", "incremental", tool, {}, self.wl, changed)
        self.wl.set_live(True)  # every stack x-orchestrator live: nothing stops
        try:
            self.measure("tool-live", "incremental", tool, {}, self.wl, set())
        finally:
            self.wl.set_live(False)
        self.wl.set_live(True, [self.wl.hub])  # the hub served live (as services/ ships it), spokes stopped
        try:
            # switching the policy rewrote every compose file, so one night archives the stack
            # folders; the measured night after it is the quiet night of services/ as shipped
            sh(tool, timeout=1800, env={**os.environ, "PATH": self.path_env})
            self.measure("tool-hublive", "unchanged", tool, {}, self.wl, set())
        finally:
            self.wl.set_live(False)
        self.fresh_repos("tool-v1")
        self.measure("tool-v1", "full", [*cli, str(self.envs["tool-v1"]), "backup", "--json"], {}, self.wl)
        self.fresh_repos("tool-p2")
        self.measure("tool-p2", "full", [*cli, str(self.envs["tool-p2"]), "backup", "--json"], {}, self.wl)
        self.fresh_repos("tool-one")
        self.measure("tool-one", "full", [*cli, str(self.envs["tool-one"]), "backup", "--json"], {}, self.single)

    def run_naive(self, r: int) -> None:
        repos, base, _ = self.repo_dirs("naive")
        self.fresh_repos("naive")
        env = {"SERVICES_DIR": str(self.wl.services_dir), "PARENT_DATASET": self.wl.parent,
               "CLONE_PARENT": self.naive_clone_parent, "REPO_BASE": str(repos), "CLONE_ROOT": str(self.naive_root),
               "BORG_PASSPHRASE": PASSPHRASE, "BORG_BASE_DIR": str(base)}
        argv = ["bash", str(BENCH / "naive_backup.sh")]
        self.measure("naive", "full", argv, {**env, "NIGHT": f"2026-01-{2 * r + 1:02d}"}, self.wl)
        changed = self.wl.change(f"{self.args.seed}:change:{r}:naive")
        self.measure("naive", "incremental", argv, {**env, "NIGHT": f"2026-01-{2 * r + 2:02d}"}, self.wl, changed)

    def run_borgmatic(self, r: int) -> None:
        self.fresh_repos("borgmatic")
        argv = [str(BORGMATIC_VENV / "bin" / "borgmatic"), "--config", str(self.bm_conf), "create", "prune", "compact"]
        self.measure("borgmatic", "full", argv, {}, self.wl)
        changed = self.wl.change(f"{self.args.seed}:change:{r}:borgmatic")
        self.measure("borgmatic", "incremental", argv, {}, self.wl, changed)

    def help_startup(self) -> list[float]:
        times = []
        for _ in range(10):
            t0 = time.monotonic()
            sh([self.python, str(ROOT / "orchestrator.py"), "--help"])
            times.append(time.monotonic() - t0)
        return times

    def physical_limit(self) -> dict[str, float]:
        """What no tool can beat for a stopped stack: its own stop, one snapshot, its own start
        to healthy, each measured alone on the first spoke (all spokes are alike)."""
        spoke, wl = self.wl.spokes[0], self.wl
        t0 = time.monotonic()
        wl.compose(spoke, "stop")
        t_stop = time.monotonic() - t0
        snap = f"{wl.parent}@{self.prefix}-limit"
        t0 = time.monotonic()
        sh(["zfs", "snapshot", "-r", snap])
        t_snap = time.monotonic() - t0
        sh(["zfs", "destroy", "-r", snap])
        t0 = time.monotonic()
        wl.compose(spoke, "start")
        wl.wait_healthy()
        t_start = time.monotonic() - t0
        limit = {"stop": t_stop, "snapshot": t_snap, "start_healthy": t_start, "total": t_stop + t_snap + t_start}
        # the same for every spoke at once, by hand: bare compose, one thread per spoke, no
        # ordering, no checks; what this machine's cores give N stacks (the hub stays up)
        t0 = time.monotonic()
        with ThreadPoolExecutor(max_workers=len(wl.spokes)) as pool:
            list(pool.map(lambda st: wl.compose(st, "stop"), wl.spokes))
            sh(["zfs", "snapshot", "-r", snap])
            list(pool.map(lambda st: wl.compose(st, "start"), wl.spokes))
        wl.wait_healthy()
        limit["all_spokes"] = time.monotonic() - t0
        sh(["zfs", "destroy", "-r", snap])
        log("physical limit: " + ", ".join(f"{k} {v:.2f}s" for k, v in limit.items()))
        return limit

    def run(self) -> None:
        self.setup()
        t_start = time.monotonic()
        self.help_times = self.help_startup() if self.want("tool") else []
        self.limit = self.physical_limit() if self.want("tool") else {}
        for r in range(self.args.runs):
            log(f"round {r + 1}/{self.args.runs}")
            if self.want("tool"):
                self.run_tool(r)
            if self.want("naive"):
                self.run_naive(r)
            if self.want("borgmatic"):
                self.run_borgmatic(r)
        self.elapsed = time.monotonic() - t_start

    def cleanup(self) -> None:
        if self.args.keep:
            log(f"--keep: left {self.work}, datasets {self.wl.parent}*, stacks {self.wl.prefix}*")
            return
        log("cleaning up")
        for wl in (self.wl, self.single):
            try:
                wl.teardown()
            except Exception as exc:  # noqa: BLE001 - best effort, keep cleaning
                log(f"warning: teardown {wl.prefix}: {exc}")
        for ds in (self.naive_clone_parent, self.bm_clone_parent, f"{self.wl.parent}-views",
                   f"{self.single.parent}-views", self.wl.parent, self.single.parent):
            destroy_dataset(ds)
        for p in [self.bm_root, *self.naive_root.glob(f"{self.prefix}*")]:
            shutil.rmtree(p, ignore_errors=True)
        shutil.rmtree(self.work, ignore_errors=True)


# --- the table -------------------------------------------------------------------------------------


def med(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None and v == v]
    return statistics.median(vals) if vals else None


def fmt(v: float | None, unit: str = "s", digits: int = 1) -> str:
    if v is None:
        return "-"
    return f"{v:.{digits}f}{unit}" if unit != "MB" else f"{v:.0f} MB"


def table(b: Bench) -> str:
    def pick(system: str, kind: str, attr: str) -> float | None:
        return med([getattr(m, attr) for m in b.results if m.system == system and m.kind == kind])

    systems = [s for s in ("tool", "naive", "borgmatic") if b.want(s)]
    names = {"tool": "this tool", "naive": "naive script", "borgmatic": f"borgmatic {BORGMATIC_VERSION}"}
    rows = [
        ("downtime (watcher: first spoke down → last healthy)", "full", "downtime", "s", 1),
        ("downtime (self-reported by the tool)", "full", "downtime_self", "s", 1),
        ("1st run: wall time", "full", "wall", "s", 1),
        ("1st run: CPU, run + children (user+sys)", "full", "cpu", "s", 1),
        ("1st run: CPU of zfs-fuse + dockerd + containerd", "full", "daemon_cpu", "s", 1),
        ("1st run: time inside `borg create` (sum)", "full", "borg_seconds", "s", 1),
        ("1st run: CPU of the orchestrating process alone (polled every 50 ms)", "full", "cpu_self", "s", 1),
        ("peak RSS, orchestrating process", "full", "rss_self_mb", " MB", 0),
        ("peak RSS, largest process of the run (borg)", "full", "rss_tree_mb", " MB", 0),
        ("2nd run (1% changed): wall time", "incremental", "wall", "s", 1),
        ("2nd run: downtime (watcher)", "incremental", "downtime", "s", 1),
        ("2nd run: files borg read", "incremental", "files_read", "", 0),
        ("2nd run: files changed", "incremental", "changed", "", 0),
        ("2nd run: unchanged files re-read", "incremental", "unchanged_reread", "", 0),
        ("2nd run: MB borg read", "incremental", "bytes_read", "", 0),
    ]
    out = [f"| metric (median of {b.args.runs}) | " + " | ".join(names[s] for s in systems) + " |",
           "|---|" + "---|" * len(systems)]
    for label, kind, attr, unit, digits in rows:
        cells = []
        for s in systems:
            v = pick(s, kind, attr)
            if attr == "bytes_read" and v is not None:
                cells.append(f"{v / 1e6:.0f} MB")
            elif attr == "downtime_self" and s != "tool":
                cells.append("n/a")
            else:
                cells.append(fmt(v, unit, digits))
        out.append(f"| {label} | " + " | ".join(cells) + " |")

    targets = []
    if b.want("tool"):
        d6, d1 = pick("tool", "full", "downtime"), pick("tool-one", "full", "downtime")
        s6, s1 = pick("tool", "full", "downtime_self"), pick("tool-one", "full", "downtime_self")
        targets.append((f"downtime {len(b.wl.spokes)} stacks / 1 stack (watcher)", d6, d1, 1.5))
        targets.append((f"downtime {len(b.wl.spokes)} stacks / 1 stack (self-reported)", s6, s1, 1.5))
        for other in ("naive", "borgmatic"):
            if b.want(other) or b.args.only is None:
                targets.append((f"downtime: this tool / {names[other]}", d6, pick(other, "full", "downtime"), 0.2))
        w1, w2 = pick("tool", "full", "wall"), pick("tool", "incremental", "wall")
        targets.append(("unchanged night / 1st run, wall", pick("tool", "unchanged", "wall"), w1, 0.3))
        targets.append(("unchanged night, the hub served live (as services/ ships it) / 1st run, wall",
                        pick("tool-hublive", "unchanged", "wall"), w1, 0.3))
        targets.append(("2nd run (1% changed) / 1st run, wall", w2, w1, 0.25))
        if b.want("naive"):
            targets.append(("1st run wall: this tool / naive script", w1, pick("naive", "full", "wall"), 1.0))
            targets.append(("1st run CPU (run + children): this tool / naive script", pick("tool", "full", "cpu"),
                            pick("naive", "full", "cpu"), 1.2))
        targets.append(("BORG_PARALLEL=2 / BORG_PARALLEL=1, 1st-run wall", pick("tool-p2", "full", "wall"), w1, 0.7))
    out += ["", "| target | measured | goal | result |", "|---|---|---|---|"]
    for label, num, den, goal in targets:
        if num is None or den is None or den == 0:
            out.append(f"| {label} | - | ≤ {goal} | MISS (not measured) |")
            continue
        ratio = num / den
        verdict = "PASS" if ratio <= goal else "MISS"
        out.append(f"| {label} | {num:.1f}s / {den:.1f}s = {ratio:.2f} | ≤ {goal} | {verdict} |")
    if b.want("tool") and b.limit:
        lim, self_dt = b.limit, pick("tool", "full", "downtime_self")
        out.append(f"| window (self-reported) / physical limit (stop {lim['stop']:.1f}s + snapshot "
                   f"{lim['snapshot']:.2f}s + start to healthy {lim['start_healthy']:.1f}s) | "
                   + (f"{self_dt:.1f}s / {lim['total']:.1f}s = {self_dt / lim['total']:.2f} | ≤ 1.2 | "
                      f"{'PASS' if self_dt / lim['total'] <= 1.2 else 'MISS'} |" if self_dt else "- | ≤ 1.2 | MISS |"))
    if b.want("tool") and b.limit:
        hub_live, total = pick("tool-hublive", "unchanged", "downtime_self"), b.limit["total"]
        verdict = (f"{hub_live:.1f}s / {total:.1f}s = {hub_live / total:.2f} | ≤ 1.2 | "
                   f"{'PASS' if hub_live / total <= 1.2 else 'MISS'} |") if hub_live else "- | ≤ 1.2 | MISS |"
        out.append("| window with the hub served live (self-reported) / physical limit | " + verdict)
        every = b.limit.get("all_spokes")
        if hub_live and every:
            out.append(f"| window with the hub served live / every spoke stopped, snapshotted and started at once by "
                       f"hand (bare compose, parallel) | {hub_live:.1f}s / {every:.1f}s = {hub_live / every:.2f} | "
                       f"(context) | - |")
    if b.want("tool"):
        live = pick("tool-live", "incremental", "downtime")
        out.append(f"| every stack live: downtime (watcher) | {fmt(live)} | 0 | "
                   f"{'PASS' if live is not None and live == 0 else 'MISS'} |")
        reread = pick("tool", "incremental", "unchanged_reread")
        out.append(f"| 2nd run: unchanged files re-read by this tool | {fmt(reread, '', 0)} | 0 | "
                   f"{'PASS' if reread == 0 else 'MISS'} |")
        h = med(b.help_times)
        out.append(f"| `orchestrator.py --help` start-up (median of 10) | {fmt(h, 's', 2)} | ≤ 0.3s | "
                   f"{'PASS' if h is not None and h <= 0.3 else 'MISS'} |")
    if b.want("tool"):
        out += ["", "| this tool | downtime (watcher) | downtime (self-reported) | longest per-stack downtime "
                "| wall | datasets unchanged |", "|---|---|---|---|---|---|"]
        for system, kind, label in (("tool", "full", "compose v2, 1st run"), ("tool-v1", "full", "compose v1, 1st run"),
                                    ("tool", "unchanged", "compose v2, unchanged night"),
                                    ("tool", "incremental", "compose v2, 1% changed"),
                                    ("tool-hublive", "unchanged", "compose v2, unchanged, the hub served live"),
                                    ("tool-live", "incremental", "compose v2, every stack live")):
            cells = [fmt(pick(system, kind, a)) for a in ("downtime", "downtime_self", "max_stack_downtime", "wall")]
            cells.append(fmt(pick(system, kind, "unchanged_datasets"), "", 0))
            out.append(f"| {label} | " + " | ".join(cells) + " |")
    if b.want("tool"):
        # Where a night goes: the window, borg itself (every borg process, timed by the shim; one
        # at a time at BORG_PARALLEL=1), zfs (every zfs process, timed by its shim; the window's
        # snapshot, ~0.05 s, is counted in both), and the rest (the tool's own: the preflight's
        # compose models, views' manifests, the stack folders, state)
        out += ["", "| this tool, where the night goes | wall | window (self-reported) | borg processes "
                "(create / prune / list / other) | time inside borg (sum) | zfs processes | time inside zfs (sum) "
                "| the rest |", "|---|---|---|---|---|---|---|---|"]
        for kind, label in (("full", "1st run"), ("unchanged", "unchanged night"), ("incremental", "1% changed")):
            ms = [m for m in b.results if m.system == "tool" and m.kind == kind]
            if not ms:
                continue
            calls = [m.extra.get("borg_calls", {}) for m in ms]
            count = {c: med([x.get(c, 0) for x in calls]) for c in ("create", "prune", "list")}
            other = med([sum(v for k, v in x.items() if k not in count) for x in calls])
            wall, window = pick("tool", kind, "wall"), pick("tool", kind, "downtime_self")
            inside = med([m.extra.get("borg_all_seconds", 0.0) for m in ms])
            zfs_n = med([m.extra.get("zfs_calls", 0) for m in ms])
            zfs_s = med([m.extra.get("zfs_seconds", 0.0) for m in ms])
            rest = wall - (window or 0) - (inside or 0) - (zfs_s or 0) if wall is not None else None
            out.append(f"| {label} | {fmt(wall)} | {fmt(window)} | "
                       + " / ".join(fmt(count[c], "", 0) for c in count) + f" / {fmt(other, '', 0)} | "
                       f"{fmt(inside)} | {fmt(zfs_n, '', 0)} | {fmt(zfs_s)} | {fmt(rest)} |")
    return "\n".join(out)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--stacks", type=int, default=6, help="spoke stacks (each with a dataset), default 6")
    p.add_argument("--size-mb", type=float, default=1000, help="total data across the spokes, default 1000")
    # 3 rounds at the default size take ~23 min on the 2-core lab; 2 fit the 20-minute budget.
    p.add_argument("--runs", type=int, default=2, help="rounds; the table shows medians (default 2)")
    p.add_argument("--seed", type=int, default=1, help="workload seed (default 1)")
    p.add_argument("--only", choices=["tool", "naive", "borgmatic"], help="run one system only")
    p.add_argument("--compose-parallel", type=int, default=None,
                   help="COMPOSE_PARALLEL for this tool (default: the tool's own, 32)")
    p.add_argument("--keep", action="store_true", help="leave datasets, stacks and repositories in place")
    p.add_argument("--clean", metavar="PREFIX", help="remove what a --keep run with this prefix left, then exit")
    args = p.parse_args()
    if args.clean and not re.fullmatch(r"bn[0-9a-f]{6}", args.clean):
        p.error("--clean takes the prefix a run printed (bn + 6 hex digits)")
    if os.geteuid() != 0:
        print("bench: run as root (zfs, docker, borg on the lab)", file=sys.stderr)
        return 2
    bench = Bench(args)
    if args.clean:
        args.keep = False
        bench.cleanup()
        return 0

    def on_term(_sig, _frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    t0 = time.monotonic()
    try:
        bench.run()
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        bench.cleanup()
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    machine = f"{os.cpu_count()} CPUs, {ram:.0f} GiB RAM, kernel {os.uname().release}"
    print(f"\n## bench: {args.stacks} stacks, {args.size_mb:.0f} MB, {args.runs} run(s), seed {args.seed}\n")
    print(f"{len(bench.wl.files)} files ({sum(bench.wl.files.values()) / 1e6:.0f} MB) in {args.stacks} datasets + hub; "
          f"{machine}; compression {COMPRESSION}; measured in {bench.elapsed / 60:.1f} min, "
          f"total {(time.monotonic() - t0) / 60:.1f} min\n")
    print(table(bench))
    results = WORK_BASE / "last-results.json"
    results.write_text(json.dumps([m.__dict__ for m in bench.results], indent=1, default=str))
    print(f"\nraw results: {results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
