"""The coverage model: each mount of each service gets one verdict, read from compose's own
resolved model (v2's long syntax and v1's short strings)."""

from __future__ import annotations

from pathlib import Path

import pytest

from management.stacks.compose_file import StackDir, stack_from_model
from management.stacks.coverage import (
    CONFIG,
    COPIED,
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
    assert v[("server", "/data")] == COPIED  # writable, in the stack folder: the folder's copy holds it
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


def bind_stack(tmp_path, source, target="/config", consistency=None, read_only=False):
    model = {"services": {"app": {"image": "a", "volumes": [
        {"type": "bind", "source": str(source), "target": target, "read_only": read_only}]}}}
    if consistency:
        model["x-orchestrator"] = {"consistency": consistency}
    d = tmp_path / "photo"
    d.mkdir(exist_ok=True)
    return stack_from_model(StackDir("photo", d, d / "compose.yaml"), model)


def test_a_writable_folder_in_the_stack_folder_of_a_stopped_stack_is_copied_whole_not_a_problem(tmp_path):
    (tmp_path / "photo" / "config").mkdir(parents=True)
    [c] = stack_coverage(bind_stack(tmp_path, tmp_path / "photo/config"), BASE, ["photo"])
    assert c.verdict == COPIED and not c.problem and not c.fix and problems([c]) == []
    assert c.where == ("in the stack folder; the night copies it into the archive while the stack is stopped "
                       "(consistent); outside the ZFS snapshot, so make versions and local history do not see it "
                       "(make adopt SERVICE_NAME=photo moves it onto the dataset for that)")
    assert c.note() == f"photo: service 'app' {tmp_path}/photo/config -> /config: {c.where}"
    # not there yet (docker creates it on up, in the folder), and `consistency: stop` said out loud
    for source, consistency in ((tmp_path / "photo/later", None), (tmp_path / "photo/config", "stop")):
        [c] = stack_coverage(bind_stack(tmp_path, source, consistency=consistency), BASE, ["photo"])
        assert c.verdict == COPIED


def test_a_writable_file_in_the_stack_folder_is_copied_and_adopt_is_not_offered(tmp_path):
    (tmp_path / "photo").mkdir()
    (tmp_path / "photo" / "config.yml").write_text("x: 1\n")
    [c] = stack_coverage(bind_stack(tmp_path, tmp_path / "photo/config.yml", "/app/config.yml"), BASE, ["photo"])
    assert c.verdict == COPIED and "while the stack is stopped (consistent)" in c.where
    assert "make adopt" not in c.where  # adopt moves directories only


def test_in_a_live_stack_it_is_copied_while_running_a_problem_with_why_and_the_fix(tmp_path):
    (tmp_path / "photo" / "db").mkdir(parents=True)
    [c] = stack_coverage(bind_stack(tmp_path, tmp_path / "photo/db", "/var/lib/postgresql/data", "live"), BASE,
                         ["photo"])
    assert c.verdict == UNCOVERED and c.problem
    assert c.where == ("in the stack folder, copied while the stack runs (consistency: live): a database there may "
                       "be torn")
    assert c.fix.startswith("move it onto the dataset with make adopt SERVICE_NAME=photo; or remove consistency: "
                            "live from x-orchestrator")
    (tmp_path / "photo" / "app.yml").write_text("x: 1\n")
    [c] = stack_coverage(bind_stack(tmp_path, tmp_path / "photo/app.yml", "/app.yml", "live"), BASE, ["photo"])
    assert c.verdict == UNCOVERED and c.fix.startswith("mount it read-only (':ro') if the container only reads it")
    assert "make adopt" not in c.fix  # adopt refuses a file
    # read-only stays configuration, live or not
    [c] = stack_coverage(bind_stack(tmp_path, tmp_path / "photo/app.yml", "/app.yml", "live", True), BASE,
                         ["photo"])
    assert c.verdict == CONFIG


def test_a_symlink_out_of_the_stack_folder_gets_the_verdict_of_where_it_leads(tmp_path):
    (tmp_path / "photo").mkdir()
    (tmp_path / "srv" / "state").mkdir(parents=True)
    (tmp_path / "photo" / "state").symlink_to(tmp_path / "srv" / "state")
    [c] = stack_coverage(bind_stack(tmp_path, tmp_path / "photo/state"), BASE, ["photo"])
    assert c.verdict == UNCOVERED and c.source == f"{tmp_path}/photo/state"
    assert c.where == (f"a host path outside ZFS; ./state is a symlink to {tmp_path}/srv/state: the stack folder's "
                       "copy keeps the link, not the data")
    assert c.fix.startswith("make adopt SERVICE_NAME=photo")
    # a symlink onto the stack's own dataset: the snapshot has it
    base = tmp_path / "pool"
    (base / "photo" / "data").mkdir(parents=True)
    (tmp_path / "photo" / "data").symlink_to(base / "photo" / "data")
    [c] = stack_coverage(bind_stack(tmp_path, tmp_path / "photo/data"), base, ["photo"])
    assert c.verdict == COVERED and "./data is a symlink to" in c.where
    # read-only, out of the folder: a read-only host path, not the folder's configuration
    [c] = stack_coverage(bind_stack(tmp_path, tmp_path / "photo/state", read_only=True), BASE, ["photo"])
    assert c.verdict == NOT_DATA


def test_a_symlink_inside_the_folder_and_a_symlinked_stack_folder_are_still_the_folders_copy(tmp_path):
    (tmp_path / "photo" / "real").mkdir(parents=True)
    (tmp_path / "photo" / "link").symlink_to("real")
    [c] = stack_coverage(bind_stack(tmp_path, tmp_path / "photo/link"), BASE, ["photo"])
    assert c.verdict == COPIED
    # SERVICES_DIR/photo -> /elsewhere/photo: compose and the night's copy both follow it
    (tmp_path / "elsewhere" / "photo" / "config").mkdir(parents=True)
    services = tmp_path / "services"
    services.mkdir()
    (services / "photo").symlink_to(tmp_path / "elsewhere" / "photo")
    model = {"services": {"app": {"image": "a", "volumes": [
        {"type": "bind", "source": str(services / "photo" / "config"), "target": "/config"}]}}}
    s = stack_from_model(StackDir("photo", services / "photo", services / "photo" / "compose.yaml"), model)
    assert [c.verdict for c in stack_coverage(s, BASE, ["photo"])] == [COPIED]


def test_a_path_leaving_the_stack_folder_is_not_its_copy(tmp_path):
    (tmp_path / "photo").mkdir()
    model = {"services": {"app": {"image": "a", "volumes": ["../shared:/shared"]}}}
    s = stack_from_model(StackDir("photo", tmp_path / "photo", tmp_path / "photo" / "compose.yaml"), model)
    [c] = stack_coverage(s, BASE, ["photo"])
    assert c.verdict == UNCOVERED and c.source == f"{tmp_path}/shared" and c.where == "a host path outside ZFS"


def test_a_writable_file_outside_zfs_is_not_sent_to_adopt(tmp_path):
    (tmp_path / "app.conf").write_text("x\n")
    [c] = stack_coverage(bind_stack(tmp_path, tmp_path / "app.conf", "/app.conf"), BASE, ["photo"])
    assert c.verdict == UNCOVERED and c.fix.startswith("mount it read-only (':ro') if the container only reads it")


def test_a_volume_bound_to_a_host_path_outside_zfs_names_that_path(tmp_path):
    s = stack(tmp_path, {"app": {"image": "busybox", "volumes": [{"type": "volume", "source": "media",
                                                                   "target": "/media"}]}},
              volumes={"media": {"driver": "local", "driver_opts": {"type": "none", "o": "bind",
                                                                    "device": "/srv/media"}}})
    [c] = problems(stack_coverage(s, BASE, ["photo"]))
    assert c.verdict == UNCOVERED and c.source == "volume media"
    assert c.where == "host path /srv/media (its driver_opts.device), outside ZFS"
