"""Write a .env for a lab test: a unique parent dataset on the lab pool, its own services dir,
borg repos, keys and state under a temp dir. Every test gets its own, so tests never share state."""

from __future__ import annotations

import os
from pathlib import Path

LAB_PASSPHRASE = "lab-passphrase-do-not-use-7f3a9c"
# The compose the lab tests drive: v2 by default (what users run); `make test` runs the
# compose-touching tests (marker `compose`) a second time with LAB_COMPOSE=v1.
LAB_COMPOSE = os.environ.get("LAB_COMPOSE", "v2")


def write_lab_env(tmp_path: Path, lab, volume_paths: list[str], *, name: str | None = None,
                  repo_base: str | None = None, extra: dict[str, str] | None = None) -> tuple[Path, dict[str, str]]:
    """Returns (env_path, values). volume_paths are 'service/sub:UID_KEY' lines.

    The parent dataset is <pool>/<name> mounted at <pool mountpoint>/<name>; views go to
    <pool>/<name>-views so they stay outside the recursively snapshotted tree.
    """
    name = name or lab.unique("t")
    parent = f"{lab.pool}/{name}"
    mgmt = tmp_path / "management"
    services = tmp_path / "services"
    for d in (mgmt, services):
        d.mkdir(parents=True, exist_ok=True)
    values = {
        "ADMIN_USER": "root",
        "MANAGEMENT_DIR": str(mgmt),
        "VENV_DIR": str(mgmt / ".venv"),
        "SERVICES_DIR": str(services),
        "ZFS_PARENT_DATASET": parent,
        "ZFS_BASE_MOUNTPOINT": str(lab.pool_mountpoint / name),
        "BORG_REPO_BASE_PATH": repo_base or str(tmp_path / "repos"),
        "BORG_PASSPHRASE": LAB_PASSPHRASE,
        "BORG_RSH": lab.borg_rsh,
        "REMAPPED_ROOT_UID": "100000",
        "REMAPPED_APP_UID": "100999",
        "SNAPSHOT_PREFIX": "orchestrator",
        "VIEW_DATASET": f"{parent}-views",
        "VIEW_MOUNTPOINT": str(tmp_path / "views"),
        "LOCK_FILE": str(tmp_path / "orchestrator.lock"),
        "STATE_DIR": str(tmp_path / "state"),
        "HEALTH_TIMEOUT": "60",
        "STOP_TIMEOUT": "60",
        "COMPOSE_COMMAND": LAB_COMPOSE,
        "COMMAND_TIMEOUT": "120",
    }
    values.update(extra or {})
    lines = [f"{k}={v}" for k, v in values.items()]
    lines.append('SERVICE_VOLUME_PATHS_AND_OWNERS="\n' + "\n".join(volume_paths) + '\n"')
    env_path = tmp_path / ".env"
    env_path.write_text("\n".join(lines) + "\n")
    os.chmod(env_path, 0o600)
    return env_path, values


def destroy_tree(dataset: str) -> None:
    """Test teardown: remove a lab dataset tree (and its views dataset). zfs-fuse says "busy"
    for a moment after unmount, so unmount first and retry, bounded."""
    import subprocess
    import time

    for name in (f"{dataset}-views", dataset):
        if subprocess.run(["zfs", "list", "-H", name], capture_output=True, timeout=60).returncode != 0:
            continue
        subprocess.run(["zfs", "unmount", "-f", name], capture_output=True, timeout=60)
        for attempt in range(6):
            r = subprocess.run(["zfs", "destroy", "-r", "-f", name], capture_output=True, text=True, timeout=120)
            if r.returncode == 0:
                break
            time.sleep(0.3 * (attempt + 1))


def cli_argv(env_path: Path, *args: str) -> list[str]:
    import sys

    root = Path(__file__).resolve().parents[2]
    return [sys.executable, str(root / "orchestrator.py"), "--env-file", str(env_path), *args]


def run_cli(env_path: Path, *args: str, timeout: float = 300, input: str | None = None,
            path_prefix: Path | None = None):
    """Run orchestrator.py with this .env, as the Makefile does. Returns CompletedProcess.
    `path_prefix` puts a directory of fault-injecting wrappers first on PATH."""
    import subprocess

    env = dict(os.environ)
    if path_prefix:
        env["PATH"] = f"{path_prefix}:{env['PATH']}"
    return subprocess.run(cli_argv(env_path, *args), capture_output=True, text=True, timeout=timeout, input=input,
                          env=env)


def write_shim(directory: Path, program: str, script: str) -> Path:
    """A wrapper named `program` that runs `script` (sh) and otherwise execs the real program.
    In the script, "$REAL" is the real binary. For fault injection on top of real tools."""
    import shutil

    directory.mkdir(parents=True, exist_ok=True)
    real = shutil.which(program, path=os.environ["PATH"])
    path = directory / program
    path.write_text(f'#!/bin/sh\nREAL={real}\n{script}\nexec "$REAL" "$@"\n')
    path.chmod(0o755)
    return path
