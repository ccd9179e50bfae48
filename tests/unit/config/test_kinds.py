"""Kinds of value: each names its key, keeps its bounds and rejects what the tools would."""

from __future__ import annotations

from pathlib import Path

import pytest

from management.config import (
    load_settings,
    split_urls,
    validate_dataset_name,
)
from tests.unit.config.test_load import BASE, problems, settings_with, write


@pytest.mark.parametrize("name", ["pool", "pool/a b", "pool//x", "1pool/x", "pool/x@snap", "pool/../x"])
def test_dataset_names_zfs_would_reject(tmp_path, name):
    found = problems(tmp_path, BASE.replace("datapool/services", name, 1))
    assert any(p.startswith("ZFS_PARENT_DATASET:") for p in found)


def test_validate_dataset_name_accepts_normal_names():
    assert validate_dataset_name("datapool/services/git-1.x_y:z") is None


@pytest.mark.parametrize("service", ["a;b", "$(x)", "`x`", "a b", "-x", ".hidden"])
def test_shell_metacharacters_in_service_names_are_rejected(tmp_path, service):
    found = problems(tmp_path, BASE.replace("photo/library", f"{service}/library"))
    assert any("line 4" in p and "not allowed" in p for p in found), found


def test_docker_address_pool_default_off_and_bad_values_named(tmp_path):
    assert load_settings(write(tmp_path, BASE))[0].docker_address_pool == ("172.16.0.0/12", 24)
    assert load_settings(write(tmp_path, BASE + "DOCKER_ADDRESS_POOL=off\n"))[0].docker_address_pool == ()
    assert load_settings(write(tmp_path, BASE + "DOCKER_ADDRESS_POOL=10.50.0.0/16:26\n"))[0].docker_address_pool == \
        ("10.50.0.0/16", 26)
    for bad, says in (("10.50.0.0/16", "between 17 and 29"), ("8.8.0.0/16:24", "not a private range"),
                      ("10.50.0.1/16:24", "is not BASE/PREFIX:SIZE"), ("172.16.0.0/12:8", "not '8'")):
        found = problems(tmp_path, BASE + f"DOCKER_ADDRESS_POOL={bad}\n")
        assert any(p.startswith("DOCKER_ADDRESS_POOL:") and says in p for p in found), (bad, found)


def test_drill_dir_is_an_optional_absolute_path(tmp_path):
    assert settings_with(tmp_path, "DRILL_DIR=/var/tmp/drill\n").drill_dir == Path("/var/tmp/drill")
    assert problems(tmp_path, BASE + "DRILL_DIR=tmp/drill\n") == ["DRILL_DIR: 'tmp/drill' must be an absolute path"]


def test_whole_numbers_with_bounds_and_0_1_switches(tmp_path):
    found = problems(tmp_path, BASE + "HEALTH_TIMEOUT=2m\nKEEP_LAST_SNAPSHOT=2\nBORG_PARALLEL=0\n")
    assert sorted(found) == ["BORG_PARALLEL: 0 is outside 1..16", "HEALTH_TIMEOUT: '2m' is not a whole number",
                             "KEEP_LAST_SNAPSHOT: 2 is outside 0..1"]
    assert settings_with(tmp_path, "SKIP_UNCHANGED=0\n").skip_unchanged == 0


def test_each_kind_of_value_names_its_key(tmp_path):
    text = (BASE.replace("BORG_REPO_BASE_PATH=/backup/repos", "BORG_REPO_BASE_PATH=ssh://host/repos")
            .replace("SERVICES_DIR=/home/runner/services", "SERVICES_DIR=/home/../services")
            + "COMPOSE_COMMAND=v3\nHUB_SERVICE=a;b\nSNAPSHOT_PREFIX=1x\nPUSH_URL=hc.example/x\nLOCK_FILE=lock\n")
    assert sorted(problems(tmp_path, text)) == [
        "BORG_REPO_BASE_PATH: 'ssh://host/repos' must look like ssh://user@host[:port]/path",
        "COMPOSE_COMMAND: 'v3' must be one of auto, v2, v1",
        "HUB_SERVICE: 'a;b' is not a valid service folder name",
        "LOCK_FILE: 'lock' must be an absolute path",
        "PUSH_URL: must start with http:// or https://",
        "SERVICES_DIR: '/home/../services' must not contain '..'",
        "SNAPSHOT_PREFIX: '1x' must be a letter followed by letters, digits, '_' or '-' (max 32)",
    ]


def test_stale_after_is_hours_with_bounds(tmp_path):
    assert settings_with(tmp_path).stale_after == 36
    assert settings_with(tmp_path, "STALE_AFTER=12\n").stale_after == 12
    assert problems(tmp_path, BASE + "STALE_AFTER=0\n") == ["STALE_AFTER: 0 is outside 1..8760"]
    assert problems(tmp_path, BASE + "STALE_AFTER=1.5\n") == ["STALE_AFTER: '1.5' is not a whole number"]


def test_notify_urls_are_secrets_and_bad_ones_are_named_by_position_only(tmp_path):
    s = settings_with(tmp_path, "NOTIFY_URLS=ntfys://ntfy.sh/homelab-topic-7f3a, tgram://123456:ABCDEFGH/42\n")
    assert s.notify_urls == ("ntfys://ntfy.sh/homelab-topic-7f3a", "tgram://123456:ABCDEFGH/42")
    assert "tgram://123456:ABCDEFGH/42" in s.secrets and "homelab-topic-7f3a" in s.secrets
    assert s.notify_on == "failure"
    assert split_urls("a://1,b://2\n c://3") == ["a://1", "b://2", "c://3"]


def test_bad_notify_url_is_reported_without_echoing_it(tmp_path):
    errors = problems(tmp_path, BASE + "NOTIFY_URLS=ntfys://ok/topic hunter2-secret\n")
    assert errors == ["NOTIFY_URLS: URL number 2 is not scheme://... (Apprise URLs, e.g. ntfys://ntfy.sh/topic; "
                      "separate several with spaces)"]
    assert not any("hunter2" in e for e in errors)
