"""Apprise notifications (a real json:// POST to a receiver on 127.0.0.1) and the progress
display: live on a terminal, a plain line every PROGRESS_INTERVAL otherwise."""
from __future__ import annotations

import io

import pytest

from management.monitoring.progress import Progress, elapsed_text, progress_line


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now



def test_not_on_a_terminal_one_plain_line_per_interval():
    lines: list[str] = []
    clock = Clock()
    with Progress(lines.append, interval=300, clock=clock) as progress:
        update = progress.start("git", "backup")
        for _ in range(10):  # 10 updates over 100 s: less than the interval, no line
            clock.now += 10
            update(50_000_000, None, 100, "data/x")
        assert lines == []
        clock.now += 200  # 300 s since the start
        update(3_000_000_000, None, 4321, "data/y")
        progress.finish("git")
    assert lines == ["git: backup 3.0 GB read, 4321 files, 10.0 MB/s, 5m00s"]
    assert "\x1b" not in lines[0]



def test_on_a_terminal_a_live_block_with_a_line_per_running_dataset():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    stream, lines = Tty(), []
    clock = Clock()
    with Progress(lines.append, stream=stream, tty=True, interval=300, clock=clock) as progress:
        git, photo = progress.start("git", "backup"), progress.start("photo", "extract")
        clock.now += 4
        git(40_000_000, None, 12, "data/a")
        photo(5_000_000, 20_000_000, None, "data/b")
        text = progress._render().plain
        progress._live.refresh()
    assert text.splitlines() == ["git: backup 40.0 MB read, 12 files, 10.0 MB/s, 4s",
                                 "photo: extract 5.0 MB extracted of 20.0 MB (25%), 1.2 MB/s, 4s"]
    assert "git: backup 40.0 MB read" in stream.getvalue() and "\x1b[" in stream.getvalue()
    assert lines == []  # no plain lines on a terminal



@pytest.mark.parametrize("seconds, text", [(5, "5s"), (65, "1m05s"), (3725, "1h02m05s")])
def test_elapsed_text(seconds, text):
    assert elapsed_text(seconds) == text



def test_progress_line_without_files_or_total():
    from management.monitoring.progress import _Task

    assert progress_line("git", _Task("restore", 0.0, done=1000), 1.0) == "git: restore 1.0 kB extracted, 1.0 kB/s, 1s"

