import management.cli.restore as module
from tests.unit.cli.test_app import assert_adds_commands

EXPECTED = set("mount restore restore-all restore-path umount versions".split())


def test_the_module_adds_its_commands_and_each_has_help():
    assert_adds_commands(module, EXPECTED)


def test_restore_path_whose_stack_does_not_start_again_exits_1_and_says_how_to_start_it(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from management.cli.app import EXIT_FAILED, cli
    from management.cycles import timetravel
    from tests.unit.config.test_load import BASE, write

    def restored(self, service, file, when=None, to=None, stop=False):
        return timetravel.PathRestored(service, file, None, f"/datapool/services/{service}/{file}",
                                       safety_snapshot="restore-safety-1", swapped=True, not_started="port taken")

    monkeypatch.setattr(timetravel.TimeTravel, "restore_path", restored)
    env = write(tmp_path, BASE)
    result = CliRunner().invoke(cli, ["--env-file", str(env), "restore-path", "--yes", "--stop", "git", "data/x"])
    assert result.exit_code == EXIT_FAILED, result.output
    assert "did not start again: port taken" in result.output and "make docker-start SERVICE_NAME=git" in result.output
    assert "undo: make restore-path" in result.output
