from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import orchestrator
from management.cli.app import EXIT_CONFIG, App, cli
from tests.unit.config.test_load import BASE, settings_with, write


def test_orchestrator_py_is_the_entry_point_of_the_one_root_group():
    assert orchestrator.cli is cli and orchestrator.App is App
    assert {"backup", "config", "doctor", "restore", "status", "snapshot", "update"} <= set(cli.commands)


def test_a_missing_settings_file_is_a_configuration_error(tmp_path):
    result = CliRunner().invoke(cli, ["--env-file", str(tmp_path / "missing.env"), "config", "check"])
    assert result.exit_code == EXIT_CONFIG and "error:" in result.output


def test_a_service_named_on_the_command_line_must_be_listed(tmp_path):
    app = App(str(tmp_path / ".env"), dry_run=False, verbose=0)
    app.__dict__["settings"] = settings_with(tmp_path)  # the cached property, as loaded
    first = app.settings.services[0]
    assert app.service(first) == first and app.services_or_all(()) == list(app.settings.services)
    with pytest.raises(click.BadParameter, match="unknown service 'nope'"):
        app.service("nope")


def test_what_cron_the_boot_unit_and_the_zedlet_run_is_the_entry_point(tmp_path):
    """They run the script that rendered them: that is orchestrator.py, not the cli/ module."""
    from management.cli.app import ENTRY_POINT
    assert ENTRY_POINT == Path(orchestrator.__file__).resolve() and ENTRY_POINT.is_file()
    env = write(tmp_path, BASE)
    result = CliRunner().invoke(cli, ["--env-file", str(env), "--dry-run", "install-zedlet", "--zed-dir",
                                      str(tmp_path / "zed.d")])
    assert f" {ENTRY_POINT} " in result.output, result.output


def assert_adds_commands(module, expected: set[str]) -> None:
    """`module` adds exactly `expected` to the root group (commands and groups), and each answers
    --help: what each cli/ module's test asks of it."""
    names = {name for name, cmd in cli.commands.items() if cmd.callback.__module__ == module.__name__}
    assert names == expected
    for name in sorted(names):
        result = CliRunner().invoke(cli, [name, "--help"])
        assert result.exit_code == 0 and result.output.startswith("Usage: "), (name, result.output)
