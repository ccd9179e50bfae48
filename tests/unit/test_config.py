from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from management.config import (
    SETTINGS,
    Setting,
    Text,
    Url,
    load_settings,
    render_env_example,
    split_urls,
    validate_dataset_name,
)
from management.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
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


def test_world_readable_env_with_passphrase_warns(tmp_path):
    _, warnings = load_settings(write(tmp_path, BASE, mode=0o644))
    assert any("chmod 600" in w for w in warnings)
    assert not any(PASS in w for w in warnings)


def test_missing_passphrase_and_two_passphrase_sources(tmp_path):
    assert any("BORG_PASSPHRASE: required" in p
               for p in problems(tmp_path, BASE.replace(f"BORG_PASSPHRASE={PASS}\n", "")))
    both = BASE + "BORG_PASSCOMMAND=cat /x\n"
    assert any("set only one way" in p for p in problems(tmp_path, both))


def test_empty_unreadable_and_missing_files(tmp_path):
    assert "empty" in problems(tmp_path, "  \n")[0]
    with pytest.raises(ConfigError, match="file not found"):
        load_settings(tmp_path / "nope.env")


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


def test_docker_address_pool_default_off_and_bad_values_named(tmp_path):
    assert load_settings(write(tmp_path, BASE))[0].docker_address_pool == ("172.16.0.0/12", 24)
    assert load_settings(write(tmp_path, BASE + "DOCKER_ADDRESS_POOL=off\n"))[0].docker_address_pool == ()
    assert load_settings(write(tmp_path, BASE + "DOCKER_ADDRESS_POOL=10.50.0.0/16:26\n"))[0].docker_address_pool == \
        ("10.50.0.0/16", 26)
    for bad, says in (("10.50.0.0/16", "between 17 and 29"), ("8.8.0.0/16:24", "not a private range"),
                      ("10.50.0.1/16:24", "is not BASE/PREFIX:SIZE"), ("172.16.0.0/12:8", "not '8'")):
        found = problems(tmp_path, BASE + f"DOCKER_ADDRESS_POOL={bad}\n")
        assert any(p.startswith("DOCKER_ADDRESS_POOL:") and says in p for p in found), (bad, found)


def test_view_dataset_inside_parent_is_rejected(tmp_path):
    found = problems(tmp_path, BASE + "VIEW_DATASET=datapool/services/views\n")
    assert any(p.startswith("VIEW_DATASET:") for p in found)


def test_masked_show_hides_passphrase_and_push_url_token(tmp_path):
    token = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
    s, _ = load_settings(write(tmp_path, BASE + f"PUSH_URL=https://hc.example/ping/{token}\n"))
    shown = "\n".join(f"{k}={v}" for k, v in s.masked().items())
    assert PASS not in shown and token not in shown
    assert token in s.secrets


# --- one test per kind of setting: what the declaration must keep doing --------------------


def test_defaults_including_those_derived_from_other_settings(tmp_path):
    s = settings_with(tmp_path)
    assert (s.health_timeout, s.borg_timeout, s.keep_last_snapshot, s.compose_command) == (120, 21600, 1, "auto")
    assert s.borg_base_dir == Path("/home/runner/management/.borg")
    assert s.borg_keys_dir == Path("/home/runner/management/borg_keys")
    assert s.borg_excludes_file == Path("/home/runner/management/borg_excludes.txt")
    assert s.view_dataset == "datapool/orchestrator-views"
    assert (s.borg_rsh, s.push_url, s.drill_dir, s.docker_restart_command) == (None, None, None, "")
    s = settings_with(tmp_path, "BORG_BASE_DIR=/srv/borg\nVIEW_DATASET=tank/views\nHEALTH_TIMEOUT= 30 \n")
    assert (s.borg_base_dir, s.view_dataset, s.health_timeout) == (Path("/srv/borg"), "tank/views", 30)


def test_drill_schedule_defaults_weekly_and_empty_or_off_disables_it(tmp_path):
    assert settings_with(tmp_path).drill_schedule == "0 5 * * 0"
    assert settings_with(tmp_path, "DRILL_SCHEDULE=\n").drill_schedule == ""
    assert settings_with(tmp_path, "DRILL_SCHEDULE=Off\n").drill_schedule == ""
    assert settings_with(tmp_path, "DRILL_SCHEDULE=@weekly\n").drill_schedule == "@weekly"
    assert settings_with(tmp_path, "UPDATE_SCHEDULE=\n").update_schedule == ""
    found = problems(tmp_path, BASE + "DRILL_SCHEDULE=sundays\nUPDATE_SCHEDULE=off\n")
    assert "DRILL_SCHEDULE: 'sundays' is not five cron fields (e.g. '0 5 * * 0'), @weekly or off" in found
    assert any(p.startswith("UPDATE_SCHEDULE: 'off' is not five cron fields") for p in found)


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


def test_unknown_keys_warn_but_remapped_uid_keys_are_known(tmp_path):
    _, warnings = load_settings(write(tmp_path, BASE + "HEALTH_TIMOUT=5\nREMAPPED_EXTRA_UID=100005\n"))
    assert warnings == ["HEALTH_TIMOUT: unknown key, ignored (typo?)"]


def test_every_secret_is_masked_and_handed_to_the_runner(tmp_path):
    token = "5f3e9a0c1b2d"
    s = settings_with(tmp_path, f"PUSH_URL=https://hc.example/ping/{token}\n"
                                f"UPDATE_PUSH_URL=https://hc.example/ping/{token}x\n")
    assert {PASS, f"https://hc.example/ping/{token}", token, f"{token}x"} <= set(s.secrets)
    shown = s.masked()
    assert (shown["BORG_PASSPHRASE"], shown["PUSH_URL"], shown["UPDATE_PUSH_URL"]) == ("***", "***", "***")
    assert PASS not in repr(s) and token not in repr(s)


def test_config_show_prints_each_declared_setting_once_and_doc_adds_its_line(tmp_path):
    from click.testing import CliRunner

    import orchestrator

    env = write(tmp_path, BASE + "PUSH_URL=https://hc.example/ping/5f3e9a0c1b2d\n")
    shown = CliRunner().invoke(orchestrator.cli, ["--env-file", str(env), "config", "show"])
    assert shown.exit_code == 0, shown.output
    keys = [line.split()[0] for line in shown.output.splitlines()]
    declared = [s.key for s in SETTINGS if not s.family]
    assert keys[0] == "ENV_FILE"
    assert [k for k in keys if k in declared] == declared  # once each, in the declaration's order
    assert [k for k in keys if k.startswith("REMAPPED_")] == ["REMAPPED_ROOT_UID", "REMAPPED_POSTGRES_UID"]
    assert len(keys) == 1 + len(declared) + 2
    assert PASS not in shown.output and "5f3e9a0c1b2d" not in shown.output
    assert "BORG_RETENTION                   daily=7,weekly=4,monthly=6" in shown.output

    documented = CliRunner().invoke(orchestrator.cli, ["--env-file", str(env), "config", "show", "--doc"])
    lines = documented.output.splitlines()
    at = lines.index(next(line for line in lines if line.startswith("BORG_BASE_DIR ")))
    assert lines[at - 1] == "# Borg's cache, config and security dirs. Default: MANAGEMENT_DIR/.borg."
    assert "# Datasets borg backs up at once. Default: 1, within 1..16." in lines
    assert [line for line in lines if not line.startswith("#")] == shown.output.splitlines()


def test_config_check_warns_per_service_about_the_stacks_and_claims_no_clean_ok(tmp_path):
    from click.testing import CliRunner

    import orchestrator

    services = tmp_path / "services"
    (services / "git").mkdir(parents=True)
    (services / "git" / "compose.yaml").write_text("services:\n  app:\n    image: gitea\n")
    (services / "media").mkdir()  # a stack no SERVICE_VOLUME_PATHS_AND_OWNERS line names
    (services / "media" / "compose.yaml").write_text("services:\n  app:\n    image: jellyfin\n")
    (services / "wiki").mkdir()  # compose cannot read it
    (services / "wiki" / "compose.yaml").write_text("services:\n  app:\n    image: [wiki\n")
    (services / "photo").symlink_to(tmp_path / "usb" / "photo")  # listed, and its folder is a dangling link
    env = write(tmp_path, BASE.replace("SERVICES_DIR=/home/runner/services", f"SERVICES_DIR={services}"))
    result = CliRunner().invoke(orchestrator.cli, ["--env-file", str(env), "config", "check"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert ": OK (" not in out and f"{env}: valid, 4 warning(s) above" in out
    assert f"warning: photo: listed in SERVICE_VOLUME_PATHS_AND_OWNERS, but {services}/photo is a symlink to " \
           f"{tmp_path}/usb/photo, which does not exist" in out
    assert f"warning: wiki: compose cannot read {services}/wiki/compose.yaml: line 4, column 1:" in out
    for stack in ("media", "wiki"):
        assert f"warning: {stack}: no line in SERVICE_VOLUME_PATHS_AND_OWNERS: only its stack folder is backed up" \
               in out and f"`make adopt SERVICE_NAME={stack}`" in out
    assert "warning: git:" not in out
    # each followed: the listed folder is there, every stack has a line, the file reads: a clean OK
    (services / "photo").unlink()
    (services / "photo").mkdir()
    (services / "photo" / "compose.yaml").write_text("services:\n  app:\n    image: immich\n")
    (services / "wiki" / "compose.yaml").write_text("services:\n  app:\n    image: wiki\n")
    env = write(tmp_path, BASE.replace("SERVICES_DIR=/home/runner/services", f"SERVICES_DIR={services}").replace(
        "photo/library:REMAPPED_ROOT_UID\n", "photo/library:REMAPPED_ROOT_UID\nmedia/data:REMAPPED_ROOT_UID\n"
                                             "wiki/data:REMAPPED_ROOT_UID\n"))
    result = CliRunner().invoke(orchestrator.cli, ["--env-file", str(env), "config", "check"])
    assert result.exit_code == 0 and "warning" not in result.output
    assert f"{env}: OK (4 services: git, photo, media, wiki)" in result.output


# --- .env.example and the declaration agree ------------------------------------------------
# .env.example is rendered from management.config.SETTINGS (`make env-example`); the committed
# file must be that rendering, and what it shows is checked against the declaration here.

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
    assert undeclared == [], "declare these in management/config.py SETTINGS"
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


def test_each_setting_is_declared_once_with_a_doc_line():
    for field in ("key", "name"):
        names = [getattr(s, field) for s in SETTINGS]
        assert len(names) == len(set(names)), field
    assert all(s.doc and "\n" not in s.doc for s in SETTINGS)
    assert [s.key for s in SETTINGS if s.secret] == ["BORG_PASSPHRASE", "UPDATE_PUSH_URL", "PUSH_URL", "NOTIFY_URLS"]


def test_a_wrong_parent_dataset_is_one_problem_not_also_one_of_the_view_derived_from_it(tmp_path):
    assert problems(tmp_path, BASE.replace("datapool/services", "datapool", 1)) == [
        "ZFS_PARENT_DATASET: 'datapool' is a pool; use a dataset inside it (e.g. datapool/services)"]


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
