import management.cli.stacks as module
from tests.unit.cli.test_app import assert_adds_commands

EXPECTED = set(("adopt check-stacks docker-down docker-pull docker-start docker-stop docker-up outdated rollback "
                 "status update").split())


def test_the_module_adds_its_commands_and_each_has_help():
    assert_adds_commands(module, EXPECTED)
