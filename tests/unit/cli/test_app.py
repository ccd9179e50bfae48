import click
import pytest
from click.testing import CliRunner

import orchestrator
from management.cli.app import EXIT_CONFIG, App, cli
from tests.unit.config.test_load import settings_with


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


def assert_adds_commands(module, expected: set[str]) -> None:
    """`module` adds exactly `expected` to the root group (commands and groups), and each answers
    --help: what each cli/ module's test asks of it."""
    names = {name for name, cmd in cli.commands.items() if cmd.callback.__module__ == module.__name__}
    assert names == expected
    for name in sorted(names):
        result = CliRunner().invoke(cli, [name, "--help"])
        assert result.exit_code == 0 and result.output.startswith("Usage: "), (name, result.output)
