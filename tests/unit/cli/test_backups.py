from click.testing import CliRunner

import management.cli.backups as module
from management.cli.app import cli

EXPECTED = set(("authorized-keys backup check-repos drill extract-archive forget-repo-cache init-repos list-archives "
                 "prune-trusted release-prune snapshot-history").split())


def commands_of(mod) -> set[str]:
    """The root commands (and groups) the module adds to `cli`."""
    return {name for name, cmd in cli.commands.items() if cmd.callback.__module__ == mod.__name__}


def test_the_module_adds_its_commands_and_each_has_help():
    names = commands_of(module)
    assert names == EXPECTED
    for name in sorted(names):
        result = CliRunner().invoke(cli, [name, "--help"])
        assert result.exit_code == 0 and result.output.startswith("Usage: "), (name, result.output)
