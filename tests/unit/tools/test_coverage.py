"""The coverage model: each mount of each service gets one verdict, read from compose's own
resolved model (v2's long syntax and v1's short strings)."""

from __future__ import annotations

from pathlib import Path

import pytest

from management.tools.compose_file import StackDir, stack_from_model
from management.tools.coverage import (
    CONFIG,
    COVERED,
    EPHEMERAL,
    FOREIGN,
    NOT_DATA,
    UNCOVERED,
    ephemeral_problems,
    problems,
    stack_coverage,
)

BASE = Path("/datapool/services")


def stack(tmp_path, services: dict, volumes: dict | None = None, ephemeral: dict | None = None, name="photo"):
    d = tmp_path / name
    d.mkdir(exist_ok=True)
    model = {"services": services, "volumes": volumes or {}}
    if ephemeral is not None:
        model["x-orchestrator"] = {"ephemeral": ephemeral}
    return stack_from_model(StackDir(name, d, d / "compose.yaml"), model)


def verdicts(s, services=("photo", "git")):
    return {(c.service, c.target): c.verdict for c in stack_coverage(s, BASE, list(services))}


def test_each_kind_of_mount_gets_its_verdict_from_the_v2_model(tmp_path):
    folder = tmp_path / "photo"
    (folder / "data").mkdir(parents=True)
    s = stack(tmp_path, {
        "server": {"image": "immich", "volumes": [
            {"type": "bind", "source": f"{BASE}/photo/library", "target": "/usr/src/app/upload"},
            {"type": "bind", "source": f"{BASE}/git/repos", "target": "/git"},
            {"type": "bind", "source": str(folder / "Caddyfile"), "target": "/etc/caddy/Caddyfile", "read_only": True},
            {"type": "bind", "source": str(folder / "data"), "target": "/data"},
            {"type": "bind", "source": "/srv/media", "target": "/media"},
            {"type": "bind", "source": "/srv/ro", "target": "/ro", "read_only": True},
            {"type": "bind", "source": "/var/run/docker.sock", "target": "/var/run/docker.sock"},
            {"type": "bind", "source": "/etc/localtime", "target": "/etc/localtime", "read_only": True},
            {"type": "volume", "source": "model-cache", "target": "/cache"},
            {"type": "volume", "source": "pgdata", "target": "/var/lib/postgresql/data"},
            {"type": "volume", "target": "/anon"},
            {"type": "volume", "source": "ondisk", "target": "/ondisk"}],
            "tmpfs": ["/tmp:size=64m"]},
    }, volumes={"model-cache": None, "pgdata": {"external": True, "name": "immich_pgdata"},
                "ondisk": {"driver_opts": {"type": "none", "o": "bind", "device": f"{BASE}/photo/ondisk"}}})
    v = verdicts(s)
    assert v[("server", "/usr/src/app/upload")] == COVERED
    assert v[("server", "/git")] == FOREIGN
    assert v[("server", "/etc/caddy/Caddyfile")] == CONFIG
    assert v[("server", "/data")] == UNCOVERED  # writable, in the stack folder: OS disk
    assert v[("server", "/media")] == UNCOVERED
    assert v[("server", "/ro")] == NOT_DATA
    assert v[("server", "/var/run/docker.sock")] == NOT_DATA and v[("server", "/etc/localtime")] == NOT_DATA
    assert v[("server", "/cache")] == UNCOVERED and v[("server", "/var/lib/postgresql/data")] == UNCOVERED
    assert v[("server", "/anon")] == UNCOVERED
    assert v[("server", "/ondisk")] == COVERED  # a named volume bound to a path on the dataset
    assert v[("server", "/tmp")] == NOT_DATA
    lines = [c.line() for c in problems(stack_coverage(s, BASE, ["photo", "git"]))]
    expected = ("photo: service 'server' volume pgdata -> /var/lib/postgresql/data: uncovered (docker volume on the "
                "OS disk (external)); fix: make adopt SERVICE_NAME=photo")
    assert any(line.startswith(expected) for line in lines)
    assert any("dataset git, another service's" in line for line in lines)


def test_v1_short_strings_keep_read_only_and_named_volumes(tmp_path):
    s = stack(tmp_path, {"db": {"image": "postgres", "volumes": [
        "pgdata:/var/lib/postgresql/data:rw", f"{tmp_path}/photo/init.sql:/docker-entrypoint-initdb.d/i.sql:ro",
        "/var/lib/anon"]}}, volumes={"pgdata": {}})
    v = verdicts(s)
    assert v == {("db", "/var/lib/postgresql/data"): UNCOVERED, ("db", "/docker-entrypoint-initdb.d/i.sql"): CONFIG,
                 ("db", "/var/lib/anon"): UNCOVERED}


@pytest.mark.parametrize("key", ["model-cache", "photo_model-cache", "/cache"])
def test_a_declared_ephemeral_volume_is_accepted_with_its_reason(tmp_path, key):
    s = stack(tmp_path, {"ml": {"image": "ml", "volumes": [{"type": "volume", "source": "model-cache",
                                                             "target": "/cache"}]}},
              volumes={"model-cache": None}, ephemeral={key: "downloaded models, fetched again on start"})
    [c] = stack_coverage(s, BASE, ["photo"])
    assert (c.verdict, c.where) == (EPHEMERAL, "downloaded models, fetched again on start") and not c.problem
    assert ephemeral_problems(s) == []


def test_a_relative_path_can_be_declared_ephemeral(tmp_path):
    s = stack(tmp_path, {"app": {"image": "a", "volumes": [{"type": "bind", "source": str(tmp_path / "photo/logs"),
                                                            "target": "/logs"}]}},
              ephemeral={"./logs": "debug logs"})
    assert [c.verdict for c in stack_coverage(s, BASE, ["photo"])] == [EPHEMERAL]


def test_a_declaration_without_a_reason_or_without_a_mount_is_named(tmp_path):
    s = stack(tmp_path, {"app": {"image": "a", "volumes": [{"type": "volume", "source": "cache", "target": "/c"}]}},
              volumes={"cache": None}, ephemeral={"cache": "", "typo": "x"})
    found = ephemeral_problems(s)
    assert any("cache: give the reason" in p for p in found) and any("typo: matches no mount" in p for p in found)


def test_a_writable_bind_in_the_stack_folder_suggests_read_only_first(tmp_path):
    (tmp_path / "photo").mkdir()
    (tmp_path / "photo" / "config.yml").write_text("x: 1\n")
    s = stack(tmp_path, {"app": {"image": "a", "volumes": [
        {"type": "bind", "source": str(tmp_path / "photo/config.yml"), "target": "/app/config.yml"}]}})
    [c] = stack_coverage(s, BASE, ["photo"])
    assert c.verdict == UNCOVERED and c.fix.startswith("mount it read-only (':ro') if it is configuration")
    (tmp_path / "photo" / "db").mkdir()
    s = stack(tmp_path, {"app": {"image": "a", "volumes": [
        {"type": "bind", "source": str(tmp_path / "photo/db"), "target": "/var/lib/postgresql/data"}]}})
    [c] = stack_coverage(s, BASE, ["photo"])
    assert c.fix.startswith("make adopt SERVICE_NAME=photo (moves it onto the dataset); or ':ro'")


def test_a_volume_bound_to_a_host_path_outside_zfs_names_that_path(tmp_path):
    s = stack(tmp_path, {"app": {"image": "busybox", "volumes": [{"type": "volume", "source": "media",
                                                                   "target": "/media"}]}},
              volumes={"media": {"driver": "local", "driver_opts": {"type": "none", "o": "bind",
                                                                    "device": "/srv/media"}}})
    [c] = problems(stack_coverage(s, BASE, ["photo"]))
    assert c.verdict == UNCOVERED and c.source == "volume media"
    assert c.where == "host path /srv/media (its driver_opts.device), outside ZFS"
