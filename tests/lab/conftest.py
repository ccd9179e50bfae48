"""Fixtures for lab tests that need the whole cycle: storage set up, data seeded, a Caddy hub
and spokes running from the lab's local images, borg repositories over ssh on loopback."""

from __future__ import annotations

import random
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.lab.envfile import destroy_tree, run_cli, write_lab_env
from tests.lab.stacks import seed, volume_lines, write_services

SPOKES = ["git", "photo"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def running_containers(prefix: str) -> set[str]:
    out = subprocess.run(["docker", "ps", "--format", "{{.Names}}"], capture_output=True, text=True, check=True)
    return {n for n in out.stdout.split() if n.startswith(prefix)}


def our_snapshots(parent: str, state_dir: str | None = None) -> list[str]:
    """Snapshots the cycle made (prefix `orchestrator-`) anywhere below `parent`, except the
    last backed-up one per dataset that the run recorded as kept in `state_dir`, and the local
    history it recorded (SNAPSHOT_RETENTION)."""
    import json

    out = subprocess.run(["zfs", "get", "-H", "-r", "-o", "name", "type", parent], capture_output=True, text=True)
    kept = set()
    if state_dir and (Path(state_dir) / "kept_snapshots.json").is_file():
        entries = json.loads((Path(state_dir) / "kept_snapshots.json").read_text())
        kept = {f"{parent}/{svc}@{e['snapshot']}" for svc, e in entries.items()}
    return [n for n in out.stdout.split() if "@orchestrator-" in n and n not in kept
            and n not in history_snapshots(parent, state_dir)]


def history_snapshots(parent: str, state_dir: str | None) -> set[str]:
    """The local history a run recorded in `state_dir` (history.json), as dataset@name."""
    import json

    path = Path(state_dir or "/nonexistent") / "history.json"
    if not path.is_file():
        return set()
    return {f"{parent}/{svc}@{p['snapshot']}" for svc, points in json.loads(path.read_text()).items() for p in points}


def kept_snapshots(parent: str, state_dir: str) -> list[str]:
    """The kept ones: exactly one per backed-up dataset, and each exists."""
    import json

    out = subprocess.run(["zfs", "get", "-H", "-r", "-o", "name", "type", parent], capture_output=True, text=True)
    path = Path(state_dir) / "kept_snapshots.json"
    kept = {f"{parent}/{svc}@{e['snapshot']}" for svc, e in json.loads(path.read_text()).items()} \
        if path.is_file() else set()
    return sorted(n for n in out.stdout.split() if n in kept)


def views_left(view_dataset: str) -> list[str]:
    out = subprocess.run(["zfs", "get", "-H", "-r", "-o", "name", "type", view_dataset],
                         capture_output=True, text=True)
    return [n for n in out.stdout.split() if n != view_dataset]


@dataclass
class Cycle:
    env_path: Path
    values: dict
    prefix: str
    base: Path
    services_dir: Path
    spokes: list

    @property
    def parent(self) -> str:
        return self.values["ZFS_PARENT_DATASET"]

    def containers(self) -> set[str]:
        return running_containers(self.prefix)

    def host_is_clean(self) -> list[str]:
        """What a run must leave behind: every stack running, no snapshot but the kept last one per
        dataset, no view. Returns problems."""
        problems = []
        if len(self.containers()) != len(self.spokes) + 1:
            problems.append(f"running: {sorted(self.containers())}")
        left = our_snapshots(self.parent, self.values["STATE_DIR"])
        if left:
            problems.append(f"snapshots left: {left}")
        if views_left(self.values["VIEW_DATASET"]):
            problems.append(f"views left: {views_left(self.values['VIEW_DATASET'])}")
        return problems


def build_cycle(lab, tmp_path, *, spokes=SPOKES, repo_base=None, extra=None, stop_delay=0.0, rewrite=None,
                up_must_pass=True, paths=()) -> Cycle:
    """`rewrite(cycle, lab)`, when given, changes the stack folders before anything starts;
    `paths` are more SERVICE_VOLUME_PATHS_AND_OWNERS lines (for the stacks it adds)."""
    prefix = lab.unique("bk")
    services_dir = lab.dir / "services" / prefix
    env_path, v = write_lab_env(tmp_path, lab, volume_lines(spokes) + list(paths),
                                repo_base=repo_base or lab.ssh_repo_base(prefix),
                                extra={"SERVICES_DIR": str(services_dir), **(extra or {})})
    base = Path(v["ZFS_BASE_MOUNTPOINT"])
    cyc = Cycle(env_path, v, prefix, base, services_dir, list(spokes))
    write_services(services_dir, prefix=prefix, busybox_image=lab.busybox_image, caddy_image=lab.caddy_image,
                   base=base, spokes=spokes, port=free_port(), stop_delay=stop_delay)
    if rewrite:
        rewrite(cyc, lab)
    r = run_cli(env_path, "setup-storage")
    assert r.returncode == 0, r.stdout + r.stderr
    rng = random.Random(7)
    for svc in spokes:
        files = {"index.html": f"<h1>{svc}</h1>".encode()}
        files.update({f"d{i % 5}/f{i}.bin": rng.randbytes(rng.randint(10, 20000)) for i in range(60)})
        seed(base, svc, files)
    seeded = time.monotonic()
    up = run_cli(env_path, "docker-up")
    assert up.returncode == 0 or not up_must_pass, up.stdout + up.stderr
    # zfs-fuse keeps 1-second timestamps, and borg never caches a file whose ctime equals the
    # newest ctime of the run (race protection). One file written a second later is that newest;
    # docker-up has mostly spent that second already.
    time.sleep(max(0.0, 1.1 - (time.monotonic() - seeded)))
    for svc in spokes:
        seed(base, svc, {"stamp.txt": b"newest file"})
    return cyc


def remove_containers(prefix: str) -> None:
    """Every container whose name starts with `prefix`, running or not, removed at once (SIGKILL)."""
    out = subprocess.run(["docker", "ps", "-aq", "--filter", f"name=^{prefix}"], capture_output=True, text=True,
                         timeout=60)
    if out.stdout.split():
        subprocess.run(["docker", "rm", "-f", *out.stdout.split()], capture_output=True, timeout=120)


def teardown_cycle(cyc: Cycle) -> None:
    # No stop is under test in a teardown: the test's containers go at once, not after their grace
    # period (a slow stack's 12 s, twice a run), then docker-down removes what compose made
    # around them (the containers of stacks named without the prefix, default networks).
    remove_containers(cyc.prefix)
    run_cli(cyc.env_path, "docker-down", timeout=300)
    for net in cyc.spokes:
        subprocess.run(["docker", "network", "rm", f"{cyc.prefix}{net}_net"], capture_output=True, timeout=60)
    destroy_tree(cyc.parent)
    subprocess.run(["rm", "-rf", str(cyc.services_dir)], timeout=60)


@pytest.fixture
def cycle(lab, tmp_path):
    """Storage set up, data seeded, a hub and two spokes running; torn down afterwards."""
    cyc = build_cycle(lab, tmp_path)
    yield cyc
    teardown_cycle(cyc)
