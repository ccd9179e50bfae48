"""A run lock and signal handling for the backup cycle.

RunLock uses flock(2): the kernel drops it when the holder dies, so a lock left by a killed
run (even `kill -9`) is recovered by the next run without guessing from pids. The file keeps
who holds it (pid, start time, command) so a second run can say so.

SignalGuard turns SIGINT/SIGTERM into an `Interrupted` exception, except inside `critical()`
blocks (restarting stacks), where the signal is remembered and raised when the block ends.
"""

from __future__ import annotations

import fcntl
import os
import signal
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from management.errors import OrchestratorError


class LockHeld(OrchestratorError):
    exit_code_hint = 4


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived. A BaseException so per-dataset `except Exception` blocks
    do not swallow it."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(f"interrupted by {signal.Signals(signum).name}")


class RunLock:
    def __init__(self, path: Path, what: str = "backup", wait: float = 0.0):
        self.path = Path(path)
        self.what = what
        self.wait = wait  # seconds to wait for a holder to finish (a drill from cron after a long backup)
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        give_up = time.monotonic() + self.wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= give_up:
                    self._held(fd)
                time.sleep(1.0)
        os.ftruncate(fd, 0)
        started = time.strftime("%Y-%m-%d %H:%M:%S")
        os.write(fd, f"pid {os.getpid()}, {self.what} started {started}: {' '.join(sys.argv[:4])}\n".encode())
        self._fd = fd
        return self

    def _held(self, fd: int) -> None:
        # the holder writes who it is right after it takes the lock: give it a moment
        holder, deadline = "", time.monotonic() + 2
        while not holder and time.monotonic() < deadline:
            holder = os.pread(fd, 4096, 0).decode(errors="replace").strip()
            if not holder:
                time.sleep(0.05)
        os.close(fd)
        holder = holder or "unknown process"
        waited = f" (waited {self.wait:.0f}s)" if self.wait else ""
        raise LockHeld(f"another run holds the lock {self.path}: {holder}{waited}") from None

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


class SignalGuard:
    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self._depth = 0
        self.pending: int | None = None
        self._old: dict[int, object] = {}

    def _handler(self, signum, frame) -> None:
        if self._depth:
            self.pending = self.pending or signum
            return
        raise Interrupted(signum)

    def __enter__(self) -> SignalGuard:
        for sig in self.SIGNALS:
            self._old[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)

    @contextmanager
    def critical(self):
        """Signals arriving inside are held back and raised as Interrupted on exit."""
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
        if not self._depth and self.pending:
            signum, self.pending = self.pending, None
            raise Interrupted(signum)
