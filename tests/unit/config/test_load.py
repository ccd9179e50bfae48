"""Loading the .env: every problem at once, named by key or line, never echoing a secret; and the
helpers (BASE, settings_with) the other unit tests build their settings with."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from management.config import (
    load_settings,
)
from management.errors import ConfigError

ROOT = Path(__file__).resolve().parents[3]
PASS = "a-long-secret-passphrase"

BASE = f"""ADMIN_USER=runner
MANAGEMENT_DIR=/home/runner/management
VENV_DIR=/home/runner/management/.venv
SERVICES_DIR=/home/runner/services
ZFS_PARENT_DATASET=datapool/services
ZFS_BASE_MOUNTPOINT=/datapool/services
BORG_REPO_BASE_PATH=/backup/repos
BORG_PASSPHRASE={PASS}
REMAPPED_ROOT_UID=100000
REMAPPED_POSTGRES_UID=100999
SERVICE_VOLUME_PATHS_AND_OWNERS="
git/data:REMAPPED_ROOT_UID
git/db:REMAPPED_POSTGRES_UID
photo/library:REMAPPED_ROOT_UID
"
"""


def settings_with(tmp_path, extra: str = "", base: str = BASE):
    """Settings loaded from BASE plus `extra` lines, through the real loader."""
    return load_settings(write(tmp_path, base + extra))[0]


def write(tmp_path, text, mode=0o600, binary=False):
    path = tmp_path / ".env"
    if binary:
        path.write_bytes(text)
    else:
        path.write_text(text)
    os.chmod(path, mode)
    return path


def problems(tmp_path, text, **kw):
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, text, **kw))
    return info.value.problems


def test_example_file_is_valid(tmp_path):
    path = tmp_path / ".env"
    shutil.copy(ROOT / ".env.example", path)
    os.chmod(path, 0o600)
    settings, warnings = load_settings(path)
    assert settings.services == ("reverseproxy", "git", "photo", "status")
    assert warnings == []


def test_valid_file_builds_settings(tmp_path):
    s, warnings = load_settings(write(tmp_path, BASE))
    assert warnings == []
    assert s.services == ("git", "photo")
    assert s.dataset("git") == "datapool/services/git"
    assert str(s.mountpoint("photo")) == "/datapool/services/photo"
    assert s.repo("git") == "/backup/repos/git"
    assert [(v.relative, v.uid, v.gid) for v in s.volume_paths][1] == ("git/db", 100999, 100999)
    assert s.view_dataset == "datapool/orchestrator-views"
    assert s.secrets == (PASS,)


def test_does_not_touch_os_environ(tmp_path):
    before = dict(os.environ)
    load_settings(write(tmp_path, BASE))
    assert dict(os.environ) == before


def test_five_mistakes_give_five_errors_naming_key_or_line_and_never_the_passphrase(tmp_path):
    text = (BASE.replace("ZFS_BASE_MOUNTPOINT=/datapool/services\n", "")
            .replace("REMAPPED_POSTGRES_UID=100999", "REMAPPED_POSTGRES_UID=nine")
            .replace("photo/library:REMAPPED_ROOT_UID", "../etc:REMAPPED_ROOT_UID\n/abs:REMAPPED_ROOT_UID\n"
                     "media/x:REMAPPED_NOPE_UID"))
    found = problems(tmp_path, text)
    assert len(found) == 5, found
    joined = "\n".join(found)
    assert "ZFS_BASE_MOUNTPOINT: required" in joined
    assert "REMAPPED_POSTGRES_UID: 'nine' is not a number" in joined
    assert "line 4 (.env line 13): path '../etc' escapes" in joined
    assert "line 5 (.env line 14): path '/abs' is absolute" in joined
    assert "unknown UID key 'REMAPPED_NOPE_UID'" in joined
    assert PASS not in joined


def test_crlf_line_endings_are_an_error_with_line_numbers(tmp_path):
    found = problems(tmp_path, BASE.replace("\n", "\r\n").encode(), binary=True)
    assert any("CRLF" in p and "line(s) 1, 2, 3" in p for p in found)


def test_duplicate_entries_and_duplicate_keys(tmp_path):
    text = BASE.replace("photo/library:", "git/data:") + "ADMIN_USER=other\n"
    found = problems(tmp_path, text)
    assert any("duplicate entry 'git/data' (first on line 2)" in p for p in found)
    assert any(p.startswith("ADMIN_USER: set more than once (lines 1, 16)") for p in found)


def test_empty_unreadable_and_missing_files(tmp_path):
    assert "empty" in problems(tmp_path, "  \n")[0]
    with pytest.raises(ConfigError, match="file not found"):
        load_settings(tmp_path / "nope.env")
