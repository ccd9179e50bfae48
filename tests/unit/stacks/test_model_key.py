"""The key of compose's model across runs: the same inputs give the same key, and a change to
anything `compose config` could read gives another; what cannot be pinned down is no key."""

import os

import pytest

from management.stacks.model_key import model_key

BASE = ("docker", "compose")


@pytest.fixture
def world(tmp_path):
    """A stack folder, a `docker` on PATH, and the environment compose would get."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text("#!/bin/sh\n")
    (bin_dir / "docker").chmod(0o755)
    stack = tmp_path / "services" / "app"
    stack.mkdir(parents=True)
    (stack / "compose.yaml").write_text("services:\n  web:\n    image: busybox:${TAG}\n    env_file: conf/app.env\n")
    (stack / "conf").mkdir()
    (stack / "conf" / "app.env").write_text("GREETING=hello\n")
    (stack / ".env").write_text("TAG=1\n")
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path / "home"), "TAG": "2", "UNRELATED": "x"}
    return stack, env


def key(world, **env_changes):
    stack, env = world
    return model_key(stack, BASE, {**env, **env_changes})


def test_the_same_inputs_give_the_same_key(world):
    assert key(world) is not None and key(world) == key(world)


@pytest.mark.parametrize("change", [
    lambda s: (s / ".env").write_text("TAG=3\n"),
    lambda s: (s / "conf" / "app.env").write_text("GREETING=bye\n"),  # named by env_file, in a subfolder
    lambda s: (s / "compose.override.yaml").write_text("services: {}\n"),  # a new file compose picks up
    lambda s: (s / "compose.yaml").write_text((s / "compose.yaml").read_text() + "    user: '1000'\n"),
    lambda s: (s / "newdir").mkdir(),
])
def test_a_change_to_any_file_compose_reads_is_another_key(world, change):
    before = key(world)
    change(world[0])
    assert key(world) != before


def test_a_variable_the_files_name_counts_and_one_they_do_not_name_does_not(world):
    assert key(world, TAG="9") != key(world)
    assert key(world, UNRELATED="y") == key(world)
    assert key(world, COMPOSE_PROFILES="debug") != key(world)  # compose's own settings always count
    assert key(world, DOCKER_HOST="tcp://elsewhere") != key(world)


def test_an_included_file_and_what_it_names_relative_to_itself_count(world):
    stack, _ = world
    shared = stack.parent / "shared"
    shared.mkdir()
    (shared / "db.yaml").write_text("services:\n  db:\n    image: busybox\n    env_file: db.env\n")
    (shared / "db.env").write_text("A=1\n")
    (stack / "compose.yaml").write_text("include:\n  - ../shared/db.yaml\nservices:\n  web:\n    image: busybox\n")
    before = key(world)
    (shared / "db.env").write_text("A=2\n")
    assert key(world) != before
    middle = key(world)
    (shared / "db.yaml").write_text((shared / "db.yaml").read_text() + "    user: '1'\n")
    assert key(world) != middle


def test_compose_file_in_dotenv_names_files_that_count(world):
    stack, _ = world
    (stack / "extra").mkdir()
    (stack / "extra" / "more.yaml").write_text("services: {}\n")
    (stack / ".env").write_text("COMPOSE_FILE=compose.yaml:extra/more.yaml\n")
    before = key(world)
    (stack / "extra" / "more.yaml").write_text("services:\n  x:\n    image: busybox\n")
    assert key(world) != before


def test_an_upgraded_compose_is_another_key(world):
    stack, env = world
    before = key(world)
    docker = os.path.join(env["PATH"], "docker")
    os.utime(docker, ns=(1, 1))
    assert key(world) != before


@pytest.mark.parametrize("compose", [
    "services:\n  web:\n    image: busybox\n    env_file: ${CONF}/app.env\n",  # known after interpolation only
    "include:\n  - git@github.com:org/repo.git\nservices: {}\n",  # remote
    "include:\n  - path: https://example.org/compose.yaml\n",
    "services: [unclosed\n",  # YAML cannot read it: compose will say why
])
def test_what_cannot_be_pinned_down_has_no_key(world, compose):
    stack, _ = world
    (stack / "compose.yaml").write_text(compose)
    assert key(world) is None


def test_no_compose_program_is_no_key(world):
    assert key(world, PATH="/nonexistent") is None


def test_a_big_file_counts_by_size_and_time_without_being_read(world, monkeypatch):
    from management.stacks import model_key as mk

    stack, _ = world
    monkeypatch.setattr(mk, "CONTENT_LIMIT", 10)
    (stack / "data.db").write_bytes(b"x" * 100)
    before = key(world)
    os.utime(stack / "data.db", ns=(5, 5))
    assert key(world) != before
