import management.cli.host as module
from tests.unit.cli.test_app import assert_adds_commands

EXPECTED = set(("doctor install-autostart install-cron install-zedlet uninstall-autostart uninstall-cron "
                 "uninstall-zedlet zfs-event").split())


def test_the_module_adds_its_commands_and_each_has_help():
    assert_adds_commands(module, EXPECTED)
