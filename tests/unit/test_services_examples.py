"""The example stacks in services/ are what a user copies: they must pass the tool's own
hub-and-spoke check with the shipped .env.example, and follow the rules docs/services.md gives."""

from pathlib import Path

import pytest

from management.compose_file import check_stacks, find_stacks, load_yaml, parse_stack
from management.config import load_settings

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ROOT / "services"


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    env = tmp_path_factory.mktemp("env") / ".env"
    text = (ROOT / ".env.example").read_text()
    env.write_text(text.replace("SERVICES_DIR=/home/runner/services", f"SERVICES_DIR={SERVICES}"))
    env.chmod(0o600)
    return load_settings(env)[0]


def stacks(settings):
    env = {"ZFS_BASE_MOUNTPOINT": str(settings.zfs_base_mountpoint)}
    return [parse_stack(n, f, env) for n, f in find_stacks(SERVICES)]


def test_examples_pass_check_stacks_with_the_shipped_env_example(settings):
    found = stacks(settings)
    assert [s.name for s in found] == ["git", "photo", "reverseproxy"]
    listed = [vp.relative for vp in settings.volume_paths]
    assert check_stacks(found, settings.hub_service, settings.zfs_base_mountpoint, listed) == []


def test_every_listed_path_is_mounted_by_some_example(settings):
    binds = {str(b.source) for s in stacks(settings) for b in s.binds}
    for vp in settings.volume_paths:
        assert str(settings.zfs_base_mountpoint / vp.relative) in binds, vp.relative


@pytest.mark.parametrize("name", ["reverseproxy", "git", "photo"])
def test_each_container_has_an_image_tag_healthcheck_and_log_limits(name):
    data = load_yaml(SERVICES / name / "compose.yaml")
    for svc, spec in data["services"].items():
        image = spec["image"].split("/")[-1]
        assert ":" in image and not image.endswith(":latest"), f"{name}/{svc}: pin an image tag"
        assert spec.get("healthcheck", {}).get("test"), f"{name}/{svc}: no healthcheck"
        assert spec.get("container_name"), f"{name}/{svc}: no container_name"
        assert spec.get("restart") == "unless-stopped"
        assert spec["logging"]["options"]["max-size"], f"{name}/{svc}: no log limit"
        if name != "reverseproxy":
            assert spec.get("user"), f"{name}/{svc}: runs as root"
        for dep in (spec.get("depends_on") or {}).values():
            assert dep["condition"] == "service_healthy"
    assert (SERVICES / name / ".env.example").is_file()


def test_only_the_hub_publishes_and_the_caddyfile_uses_the_internal_ca():
    caddyfile = (SERVICES / "reverseproxy" / "Caddyfile").read_text()
    assert caddyfile.count("\n\ttls internal\n") == 2
    hub = load_yaml(SERVICES / "reverseproxy" / "compose.yaml")["services"]["caddy"]
    assert hub["container_name"] == "central_hub" and "443:443" in hub["ports"]
