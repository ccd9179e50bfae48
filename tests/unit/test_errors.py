from management.errors import CommandError, ConfigError, ValidationError, brief


def test_brief_names_the_command_and_the_telling_line_of_its_stderr():
    exc = CommandError("borg create --stats ssh://x", 2, "Remote: some noise\nConnection refused\nbye\n")
    assert brief(exc) == "borg create failed (exit code 2): Connection refused"


def test_brief_falls_back_to_the_last_line_or_the_reason():
    assert brief(CommandError("zfs snapshot", 1, "one\ntwo\n")) == "zfs snapshot failed (exit code 1): two"
    timed_out = CommandError("zfs", None, "", reason="timed out after 30s")
    assert brief(timed_out) == "zfs failed (timed out after 30s): timed out after 30s"
    assert brief(ValidationError("first line\nsecond")) == "first line"


def test_config_error_lists_every_problem_with_its_source():
    exc = ConfigError(["A: bad", "B: missing"], "/x/.env")
    assert str(exc) == "/x/.env: 2 problem(s):\n  - A: bad\n  - B: missing"
