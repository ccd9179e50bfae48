"""`doctor`, the secrets: the .env's mode, the borg keys, a history protected off this machine."""

import os

from management.config import load_settings
from management.host.doctor import secrets as doctor
from management.host.doctor.check import FAIL, OK, WARN, Host
from tests.unit.host.doctor.test_check import host as host  # noqa: F401  (the fixture: a host where every check is ok)


def test_env_readable_by_others_fails(host):
    path = host.settings.env_file
    assert doctor.check_env_mode(host).status == OK
    os.chmod(path, 0o640)
    c = doctor.check_env_mode(host)
    assert c.status == FAIL and "0640" in c.detail and c.fix == f"chmod 600 {path}"


def test_borg_keys_missing_warn_and_open_ones_fail(host):
    keys = host.settings.borg_keys_dir
    (keys / "photo.key").unlink()
    c = doctor.check_borg_keys(host)
    assert c.status == WARN and "for photo" in c.detail and "borg key export" in c.fix
    os.chmod(keys / "git.key", 0o644)
    c = doctor.check_borg_keys(host)
    assert c.status == FAIL and "git.key (0644)" in c.detail and c.fix == f"chmod 600 {keys / 'git.key'}"


def test_the_history_is_protected_only_off_this_machine_behind_an_append_only_key(host, tmp_path):
    assert doctor.check_history_protection(host).status == OK
    env = host.settings.env_file
    env.write_text(env.read_text().replace("BORG_APPEND_ONLY=1", "BORG_APPEND_ONLY=0"))
    c = doctor.check_history_protection(Host(load_settings(env)[0], host.runner))
    assert c.status == WARN and "can delete every archive" in c.detail and "make authorized-keys" in c.fix
    env.write_text(env.read_text().replace("ssh://borg@backup/./repos", "/backup/repos"))
    c = doctor.check_history_protection(Host(load_settings(env)[0], host.runner))
    assert c.status == WARN and "on this machine" in c.detail
