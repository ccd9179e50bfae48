"""Compose files exactly as upstream projects ship them (tests/fixtures/upstream-as-shipped, each
with its source and commit: no data path moved onto ZFS, no port, network or network_mode
changed), read by the real compose (v2, and v1 in the second pass) through check-stacks: one line
per mount no backup reaches, with where its bytes are and the fix; the host-networked gateway;
pi-hole's published DNS ports. Then the same stacks with an `x-orchestrator` block added by a
compose.override.yaml: what they declared shows as `accepted:` and no longer as a violation."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.lab.envfile import LAB_COMPOSE, run_cli, write_lab_env
from tests.lab.stacks import fixtures_behind_a_hub

pytestmark = [pytest.mark.lab, pytest.mark.compose]
FIXTURES = ROOT / "tests" / "fixtures" / "upstream-as-shipped"
V2 = LAB_COMPOSE == "v2"
FILES = {"firefly": "docker-compose.yml", "pihole": "docker-compose.yml", "syncthing": "compose.yaml",
         "tailscale": "compose.yaml", "immich": "docker-compose.yml"}
# The hub proxies the three web UIs on the networks a user would add for them (<folder>_net). As
# shipped no stack declares an external network, so each of these spokes "declares no external
# network" and each upstream is on no network the hub shares: both are expected violations.
# syncthing's GUI and the tailscale gateway are host-networked (the GUI listens on the host's
# 127.0.0.1, the gateway serves nothing): Caddy cannot reach them on a network, so they are left
# out of the Caddyfile.
UPSTREAMS = {"firefly": "app:8080", "pihole": "pihole:80", "immich": "immich-server:2283"}
# What a user would declare, each in the stack's compose.override.yaml (compose merges it by itself).
OVERRIDES = {
    "tailscale": ("allow", "host-network",
                  "subnet router and exit node: tailscaled routes through the host's own interfaces"),
    "pihole": ("allow", "publish", "DNS for the LAN: clients query port 53 on this host directly"),
    "immich": ("ephemeral", "model-cache", "downloaded models, fetched again on start"),
}
ADOPT = ("make adopt SERVICE_NAME={} (moves it onto the dataset), or declare it in x-orchestrator.ephemeral "
         "with a reason")
# a writable directory in the folder of a stack the night stops: the folder's copy holds it whole
IN_FOLDER = ("in the stack folder; the night copies it into the archive while the stack is stopped (consistent); "
             "outside the ZFS snapshot, so make versions and local history do not see it (make adopt "
             "SERVICE_NAME={} moves it onto the dataset for that)")


def install(lab, tmp_path: Path) -> tuple[Path, dict[str, str], Path]:
    """The fixtures copied into the services dir of a lab .env, and a Caddy hub in front of them."""
    env_path, v = write_lab_env(tmp_path, lab, ["reverseproxy/data:REMAPPED_APP_UID"])
    services = Path(v["SERVICES_DIR"])
    fixtures_behind_a_hub(FIXTURES, services, UPSTREAMS)
    return env_path, v, services


@pytest.fixture
def as_shipped(lab, tmp_path):
    return install(lab, tmp_path)


def check_stacks(env_path: Path, services: Path) -> tuple[str, list[str]]:
    """check-stacks' whole output, and its violation lines (each starts with the file it is about)."""
    r = run_cli(env_path, "check-stacks")
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    return out, [ln for ln in out.splitlines() if ln.startswith(str(services))]


def expected_violations(services: Path) -> dict[str, str]:
    """Key -> the exact line check-stacks prints, for every stack as shipped (compose v2)."""
    def f(stack: str) -> str:
        return f"{services}/{stack}/{FILES[stack]}"

    def volume(stack: str, service: str, name: str, target: str) -> str:
        return (f"{f(stack)}: service {service!r} volume {name} -> {target}: uncovered (docker volume on the OS "
                f"disk); fix: {ADOPT.format(stack)}")

    def publishes(stack: str, service: str, ports: str) -> str:
        return (f"{f(stack)}: service {service!r} publishes ports {ports}: only the hub (reverseproxy) may: remove "
                f"them (in its compose.override.yaml, service {service!r}: `ports: !reset []`), or declare "
                "x-orchestrator.allow.publish with the reason")

    def host_network(stack: str, service: str) -> str:
        return (f"{f(stack)}: service {service!r} uses network_mode: host: it publishes every port on the host; "
                "only the hub (reverseproxy) may publish (or declare x-orchestrator.allow.host-network with the "
                "reason this stack needs it)")

    def no_network(stack: str) -> str:
        return (f"{f(stack)}: declares no external network: each spoke needs its own, joined by the hub "
                f"(e.g. {stack}_net)")

    def upstream(line: int, host: str, stack: str) -> str:
        return (f"{services}/reverseproxy/Caddyfile:{line}: reverse_proxy upstream {host!r} is in stack {stack}, on "
                f"no network the hub shares: put it on that stack's external network (e.g. {stack}_net) and the "
                "hub too")

    return {
        # firefly: the database and the uploads in named docker volumes
        "firefly upload": volume("firefly", "app", "firefly_iii_upload", "/var/www/html/storage/upload"),
        "firefly db": volume("firefly", "db", "firefly_iii_db", "/var/lib/mysql"),
        "firefly ports": publishes("firefly", "app", "80:8080"),
        "firefly network": no_network("firefly"),
        # pihole: DNS published on both protocols (and its web UI); ./etc-pihole is in copied_lines
        "pihole ports": publishes("pihole", "pihole", "53:53/tcp, 53:53/udp, 80:80, 443:443"),
        "pihole network": no_network("pihole"),
        # syncthing: a host path outside ZFS, on the host network (no network of its own to declare)
        "syncthing sync": (f"{f('syncthing')}: service 'syncthing' /wherever/st-sync -> /var/syncthing: uncovered "
                           f"(a host path outside ZFS); fix: {ADOPT.format('syncthing')}"),
        "syncthing host": host_network("syncthing", "syncthing"),
        # tailscale: the gateway on the host network (its node state in ./state: copied_lines).
        # /dev/net/tun and the D-Bus socket are not data: no line
        "tailscale host": host_network("tailscale", "tailscale"),
        # immich: .env puts the library and the database in the stack folder (copied_lines);
        # model-cache is a named volume; /etc/localtime:ro is not data
        "immich cache": volume("immich", "immich-machine-learning", "model-cache", "/cache"),
        "immich ports": publishes("immich", "immich-server", "2283:2283"),
        "immich network": no_network("immich"),
        # the hub's upstreams: services of stacks that share no network with the hub
        "caddy firefly": upstream(2, "app", "firefly"),
        "caddy pihole": upstream(5, "pihole", "pihole"),
        "caddy immich": upstream(8, "immich-server", "immich"),
    }


def copied_lines(services: Path, v2: bool = V2) -> list[str]:
    """The `copied:` lines: writable folders in the folder of a stack the night stops (none of
    these stacks is live), which the stack folder's copy holds whole. Not violations."""
    def copied(stack: str, service: str, sub: str, target: str) -> str:
        return f"copied: {stack}: service {service!r} {services}/{stack}/{sub} -> {target}: {IN_FOLDER.format(stack)}"

    lines = [copied("pihole", "pihole", "etc-pihole", "/etc/pihole")]
    if v2:  # v1 cannot read immich nor the gateway
        lines += [copied("immich", "immich-server", "library", "/usr/src/app/upload"),
                  copied("immich", "database", "postgres", "/var/lib/postgresql/data"),
                  copied("tailscale", "tailscale", "state", "/var/lib/tailscale")]
    return sorted(lines)


def unreadable_on_v1(expected: dict[str, str], services: Path) -> dict[str, str]:
    """v1 cannot read immich (top-level name:) nor the gateway (uts:, a boolean in environment:);
    with a stack it cannot read, no upstream is called unknown (it may be that stack's)."""
    kept = {k: line for k, line in expected.items() if not k.startswith(("immich", "tailscale", "caddy"))}
    return kept | {name: f"{services}/{name}/{FILES[name]}: compose cannot read this stack"
                   for name in ("immich", "tailscale")}


def assert_lines(out: str, violations: list[str], expected: dict[str, str]) -> None:
    """Each expected line is printed (a `compose cannot read` one as a prefix: compose's own words
    follow), and nothing else is a violation."""
    for key, line in expected.items():
        if line.endswith("compose cannot read this stack"):
            assert any(v.startswith(line + ": ") for v in violations), f"missing ({key}): {line}\n{out}"
        else:
            assert line in violations, f"missing ({key}): {line}\n{out}"
    assert len(violations) == len(expected), out


@pytest.mark.v1_contract
def test_check_stacks_names_each_uncovered_mount_of_upstream_files_as_shipped(as_shipped):
    env_path, _v, services = as_shipped
    out, violations = check_stacks(env_path, services)
    expected = expected_violations(services)
    if not V2:
        expected = unreadable_on_v1(expected, services)
    assert_lines(out, violations, expected)
    # the mounts that are not data are named in no violation
    for path in ("/dev/net/tun", "/var/run/dbus/system_bus_socket", "/etc/localtime"):
        assert not any(path in v for v in violations), out
    assert "accepted:" not in out
    # each writable folder in a stack folder: in the folder's copy, taken while the stack is stopped
    assert sorted(ln for ln in out.splitlines() if ln.startswith("copied: ")) == copied_lines(services), out
    if V2:
        # reverseproxy: the Caddyfile (config) and data (covered); pihole, tailscale and immich: 4
        # folders in their stack folders (copied); tailscale: tun and D-Bus, immich: localtime (not
        # data); the 4 uncovered above
        assert "coverage: 13 mounts in 6 stacks: 1 covered, 1 config, 4 copied, 3 not data, 4 uncovered" in out
    else:
        assert ("coverage: 6 mounts in 4 stacks: 1 covered, 1 config, 1 copied, 3 uncovered (2 stack(s) compose "
                "cannot read: not counted)") in out
    assert f"check-stacks: {len(expected)} violation(s)" in out


def test_declarations_in_an_override_file_show_as_accepted(as_shipped):
    env_path, _v, services = as_shipped
    for stack, (section, key, reason) in OVERRIDES.items():
        (services / stack / "compose.override.yaml").write_text(
            f'x-orchestrator:\n  {section}:\n    {key}: "{reason}"\n')
    out, violations = check_stacks(env_path, services)
    expected = expected_violations(services)
    if not V2:
        # v1 reads an override holding only x- keys as a version 1 file and refuses to merge it
        # ("Version mismatch"): the three stacks become unreadable, and nothing is accepted
        expected = {k: line for k, line in unreadable_on_v1(expected, services).items() if not k.startswith("pihole")}
        expected |= {name: f"{services}/{name}/{FILES[name]}: compose cannot read this stack" for name in OVERRIDES}
        assert_lines(out, violations, expected)
        for name in OVERRIDES:
            line = next(v for v in violations if v.startswith(f"{services}/{name}/"))
            assert "compose.override.yaml" in line, out
        assert "accepted:" not in out
        return
    for gone in ("tailscale host", "pihole ports", "immich cache"):
        del expected[gone]
    # declared, pihole still publishes 443, which the hub publishes too: docker would start one of them
    expected["pihole clash"] = (
        f"{services}/pihole/{FILES['pihole']}: service 'pihole' publishes host ports that are published again "
        "(443:443 by the hub): docker binds a host port once, so one of them would not start; publish only the "
        "others: in its compose.override.yaml, service 'pihole' `ports: !override ['53:53', '53:53/udp', '80:80']`")
    assert_lines(out, violations, expected)
    accepted = [ln for ln in out.splitlines() if ln.startswith("accepted: ")]
    assert sorted(accepted) == [
        f"accepted: immich: model-cache is not backed up: declared ephemeral ({OVERRIDES['immich'][2]})",
        "accepted: pihole: service 'pihole' publishes 53:53/tcp, 53:53/udp, 80:80, 443:443: allowed "
        f"({OVERRIDES['pihole'][2]})",
        f"accepted: tailscale: service 'tailscale' uses network_mode: host: allowed ({OVERRIDES['tailscale'][2]})",
    ], out
    # what was not declared stays: syncthing's host network and data; the folders are still copied
    assert expected["syncthing host"] in violations and expected["syncthing sync"] in violations
    assert sorted(ln for ln in out.splitlines() if ln.startswith("copied: ")) == copied_lines(services), out
    assert "coverage: 13 mounts in 6 stacks: 1 covered, 1 config, 4 copied, 1 ephemeral, 3 not data, 3 uncovered" \
        in out
    assert f"check-stacks: {len(expected)} violation(s)" in out
