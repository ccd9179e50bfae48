import logging

import pytest

from management.errors import CommandError
from management.runner import Runner, format_argv, mask

SECRET = "correct-horse-battery"


def test_mask_replaces_every_occurrence_and_longest_first():
    assert mask(f"a {SECRET} b {SECRET}", [SECRET, "horse"]) == "a *** b ***"


def test_mask_ignores_too_short_secrets():
    assert mask("a b c", ["a", ""]) == "a b c"


def test_format_argv_quotes_and_masks():
    assert format_argv(["borg", "create", "x y", SECRET], [SECRET]) == "borg create 'x y' ***"


def test_run_returns_stdout_and_exit_code():
    result = Runner().run(["sh", "-c", "echo out; echo err >&2"], mutating=False)
    assert (result.returncode, result.stdout, result.stderr) == (0, "out\n", "err\n")


def test_run_passes_secret_through_env_not_argv_and_logs_only_its_name(caplog):
    caplog.set_level(logging.DEBUG, logger="orchestrator.runner")
    runner = Runner(secrets=(SECRET,))
    result = runner.run(["sh", "-c", 'test "$BORG_PASSPHRASE" = "$1" && echo same', "sh", "x"],
                        env={"BORG_PASSPHRASE": "x"})
    assert result.stdout == "same\n"
    runner.run(["true"], env={"BORG_PASSPHRASE": SECRET})
    assert "BORG_PASSPHRASE" in caplog.text
    assert SECRET not in caplog.text


def test_failure_raises_command_error_with_masked_command_and_stderr_tail():
    runner = Runner(secrets=(SECRET,))
    with pytest.raises(CommandError) as info:
        runner.run(["sh", "-c", f"echo 'bad {SECRET}' >&2; exit 3", "--", SECRET])
    err = info.value
    assert err.exit_code == 3
    assert SECRET not in str(err) and "***" in err.command
    assert "bad ***" in err.stderr_tail


def test_ok_codes_turn_an_exit_code_into_an_answer():
    assert Runner().run(["sh", "-c", "exit 1"], ok_codes=(0, 1)).returncode == 1


def test_timeout_kills_and_raises():
    with pytest.raises(CommandError, match="timed out after 0.3s"):
        Runner().run(["sleep", "5"], timeout=0.3)


def test_missing_program_raises_command_error():
    with pytest.raises(CommandError, match="program not found"):
        Runner().run(["no-such-program-xyz"])


def test_dry_run_skips_mutating_commands_but_runs_queries(tmp_path):
    runner = Runner(dry_run=True)
    target = tmp_path / "made"
    skipped = runner.run(["touch", str(target)])
    assert skipped.skipped and not target.exists()
    assert runner.run(["echo", "q"], mutating=False).stdout == "q\n"


def test_terminate_running_stops_only_the_named_programs():
    import threading

    runner = Runner()
    outcome = {}

    def slow():
        try:
            runner.run(["sleep", "30"])
        except CommandError as exc:
            outcome["err"] = exc

    worker = threading.Thread(target=slow)
    worker.start()
    for _ in range(100):
        if runner._live:
            break
        threading.Event().wait(0.02)
    assert runner.terminate_running({"borg"}) == 0
    assert runner.terminate_running({"sleep"}) == 1
    worker.join(timeout=10)
    assert not worker.is_alive()
    assert outcome["err"].exit_code is not None  # killed by a signal, reported as a failure
