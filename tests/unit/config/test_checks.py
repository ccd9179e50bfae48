"""Cross-checks: the rules that span several settings (passphrase, retention, views, unknown keys)."""

from __future__ import annotations

from management.config import (
    load_settings,
)
from tests.unit.config.test_load import BASE, PASS, problems, write


def test_world_readable_env_with_passphrase_warns(tmp_path):
    _, warnings = load_settings(write(tmp_path, BASE, mode=0o644))
    assert any("chmod 600" in w for w in warnings)
    assert not any(PASS in w for w in warnings)


def test_missing_passphrase_and_two_passphrase_sources(tmp_path):
    assert any("BORG_PASSPHRASE: required" in p
               for p in problems(tmp_path, BASE.replace(f"BORG_PASSPHRASE={PASS}\n", "")))
    both = BASE + "BORG_PASSCOMMAND=cat /x\n"
    assert any("set only one way" in p for p in problems(tmp_path, both))


def test_retention_defaults_and_overrides(tmp_path):
    text = BASE + 'BORG_RETENTION=daily=7,weekly=4\nBORG_RETENTION_OVERRIDES="\ngit:daily=365\n"\n'
    s, _ = load_settings(write(tmp_path, text))
    assert s.retention("git") == {"daily": "365", "weekly": "4"}
    assert s.retention("photo") == {"daily": "7", "weekly": "4"}


def test_retention_override_for_unknown_service_and_bad_value(tmp_path):
    text = BASE + 'BORG_RETENTION_OVERRIDES="\nmedia:daily=3\ngit:daily=lots\n"\n'
    found = problems(tmp_path, text)
    assert any("line 2: unknown service 'media'" in p for p in found)
    assert any("daily='lots'" in p for p in found)


def test_view_dataset_inside_parent_is_rejected(tmp_path):
    found = problems(tmp_path, BASE + "VIEW_DATASET=datapool/services/views\n")
    assert any(p.startswith("VIEW_DATASET:") for p in found)


def test_unknown_keys_warn_but_remapped_uid_keys_are_known(tmp_path):
    _, warnings = load_settings(write(tmp_path, BASE + "HEALTH_TIMOUT=5\nREMAPPED_EXTRA_UID=100005\n"))
    assert warnings == ["HEALTH_TIMOUT: unknown key, ignored (typo?)"]


def test_a_wrong_parent_dataset_is_one_problem_not_also_one_of_the_view_derived_from_it(tmp_path):
    assert problems(tmp_path, BASE.replace("datapool/services", "datapool", 1)) == [
        "ZFS_PARENT_DATASET: 'datapool' is a pool; use a dataset inside it (e.g. datapool/services)"]
