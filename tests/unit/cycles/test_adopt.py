"""adopt's pure parts: the override compose merges, COMPOSE_FILE in a stack's .env, the new
lines of SERVICE_VOLUME_PATHS_AND_OWNERS. The run itself is a lab test (tests/lab/test_adopt_lab.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from management.cycles.adopt import (
    MARKER,
    Move,
    compose_file_of,
    override_name,
    override_text,
    uid_key_for,
    with_compose_file,
    with_volume_lines,
)
from management.errors import ValidationError

BASE = Path("/datapool/services")


def test_the_override_replaces_each_moved_mount_by_target_and_says_who_wrote_it():
    moves = [Move("db", "/var/lib/postgresql/data", "volume", "photo_pgdata", None, BASE / "photo/pgdata"),
             Move("server", "/usr/src/app/upload", "bind", "/home/u/photo/library", None, BASE / "photo/library"),
             Move("db", "/backups", "bind", "/srv/b", None, BASE / "photo/b")]
    text = override_text(moves)
    assert text.startswith(MARKER)
    doc = yaml.safe_load(text)
    assert doc == {"services": {
        "db": {"volumes": [{"type": "bind", "source": "/datapool/services/photo/pgdata",
                            "target": "/var/lib/postgresql/data"},
                           {"type": "bind", "source": "/datapool/services/photo/b", "target": "/backups"}]},
        "server": {"volumes": [{"type": "bind", "source": "/datapool/services/photo/library",
                                "target": "/usr/src/app/upload"}]}}}


@pytest.mark.parametrize("main, override", [("compose.yaml", "compose.override.yaml"),
                                            ("docker-compose.yml", "docker-compose.override.yml")])
def test_the_override_has_the_name_compose_merges_beside_the_main_file(main, override):
    assert override_name(Path("/s/x") / main) == override


def test_compose_file_in_a_stacks_env_is_read_and_replaced_keeping_everything_else():
    env = "DB_PASSWORD=x\nexport COMPOSE_FILE='compose.yaml:extra.yaml'\nTZ=UTC\n"
    assert compose_file_of(env) == ["compose.yaml", "extra.yaml"]
    assert compose_file_of("TZ=UTC\n") is None
    new = with_compose_file(env, ["compose.yaml", "extra.yaml", "compose.orchestrator.yaml"])
    assert new == "DB_PASSWORD=x\nTZ=UTC\nCOMPOSE_FILE=compose.yaml:extra.yaml:compose.orchestrator.yaml\n"


def test_new_paths_go_inside_the_quoted_volume_list_and_a_single_line_value_is_refused():
    env = 'A=1\nSERVICE_VOLUME_PATHS_AND_OWNERS="\ngit/data:REMAPPED_ROOT_UID\n"\nB=2\n'
    assert with_volume_lines(env, ["photo/pgdata:REMAPPED_POSTGRES_UID"]) == (
        'A=1\nSERVICE_VOLUME_PATHS_AND_OWNERS="\ngit/data:REMAPPED_ROOT_UID\nphoto/pgdata:REMAPPED_POSTGRES_UID\n"\n'
        'B=2\n')
    with pytest.raises(ValidationError, match="double-quoted"):
        with_volume_lines("SERVICE_VOLUME_PATHS_AND_OWNERS=git/data:REMAPPED_ROOT_UID\n", ["x"])


def test_an_owner_gets_the_uid_key_that_has_its_value_or_a_new_one():
    remapped = {"REMAPPED_ROOT_UID": 100000, "REMAPPED_POSTGRES_UID": 100999}
    assert uid_key_for(100999, remapped, "photo", "pgdata") == ("REMAPPED_POSTGRES_UID", None)
    assert uid_key_for(101000, remapped, "photo", "model-cache") == (
        "REMAPPED_PHOTO_MODEL_CACHE_UID", "REMAPPED_PHOTO_MODEL_CACHE_UID=101000")


def test_compose_v1_is_refused_before_anything_is_read(tmp_path):
    from types import SimpleNamespace

    from management.cycles.adopt import AdoptOrchestrator
    from management.cycles.context import RunContext
    from tests.fakes import FakeRunner
    from tests.unit.config.test_load import settings_with

    docker = SimpleNamespace(discover_names=lambda: ["photo"], is_v1=True,
                             stacks=lambda names: pytest.fail("compose was asked"))
    adopter = AdoptOrchestrator(RunContext(settings_with(tmp_path), FakeRunner(), None, docker, None))
    with pytest.raises(ValidationError, match="adopt needs compose v2"):
        adopter.plan("photo")


def test_a_writable_folder_the_stack_folders_copy_holds_can_still_be_moved_a_file_there_is_left_quietly(tmp_path):
    """`copied` is not a problem, but adopt still offers it: on the dataset it is in the snapshot
    (local history, make versions)."""
    from types import SimpleNamespace

    from management.cycles.adopt import AdoptOrchestrator
    from management.cycles.context import RunContext
    from management.stacks.compose_file import StackDir, stack_from_model
    from tests.fakes import FakeRunner
    from tests.unit.config.test_load import settings_with

    settings = settings_with(tmp_path)
    folder = tmp_path / "photo"
    (folder / "uploads" / "album").mkdir(parents=True)
    (folder / "uploads" / "album" / "cat.jpg").write_bytes(b"x" * 5000)
    (folder / "app.yml").write_text("x: 1\n")
    model = {"services": {"db": {"image": "a", "volumes": [
        {"type": "bind", "source": str(folder / "uploads"), "target": "/uploads"},
        {"type": "bind", "source": str(folder / "app.yml"), "target": "/app.yml"}]}}}
    stack = stack_from_model(StackDir("photo", folder, folder / "compose.yaml"), model)
    docker = SimpleNamespace(discover_names=lambda: ["photo"], is_v1=False, forget=lambda names: None,
                             stacks=lambda names: [stack])
    plan = AdoptOrchestrator(RunContext(settings, FakeRunner(), None, docker, None)).plan("photo")
    assert [(m.target, m.source, m.destination) for m in plan.moves] == [
        ("/uploads", str(folder / "uploads"), settings.mountpoint("photo") / "uploads")]
    assert plan.bytes >= 5000 and plan.left == []


def test_a_volume_never_created_is_adopted_owned_by_the_containers_root_not_the_hosts(tmp_path):
    """A stack adopted before its first start (check-stacks' hint, followed on day one): the empty
    directory is made for the container's root (SUBID_START under userns-remap), as docker would
    make the volume; owned by the host's root, the container could neither write nor chown it."""
    from types import SimpleNamespace

    from management.cycles.adopt import AdoptOrchestrator
    from management.cycles.context import RunContext
    from management.stacks.compose_file import StackDir, stack_from_model
    from tests.fakes import FakeRunner
    from tests.unit.config.test_load import settings_with

    settings = settings_with(tmp_path)
    folder = tmp_path / "firefly"
    folder.mkdir()
    model = {"services": {"db": {"image": "mariadb:lts", "volumes": [
        {"type": "volume", "source": "firefly_iii_db", "target": "/var/lib/mysql"}]}},
        "volumes": {"firefly_iii_db": {"name": "firefly_firefly_iii_db"}}}
    stack = stack_from_model(StackDir("firefly", folder, folder / "docker-compose.yml"), model)
    docker = SimpleNamespace(discover_names=lambda: ["firefly"], is_v1=False, forget=lambda names: None,
                             stacks=lambda names: [stack], volumes=SimpleNamespace(path=lambda name: None))
    plan = AdoptOrchestrator(RunContext(settings, FakeRunner(), None, docker, None)).plan("firefly")
    [move] = plan.moves
    assert move.path is None and (move.uid, move.gid) == (settings.subid_start, settings.subid_start)
    assert "empty (never created)" in move.line()
    # the owner line it adds names the root key the .env already has, not a new key for uid 0
    assert uid_key_for(move.uid, dict(settings.remapped_uids), "firefly", "firefly_iii_db")[1] is None


def test_a_second_adopt_adds_to_the_file_the_first_wrote_and_an_undo_puts_it_back(tmp_path):
    """Chaos campaign, seed 37: the second adopt of a stack rewrote compose.orchestrator.yaml
    with its own moves alone (the first adopt's service went back to its old docker volume) and
    named the file twice in COMPOSE_FILE."""
    from management.cycles.adopt import OWN_FILE, AdoptOrchestrator, _Undo
    from management.stacks.compose_file import Stack

    stack_dir = tmp_path / "git"
    stack_dir.mkdir()
    (stack_dir / "compose.yaml").write_text("services: {}\n")
    (stack_dir / "compose.override.yaml").write_text("services: {}\n")  # the user's own
    stack = Stack("git", stack_dir, stack_dir / "compose.yaml")
    first = [Move("db2", "/var/lib/db", "volume", "vol2", None, BASE / "git/db2")]
    second = [Move("db3", "/var/lib/db", "volume", "vol3", None, BASE / "git/db3")]

    class Plan:
        def __init__(self, moves):
            self.moves = moves

    adopt = AdoptOrchestrator.__new__(AdoptOrchestrator)
    adopt.echo = lambda _m: None
    adopt._write_compose(stack, Plan(first), _Undo(None))
    adopt._write_compose(stack, Plan(second), undo := _Undo(None))
    doc = yaml.safe_load((stack_dir / OWN_FILE).read_text())
    assert {s: [v["source"] for v in spec["volumes"]] for s, spec in doc["services"].items()} == \
        {"db2": ["/datapool/services/git/db2"], "db3": ["/datapool/services/git/db3"]}
    assert compose_file_of((stack_dir / ".env").read_text()) == ["compose.yaml", "compose.override.yaml", OWN_FILE]
    undo.run(lambda _m: None)  # the second adopt did not get through: the first one's file is back
    doc = yaml.safe_load((stack_dir / OWN_FILE).read_text())
    assert list(doc["services"]) == ["db2"]


def test_moving_a_mount_again_replaces_it_by_service_and_target():
    earlier = override_text([Move("db", "/data", "volume", "v", None, BASE / "x/old")])
    text = override_text([Move("db", "/data", "volume", "v", None, BASE / "x/new")], earlier)
    assert yaml.safe_load(text)["services"]["db"]["volumes"] == [
        {"type": "bind", "source": "/datapool/services/x/new", "target": "/data"}]
