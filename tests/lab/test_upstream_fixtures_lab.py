"""Compose files as upstream projects ship them (tests/fixtures/upstream, each with its source
and commit), read by the real compose (v2, and v1 in the second pass) through check-stacks and the
unmounted-dataset guard of docker-up."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.lab.envfile import LAB_COMPOSE, run_cli, write_lab_env
from tests.lab.stacks import fixtures_behind_a_hub

pytestmark = [pytest.mark.lab, pytest.mark.compose]
FIXTURES = ROOT / "tests" / "fixtures" / "upstream"
V2 = LAB_COMPOSE == "v2"
# every path under the ZFS base the fixtures mount, except photo/library: immich's .env builds
# it, and check-stacks must see it to name it
LISTED = ["reverseproxy/data", "photo/postgres", "paperless/consume", "paperless/data", "paperless/export",
          "paperless/media", "paperless/pgdata", "paperless/redisdata", "homeassistant/config",
          "authentik/certs", "authentik/custom-templates", "authentik/database", "authentik/media",
          "authentik/redis", "nextcloud/db", "nextcloud/nextcloud", "includeonly/gitea", "resetports/miniflux-db"]
UPSTREAMS = {"photo": "immich_server:2283", "paperless": "webserver:8000", "authentik": "server:9000",
             "nextcloud": "app:80", "includeonly": "gitea:3000", "resetports": "miniflux:8080"}


@pytest.fixture
def upstream(lab, tmp_path):
    env_path, v = write_lab_env(tmp_path, lab, [f"{p}:REMAPPED_APP_UID" for p in LISTED])
    services = Path(v["SERVICES_DIR"])
    fixtures_behind_a_hub(FIXTURES, services, UPSTREAMS)
    return env_path, v, services


@pytest.mark.v1_contract
def test_check_stacks_reads_upstream_files_as_compose_does(upstream):
    env_path, v, services = upstream
    r = run_cli(env_path, "check-stacks")
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    base = v["ZFS_BASE_MOUNTPOINT"]
    ha = services / "homeassistant" / "compose.yml"
    # home assistant on the host's network needs no spoke network of its own (and is not
    # allowed: it declares no reason)
    expected = {
        f"{ha}: service 'homeassistant' uses network_mode: host: it publishes every port on the host",
    }
    if V2:
        expected |= {
            # immich's data path, built in its .env from ZFS_BASE_MOUNTPOINT, is seen where compose puts it
            f"{services}/photo/docker-compose.yml: service 'immich-server' mounts {base}/photo/library, which is "
            "under ZFS_BASE_MOUNTPOINT but not listed",
            # authentik and the gitea of the include-only stack both call their web service "server"
            f"{services}/reverseproxy/Caddyfile:8: reverse_proxy upstream 'server' is ambiguous: stacks authentik, "
            "includeonly",
            # immich's model cache, left in a named volume as upstream has it: on the OS disk
            f"{services}/photo/docker-compose.yml: service 'immich-machine-learning' volume model-cache -> /cache: "
            "uncovered (docker volume on the OS disk)",
        }
    else:  # v1 refuses a top-level name:, include: and !reset; each alone, in compose's words
        expected |= {f"{services}/photo/docker-compose.yml: compose cannot read this stack",
                     f"{services}/includeonly/compose.yaml: compose cannot read this stack",
                     f"{services}/resetports/compose.yaml: compose cannot read this stack"}
    for line in expected:
        assert line in out, f"missing: {line}\n{out}"
    violations = [ln for ln in out.splitlines() if ln.startswith(str(services))]
    assert len(violations) == len(expected), out


def test_docker_up_refuses_the_env_built_path_on_a_missing_dataset(upstream, lab):
    env_path, v, _services = upstream
    r = run_cli(env_path, "docker-up", "photo")
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    if V2:
        # DB_DATA_LOCATION, built in immich's .env like UPLOAD_LOCATION
        assert f"{v['ZFS_BASE_MOUNTPOINT']}/photo/postgres is on dataset {v['ZFS_PARENT_DATASET']}/photo, " \
               "which is not mounted" in out
    else:  # v1 cannot read immich's file at all (top-level name:): refused before anything runs
        assert "photo: FAILED - refused" in out
    assert not Path(v["ZFS_BASE_MOUNTPOINT"]).exists()  # nothing was created on the OS disk
    ps = subprocess.run(["docker", "ps", "-aq", "--filter", "label=com.docker.compose.project=photo"],
                        capture_output=True, text=True, timeout=30)
    assert ps.stdout.strip() == ""
