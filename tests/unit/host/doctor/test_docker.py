"""`doctor`, docker: userns-remap, subordinate ids, log rotation, compose v2."""

import json

import pytest

from management.host.doctor import docker as doctor
from management.host.doctor.check import FAIL, OK, WARN
from tests.unit.host.doctor.test_check import (
    DOCKER_INFO,
    INFO,
    absent,
    answer,
    failed,
)
from tests.unit.host.doctor.test_check import host as host  # noqa: F401  (the fixture: a host where every check is ok)


def test_userns_remap_off_fails_and_another_remap_user_warns(host):
    answer(host, DOCKER_INFO, json.dumps({**INFO, "SecurityOptions": ["name=seccomp,profile=default"]}))
    c = doctor.check_userns(host)
    assert c.status == FAIL and "without userns-remap" in c.detail and "make setup-storage" in c.fix

    host._memo.clear()
    answer(host, DOCKER_INFO, json.dumps(INFO))
    host.settings.docker_daemon_json.write_text(json.dumps({"userns-remap": "default", "log-driver": "local"}))
    c = doctor.check_userns(host)
    assert c.status == WARN and "'default'" in c.detail and "DOCKER_REMAP_USER=default" in c.fix


def test_docker_missing_or_not_answering_is_a_warn_naming_it(host):
    answer(host, DOCKER_INFO, absent("docker"))
    c = doctor.check_userns(host)
    assert c.status == WARN and "docker is not installed" in c.detail
    host._memo.clear()
    answer(host, DOCKER_INFO, failed("Cannot connect to the Docker daemon at unix:///var/run/docker.sock"))
    c = doctor.check_userns(host)
    assert c.status == WARN and "Cannot connect to the Docker daemon" in c.detail


def test_subids_missing_range_or_file_fails(host):
    host.settings.subgid_file.write_text("dockeruser:100000:1000\n")  # too short
    c = doctor.check_subids(host)
    assert c.status == FAIL and str(host.settings.subgid_file) in c.detail
    assert "dockeruser:100000:65536" in c.fix
    host.settings.subuid_file.unlink()
    assert "does not exist" in doctor.check_subids(host).detail


@pytest.mark.parametrize("conf, status, words", [
    ({"log-driver": "local"}, OK, "20m (default)"),
    ({"log-driver": "json-file", "log-opts": {"max-size": "50m"}}, WARN, "dockerd runs local"),
    ({"log-driver": "json-file"}, FAIL, "without max-size"),
    ({"userns-remap": "dockeruser"}, FAIL, "without max-size"),  # json-file is docker's default
    ({"log-driver": "journald"}, WARN, "journald"),
])
def test_log_rotation(host, conf, status, words):
    host.settings.docker_daemon_json.write_text(json.dumps(conf))
    c = doctor.check_log_rotation(host)
    assert c.status == status and words in c.detail


def test_log_rotation_without_or_with_a_broken_daemon_json_fails(host):
    path = host.settings.docker_daemon_json
    path.write_text("{broken")
    c = doctor.check_log_rotation(host)
    assert c.status == FAIL and "invalid JSON" in c.detail
    host._memo.clear()
    path.unlink()
    c = doctor.check_log_rotation(host)
    assert c.status == FAIL and "does not exist" in c.detail and "make setup-storage" in c.fix


def test_compose_v1_only_warns_and_no_compose_fails(host):
    answer(host, ("docker", "compose", "version"), failed("docker: 'compose' is not a docker command."))
    answer(host, ("docker-compose", "version", "--short"), "1.29.2\n")
    c = doctor.check_compose(host)
    assert c.status == WARN and "1.29.2" in c.detail and "stop-mode" in c.detail
    answer(host, ("docker-compose", "version", "--short"), absent("docker-compose"))
    c = doctor.check_compose(host)
    assert c.status == FAIL and "apt-get install docker-compose on Debian 13" in c.fix


def test_debian_13s_docker_compose_is_v2_on_its_own_and_is_ok(host):
    # trixie's docker-compose 2.26 without docker-cli (docker.io only recommends it): the
    # docker CLI cannot find the plugin, /usr/bin/docker-compose still runs compose v2
    answer(host, ("docker", "compose", "version"), absent("docker"))
    answer(host, ("docker-compose", "version", "--short"), "2.26.1\n")
    c = doctor.check_compose(host)
    assert c.status == OK and "docker-compose 2.26.1" in c.detail and "v2" in c.detail
