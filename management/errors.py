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


# Lines of borg/ssh/zfs stderr that say why, rather than "Connection closed by remote host".
_TELLING = ("refused", "denied", "No space", "passphrase", "does not exist", "not allowed", "Insufficient",
            "timed out", "Errno", "No route", "not a valid repository", "Failed to create/acquire the lock")


def brief(exc: OrchestratorError) -> str:
    """One line for the summary: what failed and borg's (or zfs's) own last word on why."""
    if isinstance(exc, CommandError):
        words = exc.command.split()
        what = " ".join(words[:2]) if words else "command"
        lines = [ln.strip() for ln in exc.stderr_tail.strip().splitlines() if ln.strip()]
        telling = [ln for ln in lines if any(k in ln for k in _TELLING)]
        why = (telling or lines or [exc.reason])[-1]
        return f"{what} failed ({exc.reason}): {why}"
    return str(exc).splitlines()[0]
