"""Reading compose's resolved model and the stack's x-orchestrator policy. The models here are in the
shape `docker compose config --format json` (v2) and `docker-compose config` (v1) print; the lab
tests get them from the real compose."""

from pathlib import Path

import pytest
import yaml

from management.errors import ValidationError
from management.stacks.compose_file import (
    Hook,
    Policy,
    StackDir,
    find_stacks,
    parse_duration,
    policy_of,
    stack_from_model,
)
from management.stacks.rules import check_stacks
from tests.unit.stacks.test_rules import spoke_model

BASE = Path("/datapool/services")



LISTED = ["reverseproxy/data", "git/data", "git/db", "photo/data", "photo/db"]




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



def test_missing_services_dir_is_named(tmp_path):
    with pytest.raises(ValidationError, match=str(tmp_path / "nope")):
        find_stacks(tmp_path / "nope")



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
        "x-orchestrator: unknown key 'pre' (known: allow, before-snapshot, consistency, drill, ephemeral, mass-change)",
        "x-orchestrator.before-snapshot[1]: service 'cache' is not a service of this stack (services: app, db)",
        "x-orchestrator.before-snapshot[1]: command must be a list of strings (exec form) or a string (run by sh -c)"]
    assert [v.message for v in check_stacks([stack], "git", BASE, LISTED)][:3] == problems



def test_the_mass_change_declaration():
    from management.stacks.compose_file import ChangeLimit, mass_change_limit

    assert mass_change_limit({}) == (None, [])
    assert mass_change_limit({"x-orchestrator": {"mass-change": {"limit": "90", "reason": " dumps "}}}) == \
        (ChangeLimit(90, "dumps"), [])
    assert mass_change_limit({"x-orchestrator": {"mass-change": {"limit": False, "reason": "r"}}}) == \
        (ChangeLimit(None, "r"), [])  # YAML 1.1's `off`
    limit, problems = mass_change_limit({"x-orchestrator": {"mass-change": "off"}})
    assert limit is None and problems == ["x-orchestrator.mass-change must be a mapping: "
                                          "{limit: <1..100 percent, or off>, reason: <why>}"]
    limit, problems = mass_change_limit({"x-orchestrator": {"mass-change": {"limit": 101, "reason": "r", "x": 1}}})
    assert limit is None and len(problems) == 2 and "unknown key 'x'" in problems[0]
