"""The run frame: what every locked run does around its own work, in one place.

    take the run lock (RunLock, LOCK_FILE) -> hold SIGINT/SIGTERM as `Interrupted` (SignalGuard)
    -> the start ping (the outcome kind's push URL) -> the cycle's work
    -> publish the outcome the cycle handed in, on every way out (success, failure, interruption)
    -> release the signals and the lock

A cycle hands its outcome in with `done()`: before its work when a run that fails half-way
must still say what it did (the backup), after it when only a finished run is published (a
drill, a check). A run that publishes nothing (a restore, adopt) hands in none.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import TYPE_CHECKING

from management.lock import RunLock, SignalGuard
from management.monitoring.publish import Outcome, publish, push

if TYPE_CHECKING:
    from management.cycles.context import Cycle


class RunFrame:
    """`with RunFrame(cycle, "backup", ping=BackupOutcome) as frame:` around a cycle's work.
    `frame.guard` is the SignalGuard (None with `signals=False`: a run that holds no stack
    stopped may just be stopped)."""

    def __init__(self, cycle: Cycle, what: str, *, wait: float = 0.0, signals: bool = True,
                 ping: type[Outcome] | None = None):
        self.cycle = cycle
        self.what = what
        self.wait = wait  # seconds to wait for another run's lock (a drill from cron after a long backup)
        self.guard: SignalGuard | None = SignalGuard() if signals else None
        self.ping = ping
        self.outcome: Outcome | None = None
        self.now: float | None = None
        self._stack = ExitStack()

    def done(self, outcome: Outcome, now: float | None = None) -> None:
        """The outcome to publish when the frame closes; `now` its time (default: the clock then)."""
        self.outcome = outcome
        self.now = now

    def __enter__(self) -> RunFrame:
        cycle = self.cycle
        with ExitStack() as stack:
            stack.enter_context(RunLock(cycle.s.lock_file, self.what, wait=self.wait))
            if self.guard is not None:
                stack.enter_context(self.guard)
            if self.ping is not None:
                warning = push(self.ping.push_url(cycle.s), "start")
                if warning:
                    cycle.echo(f"warning: {warning}")
            self._stack = stack.pop_all()
        return self

    def __exit__(self, *exc) -> None:
        with self._stack:
            if self.outcome is not None:
                cycle = self.cycle
                now = cycle.clock() if self.now is None else self.now
                publish(self.outcome, cycle.s, cycle.state, cycle.runner.mask, cycle.echo, now, cycle.pool_health)
