"""The Settings object: secrets masked, `config show` and `config check` per stack."""

from __future__ import annotations

from management.config import (
    SETTINGS,
    load_settings,
)
from tests.unit.config.test_load import BASE, PASS, settings_with, write


def test_masked_show_hides_passphrase_and_push_url_token(tmp_path):
    token = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
    s, _ = load_settings(write(tmp_path, BASE + f"PUSH_URL=https://hc.example/ping/{token}\n"))
    shown = "\n".join(f"{k}={v}" for k, v in s.masked().items())
    assert PASS not in shown and token not in shown
    assert token in s.secrets


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
