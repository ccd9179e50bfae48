"""The compose reader and the hub-and-spoke rules, on compose files written to a temp dir."""

from pathlib import Path

import pytest

from management.compose_file import caddy_upstreams, check_stacks, find_stacks, interpolate, parse_stack
from management.errors import ValidationError

BASE = Path("/datapool/services")


def stack_dir(root: Path, name: str, compose: str, caddyfile: str | None = None, filename="compose.yaml") -> Path:
    d = root / name
    d.mkdir(parents=True, exist_ok=True)
    (d / filename).write_text(compose)
    if caddyfile is not None:
        (d / "Caddyfile").write_text(caddyfile)
    return d / filename


HUB = """
services:
  caddy:
    image: caddy
    container_name: central_hub
    ports: ["443:443"]
    volumes:
      - ./Caddyfile:/etc/caddy/Caddyfile:ro
      - ${ZFS_BASE_MOUNTPOINT:-/datapool/services}/reverseproxy/data:/data
    networks: [git_net, photo_net]
networks:
  git_net: {external: true}
  photo_net: {external: true}
"""
CADDY = ("git.lan {\n\ttls internal\n\treverse_proxy gitea:3000\n}\n"
         "photo.lan {\n\treverse_proxy immich_server:2283 {\n\t\tflush_interval -1\n\t}\n}\n")


def spoke(net: str, container: str, extra: str = "") -> str:
    return f"""
services:
  app:
    image: busybox
    container_name: {container}
    volumes:
      - /datapool/services/{net.split('_')[0]}/data:/data
    networks: [default, {net}]
{extra}
  db:
    image: postgres
    volumes:
      - type: bind
        source: /datapool/services/{net.split('_')[0]}/db
        target: /var/lib/postgresql/data
networks:
  {net}:
    external: true
"""


LISTED = ["reverseproxy/data", "git/data", "git/db", "photo/data", "photo/db"]


def world(tmp_path, hub=HUB, git=None, photo=None, caddy=CADDY):
    stack_dir(tmp_path, "reverseproxy", hub, caddy)
    stack_dir(tmp_path, "git", git or spoke("git_net", "gitea"), filename="docker-compose.yml")
    stack_dir(tmp_path, "photo", photo or spoke("photo_net", "immich_server"))
    (tmp_path / "notes").mkdir()  # a folder without a compose file is not a stack
    return [parse_stack(n, f, {"ZFS_BASE_MOUNTPOINT": str(BASE)}) for n, f in find_stacks(tmp_path)]


def test_a_correct_hub_and_spokes_pass(tmp_path):
    stacks = world(tmp_path)
    assert [s.name for s in stacks] == ["git", "photo", "reverseproxy"]
    assert check_stacks(stacks, "reverseproxy", BASE, LISTED) == []


def test_a_spoke_publishing_a_port_is_named_with_its_file(tmp_path):
    photo = spoke("photo_net", "immich_server", '    ports: ["2283:2283"]')
    violations = check_stacks(world(tmp_path, photo=photo), "reverseproxy", BASE, LISTED)
    assert len(violations) == 1
    assert violations[0].file == tmp_path / "photo" / "compose.yaml"
    assert "publishes ports" in violations[0].message and "2283" in violations[0].message


def test_a_hub_missing_a_spoke_network_is_flagged(tmp_path):
    hub = HUB.replace("networks: [git_net, photo_net]", "networks: [git_net]").replace(
        "  photo_net: {external: true}\n", "")
    violations = check_stacks(world(tmp_path, hub=hub), "reverseproxy", BASE, LISTED)
    messages = [str(v) for v in violations]
    assert any("does not join 'photo_net'" in m and "reverseproxy/compose.yaml" in m for m in messages)
    # and the upstream behind that network is unreachable, named with its Caddyfile line
    assert any("Caddyfile:6" in m and "immich_server" in m for m in messages)


def test_spokes_sharing_a_network_and_a_spoke_without_one(tmp_path):
    git = spoke("photo_net", "gitea")
    violations = check_stacks(world(tmp_path, git=git), "reverseproxy", BASE, LISTED)
    assert sum("shared by git, photo" in v.message for v in violations) == 2
    lonely = "services:\n  app:\n    image: busybox\n"
    violations = check_stacks(world(tmp_path / "b", git=lonely), "reverseproxy", BASE, LISTED)
    assert any("declares no external network" in v.message for v in violations)


def test_an_unlisted_bind_mount_under_the_base_is_flagged(tmp_path):
    violations = check_stacks(world(tmp_path), "reverseproxy", BASE, [p for p in LISTED if p != "git/db"])
    assert [v.message for v in violations] == [
        "service 'db' bind-mounts /datapool/services/git/db, which is under ZFS_BASE_MOUNTPOINT "
        "but not listed in SERVICE_VOLUME_PATHS_AND_OWNERS"]


def test_no_hub_stack(tmp_path):
    stack_dir(tmp_path, "git", spoke("git_net", "gitea"))
    stacks = [parse_stack(n, f) for n, f in find_stacks(tmp_path)]
    assert any("no hub stack 'reverseproxy'" in v.message for v in check_stacks(stacks, "reverseproxy", BASE, LISTED))


def test_parse_reads_binds_ports_networks_healthchecks(tmp_path):
    text = HUB + "\n"
    f = stack_dir(tmp_path, "reverseproxy", text.replace("    networks: [git_net, photo_net]",
                                                           "    networks: [git_net, photo_net]\n"
                                                           "    healthcheck:\n      test: [CMD, true]"))
    s = parse_stack("reverseproxy", f, {"ZFS_BASE_MOUNTPOINT": "/tank/svc"})
    assert [b.source for b in s.binds] == [tmp_path / "reverseproxy" / "Caddyfile", Path("/tank/svc/reverseproxy/data")]
    assert s.ports == {"caddy": ["443:443"]}
    assert s.external_networks == {"git_net", "photo_net"}
    assert s.healthchecks == {"caddy"}
    assert s.hosts() == {"caddy", "central_hub"}


def test_the_stack_folder_env_fills_in_what_the_tool_does_not_pass(tmp_path):
    f = stack_dir(tmp_path, "git", "services:\n  a:\n    image: x\n    volumes: ['${DATA}/x:/x']\n")
    (tmp_path / "git" / ".env").write_text("DATA=/srv/data\n")
    assert parse_stack("git", f).binds[0].source == Path("/srv/data/x")


def test_interpolation_like_compose():
    env = {"A": "a", "EMPTY": ""}
    assert interpolate("${A}-${B:-b}-${EMPTY:-e}-${EMPTY-x}-$A-$$A-${NOPE:?err}", env) == "a-b-e--a-$A-"


def test_invalid_yaml_names_file_and_line(tmp_path):
    f = stack_dir(tmp_path, "git", "services:\n  app:\n    image: [unclosed\n")
    with pytest.raises(ValidationError) as exc:
        parse_stack("git", f)
    assert str(f) in str(exc.value) and "line 4" in str(exc.value)


def test_not_a_compose_file(tmp_path):
    f = stack_dir(tmp_path, "git", "- just\n- a list\n")
    with pytest.raises(ValidationError, match="no 'services:' mapping"):
        parse_stack("git", f)


def test_missing_services_dir_is_named(tmp_path):
    with pytest.raises(ValidationError, match=str(tmp_path / "nope")):
        find_stacks(tmp_path / "nope")


def test_caddy_upstreams_skip_matchers_and_options():
    text = ("a {\n\treverse_proxy @api backend:8080 other:81 {\n\t\thealth_uri /h\n\t}\n"
            "\treverse_proxy /static/* http://static:80  # comment\n\t# reverse_proxy ignored:1\n}\n")
    assert caddy_upstreams(text) == [(2, "backend"), (2, "other"), (5, "static")]
