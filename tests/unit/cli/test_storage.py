import management.cli.storage as module
from tests.unit.cli.test_app import assert_adds_commands

EXPECTED = set("attach-mirror setup-pool setup-storage snapshot wait-storage".split())


def test_the_module_adds_its_commands_and_each_has_help():
    assert_adds_commands(module, EXPECTED)
