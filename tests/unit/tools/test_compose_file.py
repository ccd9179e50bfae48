"""Reading compose's resolved model and the hub-and-spoke rules. The models here are in the
shape `docker compose config --format json` (v2) and `docker-compose config` (v1) print; the lab
tests get them from the real compose."""

from pathlib import Path

import pytest
import yaml

from management.errors import ValidationError
from management.tools.compose_file import (
    Hook,
    Policy,
    StackDir,
    caddy_upstreams,
    check_stacks,
    find_stacks,
    parse_duration,
    policy_of,
    stack_from_model,
)

BASE = Path("/datapool/services")
LISTED = ["reverseproxy/data", "git/data", "git/db", "photo/data", "photo/db"]
CADDY = ("git.lan {\n\ttls internal\n\treverse_proxy gitea:3000\n}\n"
         "photo.lan {\n\treverse_proxy immich_server:2283 {\n\t\tflush_interval -1\n\t}\n}\n")


def stack_dir(root: Path, name: str, model: dict, caddyfile: str | None = None, filename="compose.yaml") -> Path:
    """A stack folder whose compose file is the model itself (JSON is YAML): compose would print
    it back unchanged. Unit tests answer `config` with it."""
    import json

    d = root / name
    d.mkdir(parents=True, exist_ok=True)
    (d / filename).write_text(json.dumps(model))
    if caddyfile is not None:
        (d / "Caddyfile").write_text(caddyfile)
    return d / filename


def hub_model(nets=("git_net", "photo_net"), **extra) -> dict:
    svc = {"image": "caddy", "container_name": "central_hub",
           "ports": [{"mode": "ingress", "target": 443, "published": "443", "protocol": "tcp"}],
           "volumes": [{"type": "bind", "source": "/x/reverseproxy/Caddyfile", "target": "/etc/caddy/Caddyfile",
                        "read_only": True},
                       {"type": "bind", "source": f"{BASE}/reverseproxy/data", "target": "/data"}],
           "networks": {n: None for n in nets}, **extra}
    return {"name": "reverseproxy", "services": {"caddy": svc},
            "networks": {n: {"name": n, "external": True} for n in nets}}


def spoke_model(stack: str, net: str, container: str, **app_extra) -> dict:
    return {
        "name": stack,
        "services": {
            "app": {"image": "busybox", "container_name": container,
                    "volumes": [{"type": "bind", "source": f"{BASE}/{stack}/data", "target": "/data"}],
                    "networks": {"default": None, net: None}, **app_extra},
            "db": {"image": "postgres", "stop_grace_period": "1m30s",
                   "volumes": [{"type": "bind", "source": f"{BASE}/{stack}/db", "target": "/var/lib/postgresql/data"}],
                   "networks": {"default": None}},
        },
        "networks": {"default": {"name": f"{stack}_default"}, net: {"name": net, "external": True}},
    }


def read(root: Path, models: dict[str, dict]):
    found, empty = find_stacks(root)
    return [stack_from_model(d, models[d.name]) for d in found], empty


def world(tmp_path, hub=None, git=None, photo=None, caddy=CADDY):
    models = {"reverseproxy": hub or hub_model(), "git": git or spoke_model("git", "git_net", "gitea"),
              "photo": photo or spoke_model("photo", "photo_net", "immich_server")}
    stack_dir(tmp_path, "reverseproxy", models["reverseproxy"], caddy)
    for name in ("git", "photo"):
        stack_dir(tmp_path, name, models[name])
    models["reverseproxy"]["services"]["caddy"]["volumes"][0]["source"] = str(tmp_path / "reverseproxy" / "Caddyfile")
    return read(tmp_path, models)[0]


def check(stacks, listed=LISTED, **kw):
    return check_stacks(stacks, "reverseproxy", BASE, listed, **kw)


def test_a_correct_hub_and_spokes_pass(tmp_path):
    stacks = world(tmp_path)
    assert [s.name for s in stacks] == ["git", "photo", "reverseproxy"]
    assert check(stacks, stop_timeout=120) == []


def test_discovery_follows_compose_precedence(tmp_path):
    d = tmp_path / "app"
    d.mkdir()
    for f in ("docker-compose.yml", "compose.yml", "docker-compose.override.yml"):
        (d / f).write_text("services: {}\n")
    (tmp_path / "notes").mkdir()
    (tmp_path / ".git").mkdir()
    found, empty = find_stacks(tmp_path)
    assert [(s.name, s.file.name) for s in found] == [("app", "compose.yml")]
    assert empty == [tmp_path / "notes"]
    assert "holds no compose file" in check_stacks([], "app", BASE, [], empty_dirs=empty)[0].message


def test_model_gives_binds_devices_ports_aliases_grace_and_extensions(tmp_path):
    d = StackDir("photo", tmp_path, tmp_path / "compose.yaml")
    model = {
        "name": "photo", "x-orchestrator": {"consistency": "live"},
        "services": {"server": {
            "image": "ghcr.io/immich-app/immich-server:release", "stop_grace_period": "45s",
            "healthcheck": {"test": ["CMD", "true"]},
            "networks": {"photo_net": {"aliases": ["immich"]}},
            "volumes": [{"type": "bind", "source": f"{BASE}/photo/library", "target": "/data"},
                        {"type": "volume", "source": "pgdata", "target": "/pg"},
                        {"type": "volume", "source": "cache", "target": "/cache"}]}},
        "networks": {"photo_net": {"name": "photo_net", "external": True}},
        "volumes": {"pgdata": {"name": "photo_pgdata", "driver_opts": {"type": "none", "o": "bind",
                                                                       "device": f"{BASE}/photo/postgres"}},
                    "cache": {"name": "photo_cache"}},
    }
    s = stack_from_model(d, model)
    assert [b.source for b in s.binds] == [BASE / "photo/library", BASE / "photo/postgres"]
    assert s.external_networks == {"photo_net"} and s.healthchecks == {"server"}
    assert s.services["server"].stop_grace == 45 and s.max_stop_grace == 45
    assert s.names_on({"photo_net"}) == {"server": "server", "immich": "server"}
    assert s.extensions == {"x-orchestrator": {"consistency": "live"}}


def test_v1_model_short_syntax_and_inactive_profiles(tmp_path):
    d = StackDir("a", tmp_path, tmp_path / "docker-compose.yml")
    v1 = yaml.safe_load("""
services:
  dbg: {image: busybox, ports: [{published: 80, target: 80}], profiles: [debug]}
  web:
    image: busybox
    stop_grace_period: 2m
    networks: {a_net: {aliases: [www]}}
    volumes: [/pool/a/data:/data:rw, named:/n:rw, ./conf:/conf:ro]
networks: {a_net: {external: true, name: a_net}}
volumes: {named: {driver_opts: {device: /pool/a/named, o: bind, type: none}}}
""")
    s = stack_from_model(d, v1, active_profiles=set())
    assert list(s.services) == ["web"]  # dbg is under an inactive profile
    assert [str(b.source) for b in s.binds] == ["/pool/a/data", "/pool/a/named", str(tmp_path / "conf")]
    assert s.services["web"].stop_grace == 120
    assert list(stack_from_model(d, v1, active_profiles={"debug"}).services) == ["dbg", "web"]


def test_parse_duration_like_compose():
    assert parse_duration("1m30s") == 90 and parse_duration("2m0s") == 120 and parse_duration("500ms") == 0.5
    assert parse_duration(None) == 10 and parse_duration("45") == 45
    with pytest.raises(ValidationError):
        parse_duration("soon")


def test_a_spoke_publishing_a_port_is_named_with_its_file(tmp_path):
    photo = spoke_model("photo", "photo_net", "immich_server", ports=[{"target": 2283, "published": "2283"}])
    violations = check(world(tmp_path, photo=photo))
    assert len(violations) == 1
    assert violations[0].file == tmp_path / "photo" / "compose.yaml"
    assert "publishes ports 2283:2283: only the hub" in violations[0].message


def test_network_mode_host_is_flagged_on_a_spoke_and_on_the_hub(tmp_path):
    ha = spoke_model("photo", "photo_net", "immich_server")
    ha["services"]["app"]["network_mode"] = "host"
    messages = [v.message for v in check(world(tmp_path, photo=ha))]
    assert any("'app' uses network_mode: host: it publishes every port" in m for m in messages)


def test_upstreams_reached_by_alias_pass_and_ambiguous_names_are_flagged(tmp_path):
    git = spoke_model("git", "git_net", "gitea")
    git["services"]["app"]["networks"]["git_net"] = {"aliases": ["forge"]}
    caddy = CADDY.replace("gitea:3000", "forge:3000")
    assert check(world(tmp_path, git=git, caddy=caddy)) == []
    # both spokes call their app service "app": an upstream "app" is ambiguous for Caddy
    caddy = CADDY.replace("gitea:3000", "app:3000")
    messages = [str(v) for v in check(world(tmp_path / "b", caddy=caddy))]
    assert any("Caddyfile:3" in m and "'app' is ambiguous: stacks git, photo" in m for m in messages)


def test_a_hub_missing_a_spoke_network_is_flagged(tmp_path):
    messages = [str(v) for v in check(world(tmp_path, hub=hub_model(nets=("git_net",))))]
    assert any("does not join 'photo_net'" in m and "reverseproxy/compose.yaml" in m for m in messages)
    assert any("Caddyfile:6" in m and "immich_server" in m for m in messages)


def test_spokes_sharing_a_network_and_a_spoke_without_one(tmp_path):
    violations = check(world(tmp_path, git=spoke_model("git", "photo_net", "gitea")))
    assert sum("shared by git, photo" in v.message for v in violations) == 2
    lonely = {"services": {"app": {"image": "busybox"}}}
    assert any("declares no external network" in v.message for v in check(world(tmp_path / "b", git=lonely)))


def test_the_same_container_name_in_two_stacks(tmp_path):
    violations = check(world(tmp_path, photo=spoke_model("photo", "photo_net", "gitea")))
    assert [v.message for v in violations if v.message.startswith("container_name")] == [
        "container_name 'gitea' is also used by stack 'git': docker allows one container per name"]


def test_an_unlisted_path_under_the_base_is_flagged(tmp_path):
    violations = check(world(tmp_path), listed=[p for p in LISTED if p != "git/db"])
    assert [v.message for v in violations] == [
        "service 'db' mounts /datapool/services/git/db, which is under ZFS_BASE_MOUNTPOINT "
        "but not listed in SERVICE_VOLUME_PATHS_AND_OWNERS"]


def test_a_grace_period_that_does_not_fit_stop_timeout(tmp_path):
    violations = check(world(tmp_path), stop_timeout=60)
    assert len(violations) == 2 and all("stop_grace_period 90s" in v.message for v in violations)


def test_an_unreadable_stack_and_a_bad_folder_name_are_named_and_the_rest_is_checked(tmp_path):
    stacks = world(tmp_path)
    stacks[0].error, stacks[0].services = "yaml: line 3: did not find expected key", {}
    violations = check(stacks)
    # gitea's upstream may well be in the stack compose cannot read: not called unreachable
    assert [str(v) for v in violations] == [
        f"{tmp_path}/git/compose.yaml: compose cannot read this stack: yaml: line 3: did not find expected key"]
    stack_dir(tmp_path / "c", "Git Lab", spoke_model("git", "git_net", "gitea"))
    found, _ = find_stacks(tmp_path / "c")
    bad = stack_from_model(found[0], spoke_model("git", "git_net", "gitea"))
    assert any("'Git Lab' is not a valid compose project name" in v.message for v in check([bad]))


def test_no_hub_stack(tmp_path):
    stack_dir(tmp_path, "git", spoke_model("git", "git_net", "gitea"))
    stacks, _ = read(tmp_path, {"git": spoke_model("git", "git_net", "gitea")})
    assert any("no hub stack 'reverseproxy'" in v.message for v in check(stacks))


def test_missing_services_dir_is_named(tmp_path):
    with pytest.raises(ValidationError, match=str(tmp_path / "nope")):
        find_stacks(tmp_path / "nope")


def test_caddy_upstreams_skip_matchers_and_options():
    text = ("a {\n\treverse_proxy @api backend:8080 other:81 {\n\t\thealth_uri /h\n\t}\n"
            "\treverse_proxy /static/* http://static:80  # comment\n\t# reverse_proxy ignored:1\n}\n")
    assert caddy_upstreams(text) == [(2, "backend"), (2, "other"), (5, "static")]


def test_x_orchestrator_policy_and_its_problems(tmp_path):
    d = StackDir("git", tmp_path, tmp_path / "compose.yaml")
    model = spoke_model("git", "git_net", "gitea")
    model["x-orchestrator"] = {"consistency": "live",
                               "before-snapshot": [{"service": "db", "command": ["psql", "-c", "CHECKPOINT"]},
                                                   {"service": "app", "command": "sync; echo $$(date)"}]}
    # v2 prints a literal $ as $$: the command gets the $ back
    assert policy_of(stack_from_model(d, model)) == (Policy("live", (
        Hook("db", ("psql", "-c", "CHECKPOINT")), Hook("app", ("sh", "-c", "sync; echo $(date)")))), [])
    model["x-orchestrator"] = {"consistency": "live", "pre": 1,
                               "before-snapshot": [{"service": "cache", "command": []}]}
    stack = stack_from_model(d, model)
    policy, problems = policy_of(stack)
    assert policy == Policy()  # a stack with a problem is stopped: the safe way
    assert problems == [
        "x-orchestrator: unknown key 'pre' (known: before-snapshot, consistency)",
        "x-orchestrator.before-snapshot[1]: service 'cache' is not a service of this stack (services: app, db)",
        "x-orchestrator.before-snapshot[1]: command must be a list of strings (exec form) or a string (run by sh -c)"]
    assert [v.message for v in check_stacks([stack], "git", BASE, LISTED)][:3] == problems
