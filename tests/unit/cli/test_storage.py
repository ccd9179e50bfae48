from click.testing import CliRunner

import management.cli.storage as module
from management.cli.app import cli

EXPECTED = set("attach-mirror setup-pool setup-storage snapshot wait-storage".split())


def commands_of(mod) -> set[str]:
    """The root commands (and groups) the module adds to `cli`."""
    return {name for name, cmd in cli.commands.items() if cmd.callback.__module__ == mod.__name__}


def test_the_module_adds_its_commands_and_each_has_help():
    names = commands_of(module)
    assert names == EXPECTED
    for name in sorted(names):
        result = CliRunner().invoke(cli, [name, "--help"])
        assert result.exit_code == 0 and result.output.startswith("Usage: "), (name, result.output)
