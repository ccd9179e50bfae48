import management.cli.backups as module
from tests.unit.cli.test_app import assert_adds_commands

EXPECTED = set(("authorized-keys backup check-repos drill extract-archive forget-repo-cache init-repos list-archives "
                 "prune-trusted release-prune snapshot-history").split())


def test_the_module_adds_its_commands_and_each_has_help():
    assert_adds_commands(module, EXPECTED)
