"""Real Debian hosts for the fleet tests: systemd-nspawn machines booted with systemd; and the
controller's side every test that runs the playbook shares (the nspawn fleet, the VM lab's
provisioning scenario): the ansible virtualenv, the vault, `make fleet-*`, PLAY RECAP.

Each host is a copy of one cached bookworm rootfs (mmdebstrap, cached under /var/tmp keyed
by its inputs), booted by systemd-nspawn in a network namespace of its own that this module
creates: a veth pair, the host side 10.231.<n>.1/30, the machine 10.231.<n>.2/30. Nothing
listens on the machine's network but the machine itself; its ufw rules live in its own
namespace and never touch this machine's firewall. cloud-init in the rootfs reads a NoCloud
seed rendered from deploy/cloud-init/user-data: the admin user with the test key, as a new VM
would get it.

The rootfs carries the packages the playbook installs (the machines have no route to a
mirror); the playbook's apt tasks still run and find them present.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import string
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_VENV = Path(os.environ.get("ANSIBLE_VENV", ROOT / ".venv-ansible"))
CACHE = Path(os.environ.get("FLEET_CACHE", "/var/tmp/orchestrator-fleet"))
MIRROR = "http://deb.debian.org/debian"
SUITE = "bookworm"
# What a Debian cloud image has (python3, sudo, sshd, cloud-init) plus what the playbook's
# apt tasks install with Docker and ZFS switched off (roles admin_user: base_packages).
PACKAGES = [
    "systemd-sysv", "dbus", "openssh-server", "sudo", "python3", "python3-apt", "python3-venv", "cloud-init",
    "iproute2", "ca-certificates", "make", "rsync", "ufw", "cron", "borgbackup", "python3-llfuse", "logrotate",
]
NSPAWN_ENV = {"SYSTEMD_NSPAWN_API_VFS_WRITABLE": "network"}  # ufw writes /proc/sys/net in its namespace


def rootfs_key() -> str:
    return hashlib.sha256(f"{SUITE} {MIRROR} {' '.join(sorted(PACKAGES))} v1".encode()).hexdigest()[:12]


def build_rootfs() -> tuple[Path, float]:
    """The cached rootfs (built when its inputs changed) and how long building took (0: cached)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    target = CACHE / f"rootfs-{SUITE}-{rootfs_key()}"
    if (target / "etc" / "os-release").exists():
        return target, 0.0
    started = time.monotonic()
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    subprocess.run(["mmdebstrap", "--variant=minbase", "--include=" + ",".join(PACKAGES), SUITE, str(tmp), MIRROR],
                   check=True, capture_output=True, timeout=1200)
    tmp.rename(target)
    for old in CACHE.glob(f"rootfs-{SUITE}-*"):  # an older key: inputs changed
        if old != target:
            shutil.rmtree(old, ignore_errors=True)
    return target, time.monotonic() - started


def run(argv: list[str], timeout: float = 900, check: bool = True, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"{argv} exited {proc.returncode}\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}")
    return proc


def recap(output: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP lines: host -> {ok, changed, unreachable, failed, ...}."""
    rows = {}
    for host, counts in re.findall(r"^(\S+)\s+:\s+(ok=.*)$", output, re.M):
        rows[host] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", counts)}
    return rows


def ansible_venv() -> tuple[Path, float]:
    """`make ansible-venv` (ansible-core, its collections, ansible-lint) and how long it took."""
    started = time.monotonic()
    run(["make", "-C", str(ROOT), "ansible-venv", f"ANSIBLE_VENV={ANSIBLE_VENV}"], timeout=900)
    return ANSIBLE_VENV, time.monotonic() - started


def write_vault(group_vars: Path, work: Path, secrets: dict) -> Path:
    """group_vars/<group>/vault.yml with `secrets`, encrypted by ansible-vault with a password in
    work/vault-pass (what ANSIBLE_ARGS=--vault-password-file then names). Returns the password file."""
    vault = group_vars / "vault.yml"
    vault.write_text(json.dumps(secrets))
    password = work / "vault-pass"
    password.write_text("fleet-test-vault\n")
    run([str(ANSIBLE_VENV / "bin" / "ansible-vault"), "encrypt", "--vault-password-file", str(password), str(vault)])
    assert not any(str(v) in vault.read_text() for v in secrets.values())
    return password


def fleet_make(target: str, inventory: Path, vault_pass: Path, *args: str, check: bool = True,
               timeout: float = 1200) -> tuple[subprocess.CompletedProcess, float]:
    """`make <target> INVENTORY=... ANSIBLE_ARGS=...` as a user runs it, and its seconds."""
    env = {**os.environ, "ANSIBLE_HOST_KEY_CHECKING": "False", "ANSIBLE_FORCE_COLOR": "0", "NO_COLOR": "1"}
    argv = ["make", "-C", str(ROOT), target, f"INVENTORY={inventory}", f"ANSIBLE_VENV={ANSIBLE_VENV}",
            f"ANSIBLE_ARGS=--vault-password-file {vault_pass} " + " ".join(args)]
    started = time.monotonic()
    proc = run(argv, timeout=timeout, check=check, env=env)
    return proc, time.monotonic() - started


def render_user_data(template: Path, admin_user: str, public_key: str, hostname: str) -> str:
    return string.Template(template.read_text()).substitute(
        ADMIN_USER=admin_user, SSH_PUBLIC_KEY=public_key, HOSTNAME=hostname)


@dataclass
class Machine:
    name: str
    index: int
    root: Path
    process: subprocess.Popen | None = None

    @property
    def netns(self) -> str:
        return f"orch-{self.name}"

    @property
    def veth(self) -> str:
        return f"orch-{self.name}"[:15]

    @property
    def address(self) -> str:
        return f"10.231.{self.index}.2"

    def create(self, rootfs: Path, user_data: str) -> None:
        self.destroy()
        subprocess.run(["cp", "-a", "--reflink=auto", str(rootfs), str(self.root)], check=True, timeout=300)
        (self.root / "etc" / "hostname").write_text(self.name + "\n")
        for key in (self.root / "etc" / "ssh").glob("ssh_host_*"):
            key.unlink()  # each machine its own host keys
        subprocess.run(["ssh-keygen", "-A", "-f", str(self.root)], check=True, capture_output=True, timeout=60)
        seed = self.root / "var" / "lib" / "cloud" / "seed" / "nocloud"
        seed.mkdir(parents=True)
        (seed / "user-data").write_text(user_data)
        (seed / "meta-data").write_text(f"instance-id: {self.name}\nlocal-hostname: {self.name}\n")
        (self.root / "etc" / "cloud" / "cloud.cfg.d" / "90-fleet-test.cfg").write_text(
            "datasource_list: [ NoCloud, None ]\n"
            "locale: C.UTF-8\n")  # minbase has no en_US locale to generate
        # No dockerd in these machines: a stand-in docker.service so `make install-autostart`
        # (its unit is ordered after docker) verifies and enables the real unit against systemd.
        (self.root / "etc" / "systemd" / "system" / "docker.service").write_text(
            "[Unit]\nDescription=stand-in for dockerd (fleet tests)\n[Service]\nType=oneshot\n"
            "ExecStart=/bin/true\nRemainAfterExit=yes\n[Install]\nWantedBy=multi-user.target\n")
        ip = ["ip"]
        subprocess.run(ip + ["netns", "add", self.netns], check=True, timeout=30)
        subprocess.run(ip + ["link", "add", self.veth, "type", "veth", "peer", "name", "host0", "netns", self.netns],
                       check=True, timeout=30)
        subprocess.run(ip + ["addr", "add", f"10.231.{self.index}.1/30", "dev", self.veth], check=True, timeout=30)
        subprocess.run(ip + ["link", "set", self.veth, "up"], check=True, timeout=30)
        subprocess.run(ip + ["-n", self.netns, "addr", "add", f"{self.address}/30", "dev", "host0"], check=True,
                       timeout=30)
        subprocess.run(ip + ["-n", self.netns, "link", "set", "host0", "up"], check=True, timeout=30)
        subprocess.run(ip + ["-n", self.netns, "link", "set", "lo", "up"], check=True, timeout=30)
        log = open(self.root.with_suffix(".log"), "w")  # noqa: SIM115 - the machine's console, kept open
        self.process = subprocess.Popen(
            ["systemd-nspawn", "--quiet", "-D", str(self.root), "--boot", f"--machine={self.name}",
             "--register=no", "--keep-unit", "--capability=CAP_NET_ADMIN",
             f"--network-namespace-path=/run/netns/{self.netns}"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **NSPAWN_ENV},
            start_new_session=True)

    def wait_port(self, port: int, timeout: float = 120) -> None:
        import socket

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited: see {self.root.with_suffix('.log')}")
            try:
                with socket.create_connection((self.address, port), timeout=2):
                    return
            except OSError:
                time.sleep(0.5)
        raise TimeoutError(f"{self.name}: nothing on {self.address}:{port} after {timeout}s")

    def destroy(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # nspawn shuts the machine down
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)
        self.process = None
        subprocess.run(["ip", "link", "del", self.veth], capture_output=True, timeout=30)
        subprocess.run(["ip", "netns", "del", self.netns], capture_output=True, timeout=30)
        if self.root.exists():
            shutil.rmtree(self.root)


def need(what: str, *tools: str) -> None:
    """`what` (the fleet tests, the provisioning scenario) cannot run without `tools`: a failure
    in CI, a skip on a developer's machine that lacks them."""
    import pytest

    from tests.conftest import IN_CI

    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        msg = f"{what} needs {', '.join(missing)} (tests/lab/lab.sh installs them)"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)
