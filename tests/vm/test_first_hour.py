"""The first hour: a fresh Debian 13 guest to every service PROTECTED, by README's "On your VM".

A guest of its own (a fresh root overlay on the cached image, blank pool and borg disks: the
shared services VM of test_vm.py is not touched), set up the way a newcomer does it, every line
typed into the guest counted and timed:

  make install; the .env from .env.example; the stacks into SERVICES_DIR; make config-check;
  make setup-pool (answered y); make setup-storage; make check-stacks, and **each hint it prints
  followed as printed**, then check-stacks again until it passes; make docker-up; make backup-all;
  make install-autostart; make install-cron; make doctor; make status.

The stacks, as upstream ships them (their repository, path and commit in each SOURCE.md):
  firefly      Firefly III (tests/fixtures/upstream-as-shipped/firefly): its database and uploads
               in named docker volumes, a published port, its own non-external network;
  pihole       Pi-hole (tests/fixtures/upstream-as-shipped/pihole): DNS on 53 tcp+udp, the
               exception it declares, its web UI on the hub's 80 and 443, `./etc-pihole`;
  uptime-kuma  Uptime Kuma (services/status/compose.yaml, upstream's file unchanged): `./data`,
               a published port;
and the hub, the project's own `services/reverseproxy` copied, its Caddyfile given one site per
stack (what docs/services.md tells a user to do).

No registry is reachable: each upstream image is a stand-in built in the guest from the lab's
busybox and Caddy images (tests/lab/lab.sh images) and tagged with upstream's name, so compose
finds it as if pulled. They keep their data where the real ones do.

A hint is followed literally: its own words decide the edit (an override beside the upstream
file, the hub's compose file, `make adopt`); a hint the test has no reading for fails the test
with the hint. After every edit compose must still accept the stack (`docker compose config`),
and the stacks must come up and be backed up: no hint may lead to a broken stack.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from tests.vm import machine
from tests.vm.test_vm import backup_port

pytestmark = [pytest.mark.lab, pytest.mark.vm]

HOME = "/root/homelab"
SERVICES = "/root/services"
BASE = "/datapool/services"  # .env.example's ZFS_BASE_MOUNTPOINT, kept
POOL_DISKS = [f"/dev/disk/by-id/virtio-{machine.DISK_SERIALS[d]}" for d in machine.POOL_DISKS]
PASSPHRASE = "first-hour-passphrase-long-and-random-7d1c"
REPO = machine.REPO
UPSTREAM = {
    "firefly": REPO / "tests" / "fixtures" / "upstream-as-shipped" / "firefly",
    "pihole": REPO / "tests" / "fixtures" / "upstream-as-shipped" / "pihole",
    "uptime-kuma": REPO / "services" / "status",
}
UPSTREAM_FILES = {"firefly": ["docker-compose.yml", ".env", ".db.env"], "pihole": ["docker-compose.yml"],
                  "uptime-kuma": ["compose.yaml"]}
# the exception a DNS server declares (its reason is the user's)
EXCEPTIONS = {"pihole": "DNS for the LAN: clients query port 53 on this host directly"}
# the hub's sites: one per stack, the upstream each stack's web UI answers on (the service name)
SITES = {"firefly": "app:8080", "pihole": "pihole:80", "uptime-kuma": "uptime-kuma:3001"}
# Stand-ins for upstream's images, built in the guest (docker build, FROM the lab's busybox):
# each writes where the real one keeps its data, and serves its web UI on upstream's port
STANDINS = {
    "fireflyiii/core:latest": ("/var/www/html/storage/upload/receipt.txt", "httpd -f -p 8080 -h /www"),
    "mariadb:lts": ("/var/lib/mysql/ibdata1", "while :; do date >> /var/lib/mysql/log; sleep 5 & wait $!; done"),
    "pihole/pihole:latest": ("/etc/pihole/pihole.toml", "httpd -f -p 80 -h /www"),
    "louislam/uptime-kuma:1": ("/app/data/kuma.db", "httpd -f -p 3001 -h /www"),
}


class Override(list):
    """`!override [...]` in compose's YAML."""


class Reset(list):
    """`!reset []` in compose's YAML."""


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(Override, lambda d, v: d.represent_sequence("!override", list(v), flow_style=True))
_Dumper.add_representer(Reset, lambda d, v: d.represent_sequence("!reset", list(v), flow_style=True))


class _Loader(yaml.SafeLoader):
    pass


_Loader.add_constructor("!override", lambda loader, node: Override(loader.construct_sequence(node)))
_Loader.add_constructor("!reset", lambda loader, node: Reset(loader.construct_sequence(node)))


def dump(doc: dict) -> str:
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=False, default_flow_style=False)


class User:
    """What the newcomer types into the guest, each line counted and timed, and each file edited."""

    def __init__(self, vm):
        self.vm = vm
        self.commands: list[tuple[str, float, int]] = []  # (line, seconds, exit code)
        self.edits: list[tuple[str, str, int]] = []  # (file, why, the check-stacks run it followed)
        self.round = 0  # check-stacks runs so far: the edits after one are one editor session per file
        self.outputs: dict[str, str] = {}
        self.started = time.monotonic()

    def type(self, line: str, *, answer: str | None = None, expect: int | None = 0, timeout: float = 1800):
        started = time.monotonic()
        r = self.vm.ssh(f"cd {HOME} && {line}", check=False, input=answer, timeout=timeout)
        took = time.monotonic() - started
        self.commands.append((line, took, r.returncode))
        self.outputs[line] = r.stdout + r.stderr
        print(f"\n$ {line}   # {took:.0f} s, exit {r.returncode}\n{(r.stdout + r.stderr).rstrip()[-6000:]}")
        if expect is not None and r.returncode != expect:
            raise AssertionError(f"`{line}` exited {r.returncode}, expected {expect}:\n{r.stdout[-4000:]}\n"
                                 f"{r.stderr[-4000:]}")
        return r

    def read(self, path: str) -> str:
        r = self.vm.ssh(f"cat {path} 2>/dev/null || true")
        return r.stdout

    def edit(self, path: str, text: str, why: str) -> None:
        """The user opens `path` in an editor and leaves it as `text` (one edit, counted)."""
        self.vm.ssh(f"mkdir -p $(dirname {path}) && cat > {path}", input=text)
        self.edits.append((path, why, self.round))

    def sessions(self) -> int:
        """Editor sessions: one per file after each check-stacks run (its hints read in one go)."""
        return len({(path, r) for path, _why, r in self.edits})

    def minutes(self) -> float:
        return (time.monotonic() - self.started) / 60


def env_from_example(example: str, server: dict) -> str:
    """.env.example as the newcomer leaves it: their paths (root's home), their passphrase, the
    repositories on their backup server with its ssh command, the hub's two directories kept from
    the example and the example's other stacks (git, photo, status) removed."""
    values = {"ADMIN_USER": "root", "MANAGEMENT_DIR": HOME, "VENV_DIR": f"{HOME}/.venv", "SERVICES_DIR": SERVICES,
              "BORG_REPO_BASE_PATH": server["repo_base"], "BORG_PASSPHRASE": PASSPHRASE,
              "BORG_RSH": f'"{server["rsh"]}"'}
    text = example
    for key, value in values.items():
        text, n = re.subn(rf"^{key}=.*$", lambda _m, k=key, v=value: f"{k}={v}", text, flags=re.M)
        assert n == 1, key
    text = re.sub(r'^BORG_RETENTION_OVERRIDES="\n.*?\n"\n', "", text, flags=re.M | re.S)
    text, n = re.subn(r'^SERVICE_VOLUME_PATHS_AND_OWNERS="\n.*?\n"$',
                      'SERVICE_VOLUME_PATHS_AND_OWNERS="\nreverseproxy/caddy_data:REMAPPED_ROOT_UID\n'
                      'reverseproxy/caddy_config:REMAPPED_ROOT_UID\n"', text, flags=re.M | re.S)
    assert n == 1
    return text


def hub_caddyfile(project_caddyfile: str) -> str:
    """The project's Caddyfile with the example's sites (git, photo, status) replaced by one per stack."""
    head = project_caddyfile.split("\ngit.homelab.lan {")[0]
    tail = "backups.homelab.lan {" + project_caddyfile.split("backups.homelab.lan {", 1)[1]
    sites = "".join(f"{name}.homelab.lan {{\n\ttls internal\n\timport while_backing_up\n\treverse_proxy {up}\n}}\n\n"
                    for name, up in SITES.items())
    return head + "\n" + sites + tail


def standin_dockerfiles() -> dict[str, str]:
    """Upstream's image name -> the Dockerfile of its stand-in (FROM the lab's busybox)."""
    files = {}
    for image, (data, serve) in STANDINS.items():
        directory = data.rsplit("/", 1)[0]
        cmd = (f"trap 'exit 0' TERM; [ -s {data} ] || echo 'first {image}' > {data}; "
               f"echo '{image}' > /www/index.html; {serve} & wait $!")
        files[image] = (f"FROM orchestrator-lab/busybox:1\nRUN mkdir -p {directory} /www\n"
                        f"CMD {json.dumps(['sh', '-c', cmd])}\n")
    # alpine, for Firefly's cron container: its command runs `apk add tzdata`, then busybox's crond
    files["alpine:latest"] = ("FROM orchestrator-lab/busybox:1\n"
                              "RUN mkdir -p /sbin /var/spool/cron/crontabs /usr/share/zoneinfo && "
                              "printf '#!/bin/sh\\nexit 0\\n' > /sbin/apk && chmod +x /sbin/apk\n")
    return files


def build_standins(vm) -> None:
    """upstream's images, as if pulled: the lab's busybox and Caddy images built in the guest
    (after setup-storage: docker's remapped store), the stand-ins FROM busybox, Caddy tagged."""
    vm.ssh(f"cd {HOME} && bash tests/lab/lab.sh images && docker tag orchestrator-lab/caddy:1 caddy:2.8.4-alpine",
           timeout=1800)
    for n, (image, dockerfile) in enumerate(standin_dockerfiles().items()):
        vm.ssh(f"mkdir -p /root/standins/{n} && cat > /root/standins/{n}/Dockerfile", input=dockerfile)
        vm.ssh(f"DOCKER_BUILDKIT=0 docker build -q -t {image} /root/standins/{n} >/dev/null", timeout=900)


@pytest.fixture(scope="module")
def backup_server():
    """The user's backup server: a directory of the host lab's borg server (sshd on 127.0.0.1, user
    borgsrv, `borg serve`), which the guest reaches as machine.BACKUP_SERVER:22 through qemu's
    guestfwd, as the total-loss scenario does. The guest uses the lab's borg key (already in the
    server's authorized_keys), so the server's files are not changed; the directory is removed."""
    from tests.conftest import lab_from_env

    port = backup_port()
    if port is None:
        pytest.skip("the host lab's sshd is not up (make lab-up): no backup server for the first hour")
    lab = lab_from_env()
    with machine.host_lab_backup_server(lab, "vm-first-hour-") as server:
        server["port"] = port
        yield server


@pytest.fixture(scope="module")
def fresh_guest(backup_server):
    image = machine.build_image()
    vm = machine.VM(image, backup_port=backup_server["port"])
    try:
        vm.boot()
        # The image carries Debian's caddy package (the lab's Caddy image is built from its binary),
        # whose caddy.service serves :80 at boot; a fresh Debian has none, and the hub needs 80 and 443
        vm.ssh("systemctl disable --now caddy.service >/dev/null 2>&1 || true")
        busy = vm.ssh("ss -Hltnu '( sport = :80 or sport = :443 or sport = :53 )'").stdout.strip()
        assert not busy, f"the hub's and Pi-hole's ports are taken in the fresh guest:\n{busy}"
        # the project as `git clone` leaves it, and the wheels `make install` reads (no network)
        wheels = machine.wheelhouse(machine.guest_python(vm.image))
        vm.push_tree(machine.project_files(), REPO, HOME)
        vm.push_tree([p.relative_to(wheels) for p in wheels.iterdir()], wheels, "/root/wheels")
        # the upstream files, as the user downloads them (fetching them is not counted)
        tmp = Path(tempfile.mkdtemp(prefix="orchestrator-first-hour."))
        for stack, files in UPSTREAM_FILES.items():
            (tmp / stack).mkdir()
            for name in files:
                shutil.copy(UPSTREAM[stack] / name, tmp / stack / name)
        vm.push_tree([p.relative_to(tmp) for p in tmp.rglob("*") if p.is_file()], tmp, "/root/downloads")
        shutil.rmtree(tmp)
        yield vm
    finally:
        print(f"\nVM boots (s): {[round(b) for b in vm.boots]}; console: {vm.console}")
        vm.down()


HINT_FILE = re.compile(rf"^(?:warning: )?(?P<file>{re.escape(SERVICES)}/(?P<stack>[^/]+)/[^:]+)(?::\d+)?: (?P<msg>.*)$")


class Stacks:
    """The stack folders' files the hints change, read from and written to the guest."""

    def __init__(self, user: User):
        self.user = user

    def compose_of(self, stack: str) -> str:
        for name in ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml"):
            if self.user.vm.ssh(f"test -f {SERVICES}/{stack}/{name}", check=False).returncode == 0:
                return f"{SERVICES}/{stack}/{name}"
        raise AssertionError(f"{stack} has no compose file")

    def override(self, stack: str, change, why: str) -> None:
        """Change the stack's compose.override.yaml (made when missing): the upstream file stays as shipped."""
        path = f"{SERVICES}/{stack}/compose.override.yaml"
        doc = yaml.load(self.user.read(path) or "{}", Loader=_Loader) or {}
        change(doc)
        self.user.edit(path, dump(doc), why)

    def hub(self, change, why: str) -> None:
        """The hub's own compose file (the user's file, copied from the project)."""
        path = f"{SERVICES}/reverseproxy/compose.yaml"
        doc = yaml.load(self.user.read(path), Loader=_Loader)
        change(doc)
        self.user.edit(path, dump(doc), why)

    def accepted_by_compose(self, stack: str) -> None:
        """compose still reads the stack, with every file it merges."""
        r = self.user.vm.ssh(f"cd {SERVICES}/{stack} && ZFS_BASE_MOUNTPOINT={BASE} docker compose config -q",
                             check=False)
        assert r.returncode == 0, f"a followed hint broke {stack}: compose refuses it:\n{r.stdout}{r.stderr}"


def put(doc: dict, *keys: str, value) -> None:
    for key in keys[:-1]:
        doc = doc.setdefault(key, {})
    doc[keys[-1]] = value


def service_networks(doc: dict, service: str, net: str) -> None:
    svc = doc.setdefault("services", {}).setdefault(service, {})
    nets = svc.get("networks")
    if isinstance(nets, dict):
        nets.setdefault(net, None)
    else:
        nets = list(nets or [])
        if net not in nets:
            nets.append(net)
        svc["networks"] = nets
    doc.setdefault("networks", {})[net] = {"external": True}


def hub_leaves(doc: dict, net: str) -> None:
    for svc in doc["services"].values():
        nets = svc.get("networks")
        if isinstance(nets, list) and net in nets:
            nets.remove(net)
        elif isinstance(nets, dict):
            nets.pop(net, None)
    doc.get("networks", {}).pop(net, None)


def follow(hints: list[str], stacks: Stacks, user: User, log: list[tuple[str, str]]) -> set[str]:
    """Apply each hint as printed. Returns the stacks whose files changed."""
    touched: set[str] = set()
    adopt: list[str] = []
    for line in hints:
        copied = re.match(r"^copied: (?P<stack>\S+): .*\(make adopt SERVICE_NAME=(?P<s>\S+) moves it onto the "
                          r"dataset for that\)$", line)
        if copied:
            adopt.append(copied["s"])
            log.append((line, f"make adopt SERVICE_NAME={copied['s']}"))
            continue
        m = HINT_FILE.match(line)
        if not m:
            continue
        stack, msg = m["stack"], m["msg"]
        h = re.match(r"service '(?P<svc>[^']+)' publishes ports .*: only the hub \((?P<hub>[^)]+)\) may: remove them "
                     r"\(in its compose\.override\.yaml, service '[^']+': `ports: !reset \[\]`\), or declare "
                     r"x-orchestrator\.allow\.publish with the reason$", msg)
        if h and stack in EXCEPTIONS:
            stacks.override(stack, lambda d, s=stack: put(d, "x-orchestrator", "allow", "publish", value=EXCEPTIONS[s]),
                            f"declare allow.publish ({line})")
            log.append((line, f"{stack}/compose.override.yaml: x-orchestrator.allow.publish"))
            touched.add(stack)
            continue
        if h:
            svc = h["svc"]
            stacks.override(stack, lambda d, svc=svc: put(d, "services", svc, "ports", value=Reset()),
                            f"remove the ports ({line})")
            log.append((line, f"{stack}/compose.override.yaml: {svc} ports: !reset []"))
            touched.add(stack)
            continue
        h = re.match(r"service '(?P<svc>[^']+)' publishes host ports that are published again \(.*\): docker binds a "
                     r"host port once, so one of them would not start; publish only the others: in its "
                     r"compose\.override\.yaml, service '[^']+' `ports: !override \[(?P<keep>.*)\]`$", msg)
        if h:
            svc, keep = h["svc"], yaml.safe_load(f"[{h['keep']}]")
            stacks.override(stack, lambda d, svc=svc, keep=keep: put(d, "services", svc, "ports", value=Override(keep)),
                            f"keep only {keep} ({line})")
            log.append((line, f"{stack}/compose.override.yaml: {svc} ports: !override {keep}"))
            touched.add(stack)
            continue
        h = re.match(r"reverse_proxy upstream '(?P<host>[^']+)' is in stack (?P<stack>\S+), on no network the hub "
                     r"shares: put it on that stack's external network \(e\.g\. (?P<net>\S+)\) and the hub too$", msg)
        if h:
            spoke, net, host = h["stack"], h["net"], h["host"]
            stacks.override(spoke, lambda d, host=host, net=net: service_networks(d, host, net),
                            f"{host} joins {net} ({line})")
            stacks.hub(lambda d, net=net: service_networks(d, next(iter(d["services"])), net),
                       f"the hub joins {net} ({line})")
            log.append((line, f"{spoke}/compose.override.yaml: {host} on external {net}; the hub joins {net}"))
            touched |= {spoke, "reverseproxy"}
            continue
        if re.match(r"declares no external network: each spoke needs its own, joined by the hub \(e\.g\. \S+\)$", msg):
            # the same stack's upstream line (above) names the service and does the edit
            assert any(f"is in stack {stack}, on no network the hub shares" in h for h in hints), line
            log.append((line, "(with the hub's upstream line of the same stack)"))
            continue
        h = re.match(r"the hub joins '(?P<net>[^']+)', which no stack declares: .*\(remove it from the hub\)$", msg)
        if h:
            net = h["net"]
            stacks.hub(lambda d, net=net: hub_leaves(d, net), f"the hub leaves {net} ({line})")
            log.append((line, f"reverseproxy/compose.yaml: {net} removed"))
            touched.add("reverseproxy")
            continue
        h = re.match(r"the hub does not join '(?P<net>[^']+)', the network of \S+$", msg)
        if h:
            net = h["net"]
            stacks.hub(lambda d, net=net: service_networks(d, next(iter(d["services"])), net),
                       f"the hub joins {net} ({line})")
            log.append((line, f"reverseproxy/compose.yaml: joins {net}"))
            touched.add("reverseproxy")
            continue
        h = re.search(r": uncovered \(docker volume on the OS disk\); fix: make adopt SERVICE_NAME=(?P<s>\S+) \(moves "
                      r"it onto the dataset\)", msg)
        if h:
            adopt.append(h["s"])
            log.append((line, f"make adopt SERVICE_NAME={h['s']}"))
            continue
        raise AssertionError(f"a hint this test has no reading for (follow it by hand, then teach the test):\n{line}")
    for stack in sorted(touched):
        stacks.accepted_by_compose(stack)
    for stack in dict.fromkeys(adopt):
        # adopt asks before it stops anything and moves data: the user answers y
        user.type(f"make adopt SERVICE_NAME={stack}", answer="y\n")
        stacks.accepted_by_compose(stack)
    return touched | set(adopt)


def status_json(vm) -> dict:
    """`make status JSON=1`, read by the test (the user reads `make status`): not counted."""
    out = vm.ssh(f"cd {HOME} && make --no-print-directory status JSON=1").stdout
    return json.JSONDecoder().raw_decode(out[out.index("{"):])[0]


@pytest.mark.vm_scenario
def test_the_first_hour_on_a_fresh_debian_13_every_hint_followed_every_service_protected(fresh_guest,
                                                                                          backup_server):
    vm = fresh_guest
    user = User(vm)
    stacks = Stacks(user)
    # 1. make install, the .env, the stacks into SERVICES_DIR, setup-pool, setup-storage
    started = time.monotonic()
    install = user.type("make install PIP_NO_INDEX=1 PIP_FIND_LINKS=/root/wheels")
    install_seconds = time.monotonic() - started
    install_lines = (install.stdout + install.stderr).strip().splitlines()
    user.type("cp .env.example .env && chmod 600 .env")
    user.edit(f"{HOME}/.env", env_from_example((REPO / ".env.example").read_text(), backup_server),
              "the .env: paths, passphrase, the backup server")
    # the key the backup server knows, and its host key (the user's own, made when they set it up)
    user.type("install -d -m 700 /root/.ssh && install -m 600 /dev/stdin /root/.ssh/borg_ed25519",
              answer=backup_server["key"])
    user.edit("/root/.ssh/borg_known_hosts", backup_server["known_hosts"], "the backup server's host key")
    user.type(f"mkdir -p {SERVICES} && cp -r services/reverseproxy {SERVICES}/ && "
              f"cp -r /root/downloads/firefly /root/downloads/pihole /root/downloads/uptime-kuma {SERVICES}/")
    caddyfile = hub_caddyfile((REPO / "services/reverseproxy/Caddyfile").read_text())
    user.edit(f"{SERVICES}/reverseproxy/Caddyfile", caddyfile, "the hub's Caddyfile: one site per stack")
    user.type("make config-check")
    pool = user.type(f'make setup-pool DISKS="{" ".join(POOL_DISKS)}"', answer="y\n")
    assert "pool datapool: ONLINE, mirror of 2 disks" in pool.stdout, pool.stdout
    user.type("make setup-storage")

    # 2. check-stacks, each hint followed as printed, until it passes
    followed: list[tuple[str, str]] = []
    rounds = 0
    while True:
        rounds += 1
        check = user.type("make check-stacks", expect=None)
        user.round = rounds
        out = check.stdout + check.stderr
        if check.returncode == 0:
            break
        assert rounds <= 4, f"check-stacks still fails after {rounds - 1} rounds of hints:\n{out}"
        hints = [ln for ln in out.splitlines() if ln.startswith((SERVICES, "warning: " + SERVICES, "copied: "))]
        assert hints, f"check-stacks failed without a hint to follow:\n{out}"
        follow(hints, stacks, user, followed)
    # nothing left that a hint would still ask for: no warning, nothing copied outside the snapshot
    assert not [ln for ln in out.splitlines() if ln.startswith(("warning: ", "copied: "))], out
    assert re.search(r"\b0 uncovered", out) or "uncovered" not in out, out
    accepted = [ln for ln in out.splitlines() if ln.startswith("accepted: ")]
    assert accepted == [f"accepted: pihole: service 'pihole' publishes 53:53/tcp, 53:53/udp: allowed "
                        f"({EXCEPTIONS['pihole']})"], out

    # 3. the images (upstream's, pulled: here stand-ins built in the guest), docker-up, backup-all
    images_started = time.monotonic()
    build_standins(vm)
    images_seconds = time.monotonic() - images_started
    user.type("make docker-up")
    containers = json.loads(vm.ssh("docker inspect $(docker ps -aq)").stdout)
    state = {c["Name"].lstrip("/"): c["State"]["Status"] for c in containers}
    assert len(state) == 6 and set(state.values()) == {"running"}, state
    assert {"central_hub", "firefly_iii_core", "firefly_iii_db", "firefly_iii_cron", "pihole"} <= set(state), state
    # the hub reaches each stack's web UI by its name, on the network the hints gave both
    for name, upstream in SITES.items():
        page = vm.ssh(f"docker exec central_hub wget -q -O - http://{upstream}/").stdout
        assert page.strip(), (name, upstream)
    # each stand-in wrote its data on the dataset (adopted), not on the OS disk
    for stack, name in (("firefly", "ibdata1"), ("firefly", "receipt.txt"), ("pihole", "pihole.toml"),
                        ("uptime-kuma", "kuma.db")):
        found = vm.ssh(f"find {BASE}/{stack} -name {name} -size +0").stdout.split()
        assert len(found) == 1, (stack, name, found)
    user.type("make backup-all")
    # status calls a service AT RISK until its archive was restored once and its repository
    # checked: the weekly drill and the monthly check (install-cron) do it, the first day by hand
    user.type("make drill")
    user.type("make check-repos REPOSITORY_ONLY=1")
    user.type("make install-autostart")
    user.type("make install-cron")
    doctor = user.type("make doctor", expect=None)

    # 4. status: every service PROTECTED
    status = user.type("make status")
    minutes = user.minutes()
    report = status_json(vm)
    verdicts = {s["service"]: (s["verdict"], s.get("risks")) for s in report["services"]}
    assert status.stdout.count("PROTECTED") == 4, status.stdout
    assert set(verdicts) == {"reverseproxy", "firefly", "pihole", "uptime-kuma"}, verdicts
    assert {s: v for s, (v, _why) in verdicts.items()} == {s: "PROTECTED" for s in verdicts}, verdicts
    assert {s["service"]: s["archives"] for s in report["services"]} == {s: 1 for s in verdicts}, report

    typed = [c for c, _t, _rc in user.commands]
    print(f"\nfirst hour: {len(typed)} commands typed, {len(user.edits)} edits in {user.sessions()} editor "
          f"session(s), {minutes:.1f} min "
          f"(of which the stand-in images {images_seconds / 60:.1f} min, upstream's pulls in real life); "
          f"{rounds} check-stacks run(s)")
    print(f"make install: {install_seconds:.0f} s, {len(install_lines)} lines:\n" + "\n".join(install_lines))
    print("commands:\n" + "\n".join(f"  {t:6.0f} s  exit {rc}  {c}" for c, t, rc in user.commands))
    print("edits:\n" + "\n".join(f"  [{r}] {p}: {why[:160]}" for p, why, r in user.edits))
    print("hints followed:\n" + "\n".join(f"  {hint}\n    -> {action}" for hint, action in followed))
    print(f"doctor (exit {doctor.returncode}):\n{doctor.stdout}")
    # make install prints what a user needs to read, not pip's or apt's progress
    assert len(install_lines) <= 8, install_lines
    # the first hour: within it, by README's lines and the hints, in two rounds of hints
    assert minutes < 60 and rounds <= 3, (minutes, rounds)
