"""Progress of long borg work (create, extract) while it runs.

On a terminal: a live block with one line per running dataset (bytes read or extracted, files,
rate, elapsed, percent when known), drawn by `rich`, gone when the work ends. Not on a terminal
(cron, `--json`): one plain line per dataset every PROGRESS_INTERVAL seconds, no control
characters, so the log of a first backup that takes hours shows it is alive.

Borg reports through `--progress --log-json` (parsed in borg_manager); this module only shows.
Thread-safe: datasets run in parallel (BORG_PARALLEL).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

from management.text import human_size


@dataclass
class _Task:
    verb: str
    started: float
    done: int = 0
    total: int | None = None
    files: int | None = None
    path: str = ""
    last_line: float = field(default=0.0)


def elapsed_text(seconds: float) -> str:
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{s}s"


def progress_line(name: str, task: _Task, now: float) -> str:
    """'git: backup 1.2 GB read, 3456 files, 45.6 MB/s, 2m05s' (percent when the total is known)."""
    took = max(now - task.started, 1e-6)
    what = "read" if task.verb == "backup" else "extracted"
    parts = [f"{human_size(task.done)} {what}"]
    if task.total:
        parts[0] += f" of {human_size(task.total)} ({100 * task.done / task.total:.0f}%)"
    if task.files is not None:
        parts.append(f"{task.files} files")
    parts += [f"{human_size(int(task.done / took))}/s", elapsed_text(took)]
    return f"{name}: {task.verb} " + ", ".join(parts)


class Progress:
    def __init__(self, echo: Callable[[str], None], *, stream: TextIO | None = None, tty: bool = False,
                 interval: float = 300.0, clock: Callable[[], float] = time.monotonic):
        self.echo = echo
        self.stream = stream
        self.tty = tty and stream is not None
        self.interval = interval
        self.clock = clock
        self._tasks: dict[str, _Task] = {}
        self._lock = threading.Lock()
        self._live = None

    def __enter__(self) -> Progress:
        if self.tty:
            from rich.console import Console
            from rich.live import Live

            console = Console(file=self.stream, highlight=False)
            self._live = Live(self._render(), console=console, refresh_per_second=4, transient=True,
                              get_renderable=self._render)
            self._live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)
            self._live = None

    def _render(self):
        from rich.text import Text

        now = self.clock()
        with self._lock:
            lines = [progress_line(name, task, now) for name, task in self._tasks.items()]
        return Text("\n".join(lines))

    def start(self, name: str, verb: str) -> Callable[..., None]:
        """Begin a task; returns the callback borg_manager feeds: (done, total=None, files=None, path="")."""
        with self._lock:
            self._tasks[name] = _Task(verb, self.clock())
            self._tasks[name].last_line = self._tasks[name].started

        def update(done: int, total: int | None = None, files: int | None = None, path: str = "") -> None:
            line = None
            with self._lock:
                task = self._tasks.get(name)
                if task is None:
                    return
                task.done, task.total, task.files, task.path = done, total, files, path
                now = self.clock()
                if not self.tty and now - task.last_line >= self.interval:
                    task.last_line = now
                    line = progress_line(name, task, now)
            if line:
                self.echo(line)

        return update

    def finish(self, name: str) -> None:
        with self._lock:
            self._tasks.pop(name, None)
