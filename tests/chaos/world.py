"""The lab as the campaign uses it, and every outside effect a fault has.

One hub and two spokes (git, photo) behind it, as the lab tests build them, with two changes a
real homelab has: every container restarts `unless-stopped` (so a dockerd restart brings back
what was running) and photo's container ignores SIGTERM while a flag file exists (the
stubborn-container fault), with a short stop_grace_period so compose kills it after 3 s.
The repositories live on a tmpfs of their own, reached over ssh on loopback, so "the
repository disk is full" is a file that fills it. The tool runs with wrappers for zfs, borg,
docker and docker-compose first on PATH: each appends its pid and argv to a calls log, then
execs the real program, so a fault can fire at the tool's k-th command and kill that child.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import LAB_SH, lab_from_env
from tests.lab.conftest import Cycle, build_cycle, free_port, teardown_cycle
from tests.lab.envfile import cli_argv, destroy_tree

WRAPPED = ("zfs", "borg", "docker", "docker-compose")
STUBBORN_FLAG = ".chaos-stubborn"  # in photo's data dir: while it exists, photo ignores SIGTERM
REPO_FS_MB = 1024  # borg wants room for a segment (500 MB) on a commit: "Insufficient free space" below


@dataclass
class Run:
    """One run of the tool: argv (after orchestrator.py), exit code, output, seconds."""
    args: tuple[str, ...]
    code: int | None
    stdout: str
    stderr: str
    seconds: float
    calls: int = 0  # wrapped commands (zfs, borg, docker) it ran

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def json(self) -> dict:
        try:
            data = json.loads(self.stdout)
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}


@dataclass
class World:
    lab: object
    cycle: Cycle | None
    root: Path  # the campaign's scratch folder
    repos: Path  # the tmpfs the repositories live on
    shims: Path
    calls: Path
    images: dict[str, str] = field(default_factory=dict)  # busybox, caddy -> the stacks' image in the lab registry
    ssh_port: int = 0  # the repository server: an sshd of the campaign's own (the VM lab's guests use the lab's)
    truncated: dict[str, float] = field(default_factory=dict)  # state file -> mtime when the harness broke it
    versions_pushed: int = 0
    added: list[tuple[str, str]] = field(default_factory=list)  # (container, docker volume) of add_uncovered

    # --- set up and tear down --------------------------------------------------------------------

    @classmethod
    def build(cls) -> World:
        lab = lab_from_env()
        root = Path(tempfile.mkdtemp(prefix="chaos-", dir=lab.dir))
        prefix_dir = root / "cycle"
        prefix_dir.mkdir()
        subdir = f"chaos-{root.name}"
        repos = Path(lab.borg_repos) / subdir
        repos.mkdir(parents=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={REPO_FS_MB}m,mode=0700", "tmpfs", str(repos)],
                       check=True, timeout=60)
        shutil.chown(repos, lab.borg_user, lab.borg_user)
        shims, calls = root / "shims", root / "calls.log"
        _write_shims(shims, calls)
        images = _push_images(lab, root.name.replace("_", "-").lower())
        port = free_port()
        known = root / "known_hosts"
        known.write_text("".join(f"[127.0.0.1]:{port} {line.split(None, 1)[1]}\n"
                                 for line in lab.ssh_known_hosts.read_text().splitlines() if line.strip()))
        rsh = (f"ssh -i {lab.ssh_key} -o UserKnownHostsFile={known} -o StrictHostKeyChecking=yes "
               "-o BatchMode=yes -o ConnectTimeout=10")
        world = cls(lab, None, root, repos, shims, calls, images, port)
        world.start_sshd()
        world.cycle = build_cycle(lab, prefix_dir, repo_base=f"ssh://{lab.borg_user}@127.0.0.1:{port}{repos}",
                                  rewrite=lambda cyc, lab: _chaos_stacks(cyc, images),
                                  extra={"STOP_TIMEOUT": "30", "UPDATE_SETTLE_SECONDS": "1",
                                         "UPDATE_SNAPSHOTS_KEEP": "2", "BORG_RSH": rsh})
        return world

    def teardown(self) -> None:
        self.undo_all()
        if self.cycle is not None:
            teardown_cycle(self.cycle)
            destroy_tree(self.pool_filler)
        for _, volume in self.added:
            subprocess.run(["docker", "volume", "rm", "-f", volume], capture_output=True, timeout=60)
        self.stop_sshd()
        subprocess.run(["umount", "-l", str(self.repos)], timeout=60)
        shutil.rmtree(self.repos, ignore_errors=True)
        shutil.rmtree(self.root, ignore_errors=True)

    # --- the tool --------------------------------------------------------------------------------

    def env(self, clock: str | None = None) -> dict[str, str]:
        env = dict(os.environ)
        env["PATH"] = f"{self.shims}:{env['PATH']}"
        return faketime_env(env, clock)

    def start(self, *args: str, clock: str | None = None) -> subprocess.Popen:
        return subprocess.Popen(cli_argv(self.cycle.env_path, *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=self.env(clock), start_new_session=True)

    def run(self, *args: str, timeout: float = 900) -> Run:
        started = time.monotonic()
        proc = self.start(*args)
        out, err = proc.communicate(timeout=timeout)
        return Run(tuple(args), proc.returncode, out, err, time.monotonic() - started)

    def call_count(self) -> int:
        try:
            with self.calls.open("rb") as f:
                return sum(1 for _ in f)
        except FileNotFoundError:
            return 0

    def calls_since(self, index: int) -> list[tuple[int, str]]:
        """(pid, argv) of each wrapped command from line `index` on."""
        try:
            lines = self.calls.read_text(errors="replace").splitlines()[index:]
        except FileNotFoundError:
            return []
        out = []
        for line in lines:
            pid, _, argv = line.partition(" ")
            if pid.isdigit():
                out.append((int(pid), argv))
        return out

    # --- the data, as a day of use changes it ----------------------------------------------------

    def data(self, service: str) -> Path:
        return self.cycle.base / service / "data"

    def write(self, service: str, rel: str, content: bytes) -> None:
        path = self.data(service) / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        os.chown(path, 100999, 100999)
        if path.parent != self.data(service):
            os.chown(path.parent, 100999, 100999)

    def push_new_spoke_image(self) -> None:
        """A new version of the spokes' image in the registry: the next `update` pulls it and
        restarts both spokes on it (their health check must pass, or it rolls back)."""
        self.versions_pushed += 1
        ctx = self.root / "image"
        ctx.mkdir(exist_ok=True)
        (ctx / "Dockerfile").write_text(f"FROM {self.lab.busybox_image}\nENV CHAOS_VERSION={self.versions_pushed}\n")
        ref = self.images["busybox"]
        subprocess.run(["docker", "build", "-q", "-t", ref, str(ctx)], check=True, capture_output=True, timeout=300,
                       env={"DOCKER_BUILDKIT": "0", "PATH": os.environ["PATH"]})
        subprocess.run(["docker", "push", "-q", ref], check=True, capture_output=True, timeout=300)

    def add_uncovered(self, spoke: str) -> str:
        """A new service in the spoke's stack as upstream files write one: its data in a named
        docker volume (the OS disk: no backup reaches it), written every 0.2 s, on the spoke's
        network. `adopt` is what brings it onto the dataset. Returns its container name."""
        n = len(self.added) + 1
        prefix = self.cycle.prefix
        container, volume = f"{prefix}{spoke}-db{n}", f"{prefix}vol{n}"
        compose = self.cycle.services_dir / spoke / "compose.yaml"
        doc = json.loads(compose.read_text())
        doc["services"][f"db{n}"] = {
            "image": self.images["busybox"],
            "container_name": container,
            "restart": "unless-stopped",
            "command": ["sh", "-c", "trap 'exit 0' TERM; i=0; while :; do i=$$((i+1)); "
                        "echo $$i >> /var/lib/db/log; sleep 0.2 & wait $$!; done"],
            "volumes": [f"db{n}:/var/lib/db"],
            "networks": [f"{prefix}{spoke}_net"],
            "healthcheck": {"test": ["CMD", "test", "-s", "/var/lib/db/log"], "interval": "1s", "retries": 30},
        }
        doc.setdefault("volumes", {})[f"db{n}"] = {"name": volume}
        compose.write_text(json.dumps(doc, indent=2) + "\n")
        self.added.append((container, volume))
        return container

    def stack_containers(self) -> set[str]:
        """The containers the stacks are meant to have (the hub, the spokes, what add_uncovered added)."""
        prefix = self.cycle.prefix
        return ({f"{prefix}{s}" for s in self.cycle.spokes} | {f"{prefix}central_hub"}
                | {container for container, _ in self.added})

    # --- fault effects ---------------------------------------------------------------------------

    @property
    def sshd_pidfile(self) -> Path:
        return self.root / "sshd.pid"

    def sshd_pid(self) -> int | None:
        try:
            pid = int(self.sshd_pidfile.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if Path(f"/proc/{pid}").exists() else None

    def start_sshd(self) -> None:
        """The repository server: sshd on 127.0.0.1:ssh_port for the lab's borg user, as lab.sh
        starts the lab's own, so that stopping it touches nobody else's sessions."""
        if self.sshd_pid():
            return
        subprocess.run(["/usr/sbin/sshd", "-p", str(self.ssh_port), "-o", "ListenAddress=127.0.0.1",
                        "-o", "PasswordAuthentication=no", "-o", f"PidFile={self.sshd_pidfile}",
                        "-o", f"AllowUsers={self.lab.borg_user}"], check=True, capture_output=True, timeout=60)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.ssh_port)) == 0:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"the campaign's sshd did not listen on 127.0.0.1:{self.ssh_port}")

    def stop_sshd(self) -> None:
        """The repository server goes away: its listener and every borg session on it."""
        pid = self.sshd_pid()
        if pid is None:
            return
        for child in _descendants(pid):
            _kill(child, signal.SIGKILL)
        _kill(pid, signal.SIGKILL)
        self.sshd_pidfile.unlink(missing_ok=True)

    def lab_up(self) -> None:
        """Whatever of the lab's daemons is down comes back (dockerd; the lab's own sshd)."""
        r = subprocess.run(["bash", str(LAB_SH), "up"], capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            raise RuntimeError(f"lab.sh up failed:\n{r.stdout}{r.stderr}")

    def fill_repos(self) -> None:
        free = shutil.disk_usage(self.repos).free
        subprocess.run(["fallocate", "-l", str(max(free - 4096, 4096)), str(self.repos / "filler")],
                       capture_output=True, timeout=60)

    def free_repos(self) -> None:
        (self.repos / "filler").unlink(missing_ok=True)

    @property
    def pool_filler(self) -> str:
        return f"{self.cycle.parent}-chaosfill"

    def fill_pool(self) -> None:
        """The pool full: a dataset of the harness's reserves everything but a few hundred KB."""
        avail = int(subprocess.run(["zfs", "get", "-Hp", "-o", "value", "available", self.lab.pool],
                                   capture_output=True, text=True, timeout=60).stdout.strip() or 0)
        if subprocess.run(["zfs", "list", "-H", self.pool_filler], capture_output=True, timeout=60).returncode:
            subprocess.run(["zfs", "create", "-o", "mountpoint=none", self.pool_filler], capture_output=True,
                           timeout=60)
        subprocess.run(["zfs", "set", f"refreservation={max(avail - 512 * 1024, 0)}", self.pool_filler],
                       capture_output=True, timeout=60)

    def free_pool(self) -> None:
        subprocess.run(["zfs", "set", "refreservation=none", self.pool_filler], capture_output=True, timeout=60)

    def restart_dockerd(self) -> None:
        subprocess.run(["pkill", "-x", "dockerd"], capture_output=True, timeout=30)
        for _ in range(120):
            if subprocess.run(["pgrep", "-x", "dockerd"], capture_output=True).returncode:
                break
            time.sleep(0.25)
        self.lab_up()

    def freeze_zfs(self, seconds: float) -> None:
        pid = self.zfs_fuse_pid()
        if pid:
            _kill(pid, signal.SIGSTOP)
            time.sleep(seconds)
            _kill(pid, signal.SIGCONT)

    def zfs_fuse_pid(self) -> int | None:
        out = subprocess.run(["pgrep", "-x", "zfs-fuse"], capture_output=True, text=True).stdout.split()
        return int(out[0]) if out else None

    def stubborn(self, on: bool) -> None:
        flag = self.data("photo") / STUBBORN_FLAG
        if on:
            flag.write_text("ignore SIGTERM\n")
        else:
            flag.unlink(missing_ok=True)

    def reboot(self) -> None:
        """A reboot as the stacks see it: dockerd and zfs-fuse go down, zfs-fuse comes back and
        mounts the pool, then dockerd, which starts the `unless-stopped` containers it stopped;
        the operation runs `docker-up` next, as the boot unit does."""
        subprocess.run(["pkill", "-x", "dockerd"], capture_output=True, timeout=30)
        for _ in range(120):
            if subprocess.run(["pgrep", "-x", "dockerd"], capture_output=True).returncode:
                break
            time.sleep(0.25)
        subprocess.run(["bash", str(LAB_SH), "recover-zfs"], capture_output=True, timeout=300)
        self.lab_up()

    def undo_all(self) -> None:
        self.start_sshd()
        self.free_repos()
        self.free_pool()
        self.stubborn(False)
        pid = self.zfs_fuse_pid()
        if pid:
            _kill(pid, signal.SIGCONT)
        self.lab_up()


def alive(pid: int) -> bool:
    """The process runs (exists and is not a zombie)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def _descendants(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid="], capture_output=True, text=True, timeout=30).stdout
    children: dict[int, list[int]] = {}
    for line in out.splitlines():
        p, pp = line.split()
        children.setdefault(int(pp), []).append(int(p))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _kill(pid: int, sig: int) -> bool:
    try:
        os.kill(pid, sig)
        return True
    except ProcessLookupError:
        return False


def faketime_env(env: dict[str, str], clock: str | None) -> dict[str, str]:
    """`env` for a run that (with what it starts) sees the clock moved by `clock` ("+5h", "-2d"):
    libfaketime. Go programs (docker, compose v2) read the clock without libc and see the real one."""
    if clock:
        env = {**env, "LD_PRELOAD": _faketime_lib(), "FAKETIME": clock, "FAKETIME_DONT_RESET": "1"}
    return env


def _faketime_lib() -> str:
    for d in ("/usr/lib/x86_64-linux-gnu/faketime", "/usr/lib/aarch64-linux-gnu/faketime", "/usr/lib/faketime"):
        lib = Path(d) / "libfaketime.so.1"
        if lib.is_file():
            return str(lib)
    raise RuntimeError("libfaketime is not installed (apt-get install faketime): the clock fault needs it")


def _write_shims(shims: Path, calls: Path) -> None:
    shims.mkdir(parents=True)
    for program in WRAPPED:
        real = shutil.which(program)
        if real is None:
            continue
        path = shims / program
        # exec keeps the pid: the pid logged is the real program's
        path.write_text(f'#!/bin/sh\necho "$$ {program} $*" >> {calls}\nexec {real} "$@"\n')
        path.chmod(0o755)


def _push_images(lab, name: str) -> dict[str, str]:
    """The lab's busybox and caddy images under names in the lab's registry, pushed, so that
    `update` asks a real registry (and finds nothing newer until push_new_spoke_image)."""
    images = {}
    for key, local in (("busybox", lab.busybox_image), ("caddy", lab.caddy_image)):
        ref = f"{lab.registry}/chaos/{key}-{name}:stable"
        subprocess.run(["docker", "tag", local, ref], check=True, capture_output=True, timeout=60)
        subprocess.run(["docker", "push", "-q", ref], check=True, capture_output=True, timeout=300)
        images[key] = ref
    return images


def _chaos_stacks(cycle: Cycle, images: dict[str, str]) -> None:
    """Every container restarts unless stopped and runs an image from the lab's registry; photo
    ignores SIGTERM while its flag exists."""
    for folder in sorted(cycle.services_dir.iterdir()):
        compose = folder / "compose.yaml"
        if not compose.is_file():
            continue
        doc = json.loads(compose.read_text())
        for svc in doc["services"].values():
            svc["restart"] = "unless-stopped"
            svc["image"] = images["caddy" if folder.name == "reverseproxy" else "busybox"]
            if folder.name == "photo":
                svc["command"] = ["sh", "-c", (
                    "httpd -p 8080 -h /www; "
                    f"trap 'test -e /www/{STUBBORN_FLAG} || exit 0' TERM; "
                    "while :; do sleep 3600 & wait $$!; done")]
                svc["stop_grace_period"] = "3s"
        compose.write_text(json.dumps(doc, indent=2) + "\n")
