"""A fake Runner for unit tests: records every argv and answers from a script.

    fake = FakeRunner({("zfs", "list"): "pool/a\n"})
    ZFSManager(fake).list(...)
    assert fake.calls[0].argv == ("zfs", "list", ...)

Answers are matched by argv prefix (longest prefix wins). An answer is a str (stdout,
exit 0), a Result, or an Exception instance to raise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from management.errors import CommandError
from management.runner import Result, Runner, format_argv


@dataclass
class Call:
    argv: tuple[str, ...]
    mutating: bool
    env: dict[str, str]
    timeout: float | None
    cwd: str | None


@dataclass
class FakeRunner(Runner):
    answers: Mapping[tuple[str, ...], object] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)

    def __init__(self, answers=None, dry_run=False, secrets=()):
        super().__init__(dry_run=dry_run, secrets=tuple(secrets), base_env={})
        self.answers = dict(answers or {})
        self.calls = []

    def run(self, argv: Sequence[str], *, mutating=True, env=None, timeout=None, ok_codes=(0,), cwd=None,
            stdin=None, unset_env=(), on_stderr=None) -> Result:
        argv = tuple(str(a) for a in argv)
        self.calls.append(Call(argv, mutating, dict(env or {}), timeout, cwd))
        if self.dry_run and mutating:
            return Result(argv, 0, skipped=True)
        best = None
        for prefix in self.answers:
            if argv[: len(prefix)] == tuple(prefix) and (best is None or len(prefix) > len(best)):
                best = prefix
        answer = self.answers.get(best, "") if best is not None else ""
        if isinstance(answer, BaseException):
            raise answer
        if isinstance(answer, Result) and on_stderr is not None:  # as the real runner streams it
            kept = []
            for line in answer.stderr.splitlines():
                said = on_stderr(line)
                if isinstance(said, str):
                    kept.append(said + "\n")
                elif not said:
                    kept.append(line + "\n")
            answer = Result(answer.argv, answer.returncode, answer.stdout, "".join(kept), answer.duration)
        if isinstance(answer, Result):
            if answer.returncode not in ok_codes:
                raise CommandError(format_argv(argv, self.secrets), answer.returncode, answer.stderr)
            return answer
        return Result(argv, 0, str(answer))

    @property
    def argvs(self) -> list[tuple[str, ...]]:
        return [c.argv for c in self.calls]
