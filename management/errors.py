"""The project's exceptions. Managers raise these; only the CLI turns them into exit codes."""

from __future__ import annotations


class OrchestratorError(Exception):
    """Base class: a failure the user should see as one clear message."""


class ConfigError(OrchestratorError):
    """The .env file has problems. Carries every problem found, not just the first."""

    def __init__(self, problems: list[str], source: str = ".env", warnings: list[str] | None = None):
        self.problems = list(problems)
        self.warnings = list(warnings or [])
        self.source = source
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{source}: {len(self.problems)} problem(s):\n{lines}")


class CommandError(OrchestratorError):
    """An outside command failed, timed out or was not found.

    `command` is already masked: it is safe to print.
    """

    def __init__(self, command: str, exit_code: int | None, stderr_tail: str, reason: str = ""):
        self.command = command
        self.exit_code = exit_code
        self.stderr_tail = stderr_tail
        self.reason = reason or (f"exit code {exit_code}" if exit_code is not None else "failed")
        msg = f"command failed ({self.reason}): {command}"
        if stderr_tail:
            msg += "\n" + "\n".join("    " + line for line in stderr_tail.splitlines())
        super().__init__(msg)


class ValidationError(OrchestratorError):
    """A name or value given on the command line or read from disk was rejected before any call."""
