from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import pytest

from management.lock import Interrupted, LockHeld, RunLock, SignalGuard


def test_second_lock_says_who_holds_it(tmp_path):
    path = tmp_path / "run.lock"
    with RunLock(path):
        with pytest.raises(LockHeld, match=f"pid {os.getpid()}"):
            with RunLock(path):
                pass
    with RunLock(path):  # released again
        pass


def test_lock_of_a_killed_process_is_recovered(tmp_path):
    path = tmp_path / "run.lock"
    code = (
        "import pathlib, time\nfrom management.lock import RunLock\n"
        f"with RunLock(pathlib.Path({str(path)!r})):\n    print('held', flush=True)\n    time.sleep(60)"
    )
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=root)
    assert proc.stdout.readline().strip() == "held"
    with pytest.raises(LockHeld):
        RunLock(path).__enter__()
    proc.kill()
    proc.wait()
    with RunLock(path):
        assert "pid" in path.read_text()


def test_signal_outside_critical_raises_and_inside_is_deferred():
    with SignalGuard() as guard:
        with pytest.raises(Interrupted):
            os.kill(os.getpid(), signal.SIGTERM)
        done = []
        with pytest.raises(Interrupted) as info:
            with guard.critical():
                os.kill(os.getpid(), signal.SIGINT)
                done.append("finished the critical block")
        assert done and info.value.signum == signal.SIGINT


def test_run_lock_waits_for_the_holder_when_asked(tmp_path):
    path = tmp_path / "lock"
    holder = RunLock(path, "backup").__enter__()
    with pytest.raises(LockHeld):
        RunLock(path, "drill").__enter__()
    threading.Timer(0.5, holder.__exit__).start()
    with RunLock(path, "drill", wait=30):
        pass
