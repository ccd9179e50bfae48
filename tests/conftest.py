"""Shared fixtures.

Tests marked `lab` run against the real tools that `tests/lab/lab.sh up` installs and starts
(zfs-fuse with a file-backed pool, dockerd with userns-remap, sshd with a borg-serve key,
locally built images). `make test` brings the lab up first.

Outside CI a missing lab skips lab tests with the reason; with CI=true a missing lab is a
failure, and so is any skipped test: CI must never pass by not running something.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAB_SH = ROOT / "tests" / "lab" / "lab.sh"
sys.path.insert(0, str(ROOT))

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@dataclass(frozen=True)
class Lab:
    dir: Path
    pool: str
    pool_mountpoint: Path
    busybox_image: str
    caddy_image: str
    postgres_image: str  # PostgreSQL 15 (+ pgbench, pg_amcheck) from Debian's packages
    apps_image: str  # Redis, SQLite and Fossil from Debian's packages
    ssh_key: Path
    ssh_known_hosts: Path
    ssh_port: int
    borg_user: str
    borg_repos: str
    borg_rsh: str
    registry: str  # host:port of a real registry on loopback

    def unique(self, stem: str) -> str:
        """A name no other test (or concurrent run) uses: for datasets, networks, projects."""
        return f"{stem}{uuid.uuid4().hex[:8]}"

    def ssh_repo_base(self, subdir: str) -> str:
        return f"ssh://{self.borg_user}@127.0.0.1:{self.ssh_port}{self.borg_repos}/{subdir}"


def _lab_env() -> dict[str, str]:
    status = subprocess.run(["bash", str(LAB_SH), "status"], capture_output=True, text=True, timeout=120)
    if status.returncode != 0:
        raise RuntimeError(f"lab is not up (run `make lab-up`):\n{status.stdout}{status.stderr}")
    out = subprocess.run(["bash", str(LAB_SH), "env"], capture_output=True, text=True, timeout=60, check=True)
    return dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)


def lab_from_env() -> Lab:
    """The running lab, as `lab.sh env` describes it (the tests' fixture and the benchmarks')."""
    env = _lab_env()
    return Lab(
        dir=Path(env["LAB_DIR"]),
        pool=env["LAB_POOL"],
        pool_mountpoint=Path(env["LAB_POOL_MOUNTPOINT"]),
        busybox_image=env["LAB_BUSYBOX_IMAGE"],
        caddy_image=env["LAB_CADDY_IMAGE"],
        postgres_image=env["LAB_POSTGRES_IMAGE"],
        apps_image=env["LAB_APPS_IMAGE"],
        ssh_key=Path(env["LAB_SSH_KEY"]),
        ssh_known_hosts=Path(env["LAB_SSH_KNOWN_HOSTS"]),
        ssh_port=int(env["LAB_SSH_PORT"]),
        borg_user=env["LAB_BORG_USER"],
        borg_repos=env["LAB_BORG_REPOS"],
        borg_rsh=env["LAB_BORG_RSH"],
        registry=env["LAB_REGISTRY"],
    )


@pytest.fixture(scope="session")
def lab() -> Lab:
    try:
        return lab_from_env()
    except Exception as exc:  # noqa: BLE001 - any failure means: no lab
        if IN_CI:
            pytest.fail(f"CI=true but the lab is not available: {exc}")
        pytest.skip(f"lab not available: {exc}")


_skipped: list[str] = []


_module_seconds: dict[str, float] = {}  # test file -> its tests' setup + call + teardown, seconds


def pytest_runtest_logreport(report):
    if report.skipped:
        _skipped.append(report.nodeid)
    path = report.nodeid.split("::", 1)[0]
    _module_seconds[path] = _module_seconds.get(path, 0.0) + report.duration


def pytest_sessionfinish(session, exitstatus):
    if IN_CI and _skipped and session.exitstatus == 0:
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter):
    """Where the run's time went, by test file (the CI budget is spent per module: shared fixtures
    are decided there), then the skips CI refuses."""
    total = sum(_module_seconds.values())
    if total > 60:
        terminalreporter.write_sep("=", "seconds by test file (setup + call + teardown), the top 20")
        for path, seconds in sorted(_module_seconds.items(), key=lambda kv: -kv[1])[:20]:
            terminalreporter.write_line(f"{seconds:8.1f}  {seconds / total:5.1%}  {path}")
        terminalreporter.write_line(f"{total:8.1f}  in all")
    if IN_CI and _skipped:
        terminalreporter.write_line(
            f"CI=true: {len(_skipped)} test(s) were skipped; in CI every test must run:", red=True
        )
        for nodeid in _skipped:
            terminalreporter.write_line(f"  {nodeid}", red=True)


# The VM lab's boot scenarios (marker vm_scenario): `make test-vm` runs them all; `make test`
# sets VM_SCENARIOS=rotate and runs ROTATION of them, chosen by the commit, so every scenario
# runs in CI every few commits and the whole suite stays within its time budget. Scenarios are
# collected from every file of tests/vm (test_provision.py's and test_first_hour.py's boot a guest
# of their own). One: the scenarios grew to nine, and the longest (total loss ~19 min, a power cut
# during borg ~17 min under TCG; the first hour ~10-15 min) next to the setup would outlast the host
# pass, making the VM lab CI's critical path.
ROTATION = 1


def _commit() -> str:
    out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else ""


def rotated(names: list[str], key: str, keep: int = ROTATION) -> list[str]:
    """`keep` of `names`, spread evenly and chosen by `key` (a commit id): deterministic, and
    consecutive commits cover every name."""
    if keep >= len(names) or not names:
        return list(names)
    start = int(key[:8] or "0", 16) % len(names)
    step = len(names) // keep
    return [names[(start + i * step) % len(names)] for i in range(keep)]


def pytest_collection_modifyitems(config, items):
    """The fleet tests boot systemd-nspawn machines, whose mount namespaces start as copies of
    the host's (zfs-fuse mounts included); zfs-fuse can then call a lab dataset that was mounted
    meanwhile busy, and its teardown fails. So they run after every other test in one process;
    `make test` runs them in a process of their own beside the host lab, in a mount namespace
    without the lab's mounts (tests/lab/apart.sh).

    VM_SCENARIOS=rotate deselects (never skips) the boot scenarios not chosen for this commit."""
    items.sort(key=lambda item: item.get_closest_marker("fleet") is not None)
    if os.environ.get("VM_SCENARIOS", "all") != "rotate":
        return
    scenarios = [item.name for item in items if item.get_closest_marker("vm_scenario")]
    chosen = set(rotated(scenarios, _commit()))
    dropped = [item for item in items if item.get_closest_marker("vm_scenario") and item.name not in chosen]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if item not in dropped]
        print(f"\nVM_SCENARIOS=rotate: this commit runs {sorted(chosen)}; `make test-vm` runs all {len(scenarios)}")
