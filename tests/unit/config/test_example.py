"""`.env.example` is rendered from management.config.SETTINGS (`make env-example`); the committed
file must be that rendering, and what it shows is checked against the declaration here."""

from __future__ import annotations

import re

import pytest

from management.config import (
    SETTINGS,
    Setting,
    Text,
    Url,
    load_settings,
    render_env_example,
)
from tests.unit.config.test_load import PASS, ROOT, write

EXAMPLE_KEY_LINE = re.compile(r"^(#?)([A-Z][A-Z0-9_]*)=")


def example_keys() -> dict[str, list[bool]]:
    """Every key .env.example shows, set (False) or commented out (True), per occurrence."""
    shown: dict[str, list[bool]] = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        m = EXAMPLE_KEY_LINE.match(line)
        if m:
            shown.setdefault(m.group(2), []).append(bool(m.group(1)))
    return shown


def test_env_example_shows_every_declared_key_once_and_nothing_else():
    shown = example_keys()
    assert {k: v for k, v in shown.items() if len(v) > 1} == {}
    undeclared = [k for k in shown if not any(s.matches(k) for s in SETTINGS)]
    assert undeclared == [], "declare these in management/config/table.py SETTINGS"
    missing = [s.key for s in SETTINGS if not any(s.matches(k) for k in shown)]
    assert missing == [], "add these to .env.example (commented out if optional)"


def test_env_example_shows_the_declared_default_wherever_there_is_one(tmp_path):
    """A value shown for a key with a default (set, or commented out) is that default; keys
    without one (required, or empty by default) show an example instead."""
    text = (ROOT / ".env.example").read_text()
    with_default = [s for s in SETTINGS if not s.family and s.described != s.doc]
    keys = [s.key for s in with_default]
    uncommented = re.sub(rf"^#(({'|'.join(keys)})=)", r"\1", text, flags=re.M)
    removed = re.sub(rf"^#?({'|'.join(keys)})=.*\n", "", text, flags=re.M)
    as_shown = load_settings(write(tmp_path, uncommented))[0]
    as_default = load_settings(write(tmp_path, removed))[0]
    differ = {s.key: (getattr(as_shown, s.name), getattr(as_default, s.name)) for s in with_default
              if getattr(as_shown, s.name) != getattr(as_default, s.name)}
    assert differ == {}, "(shown in .env.example, declared default)"
    assert {"BORG_BASE_DIR", "VIEW_DATASET", "DRILL_SCHEDULE", "BORG_RETENTION", "LOCK_FILE"} <= set(keys)


def test_committed_env_example_is_the_rendering_of_the_settings_table():
    committed = (ROOT / ".env.example").read_text()
    assert committed == render_env_example(), ".env.example is out of date: run `make env-example`"


def test_every_declared_setting_is_in_the_rendering_set_or_commented_out():
    text = render_env_example()
    for s in SETTINGS:
        keys = list(s.example) if s.family else [s.key]
        for key in keys:
            assert re.search(rf"^#?{key}=", text, flags=re.M), key


def test_the_rendering_loads_once_its_placeholders_are_filled(tmp_path):
    """What a user must fill in (the passphrase, the optional push URLs) is a placeholder in the
    file; filled with real values, the file loads and the values are secrets."""
    token = "5f3e9a0c1b2d"
    filled = (render_env_example()
              .replace("BORG_PASSPHRASE=change-me-to-a-long-random-passphrase", f"BORG_PASSPHRASE={PASS}")
              .replace("#PUSH_URL=https://hc-ping.com/your-uuid", f"PUSH_URL=https://hc.example/ping/{token}")
              .replace("#NOTIFY_URLS=ntfys://ntfy.sh/your-topic tgram://your-bot-token/your-chat-id",
                       "NOTIFY_URLS=ntfys://ntfy.sh/homelab-7f3a9c"))
    assert "change-me" not in filled
    settings, warnings = load_settings(write(tmp_path, filled))
    assert warnings == []
    assert settings.services == ("reverseproxy", "git", "photo", "status")
    assert {PASS, token, "ntfys://ntfy.sh/homelab-7f3a9c"} <= set(settings.secrets)
    assert settings.retention("git") == {"daily": "365", "weekly": "52", "monthly": "24"}


def test_rendering_refuses_a_setting_outside_a_section_or_a_real_looking_secret():
    stray = Setting("NEW_KEY", Text(), "Added without a section.", default="x")
    with pytest.raises(ValueError, match="NEW_KEY: no section"):
        render_env_example((*SETTINGS, stray))
    leaked = Setting("HOOK_URL", Url(), "A push URL.", secret=True, section="Monitoring (optional)",
                     sample="https://hc.example/ping/5f3e9a0c1b2d")
    with pytest.raises(ValueError, match="HOOK_URL: a secret's example must be a placeholder"):
        render_env_example((*SETTINGS, leaked))
    unexampled = Setting("MUST_HAVE", Text(), "Required.", required=True, section="Monitoring (optional)")
    with pytest.raises(ValueError, match="MUST_HAVE: required, so it needs an example"):
        render_env_example((*SETTINGS, unexampled))
    split = Setting("LATE_KEY", Text(), "Back in the first section.", section="General")
    with pytest.raises(ValueError, match="LATE_KEY: its section 'General' is split"):
        render_env_example((*SETTINGS, split))


def test_a_settings_comment_is_its_doc_and_note_and_the_default_the_line_does_not_show():
    lines = render_env_example().splitlines()
    at = lines.index("#BORG_BASE_DIR=/home/runner/management/.borg")
    assert lines[at - 2:at] == [
        "# Borg's cache, config and security dirs. Kept out of a user's home, so that sudo leaves no",
        "# root-owned files there. Default: MANAGEMENT_DIR/.borg."]
    at = lines.index("#BORG_PARALLEL=1")
    assert lines[at - 1] == "# Datasets borg backs up at once. 1: one after another. Within 1..16."
    assert all(len(line) <= 100 for line in lines if line.startswith("#"))
