"""The example stacks in services/ are what a user copies: with each folder's .env.example as
its .env and the shipped .env.example as the tool's, the real compose (v2, and v1 in the second
pass) reads them and they pass the hub-and-spoke check and the rules docs/services.md gives."""

import shutil
from pathlib import Path

import pytest

from management.config import load_settings
from management.runner import Runner
from management.tools.compose import DockerComposeManager
from tests.conftest import ROOT
from tests.lab.envfile import LAB_COMPOSE

pytestmark = [pytest.mark.lab, pytest.mark.compose]


@pytest.fixture(scope="module")
def examples(lab, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("examples")
    services = tmp / "services"
    shutil.copytree(ROOT / "services", services)
    for d in services.iterdir():
        shutil.copy(d / ".env.example", d / ".env")
    env = tmp / ".env"
    text = (ROOT / ".env.example").read_text().replace("SERVICES_DIR=/home/runner/services", f"SERVICES_DIR={services}")
    env.write_text(text.replace("COMPOSE_COMMAND=auto", f"COMPOSE_COMMAND={LAB_COMPOSE}"))
    env.chmod(0o600)
    settings = load_settings(env)[0]
    return settings, DockerComposeManager(settings, Runner())


def test_examples_pass_check_stacks_with_the_shipped_env_example(examples):
    settings, docker = examples
    assert [s.name for s in docker.stacks()] == ["git", "photo", "reverseproxy", "status"]
    assert docker.check() == []


def test_every_listed_path_is_mounted_by_some_example(examples):
    settings, docker = examples
    binds = {str(b.source) for s in docker.stacks() for b in s.binds}
    for vp in settings.volume_paths:
        assert str(settings.zfs_base_mountpoint / vp.relative) in binds, vp.relative


def test_each_container_has_an_image_tag_healthcheck_and_a_name(examples):
    _settings, docker = examples
    for stack in docker.stacks():
        for svc in stack.services.values():
            image = svc.image.split("/")[-1]
            assert ":" in image and not image.endswith(":latest"), f"{stack.name}/{svc.name}: pin an image tag"
            assert svc.healthcheck, f"{stack.name}/{svc.name}: no healthcheck"
            assert svc.container_name, f"{stack.name}/{svc.name}: no container_name"
        assert (ROOT / "services" / stack.name / ".env.example").is_file()


def test_without_the_folder_env_the_missing_passwords_are_named(examples, tmp_path):
    settings, _docker = examples
    services = tmp_path / "services"
    shutil.copytree(settings.services_dir, services)
    (services / "git" / ".env").unlink()
    import dataclasses

    docker = DockerComposeManager(dataclasses.replace(settings, services_dir=Path(services)), Runner())
    by_name = {s.name: s for s in docker.stacks()}
    assert by_name["reverseproxy"].error is None and by_name["photo"].error is None
    assert "GITEA_DB_PASSWORD" in by_name["git"].error


def test_the_upstream_spoke_runs_on_its_dataset_through_the_files_around_it(examples):
    """services/status: Uptime Kuma's compose.yaml as shipped (./data, port 3001), the user's
    override and what make adopt wrote, merged by compose through COMPOSE_FILE in its .env."""
    settings, docker = examples
    [status] = docker.stacks(["status"])
    assert {m.target: m.source for m in status.mounts} == {"/app/data": str(settings.mountpoint("status") / "data")}
    assert status.ports == {} and status.container_names == {"uptime-kuma": "uptime_kuma"}
    assert "./data:/app/data" in (ROOT / "services" / "status" / "compose.yaml").read_text()  # as shipped
