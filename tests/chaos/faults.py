"""The fault catalogue. A fault is armed for one step at a moment (the tool's k-th wrapped
command, or seconds after the operation started); `fire` does it then, `undo` puts the lab
back when the operation has ended (the repository server up again, the disk freed...).

`crash` faults take the tool down without a chance to clean up (SIGKILL): after one, a run
cannot have said anything, so the step's own checks are the ones a crash allows (state
files, secrets) and the next night, always a clean one, must heal everything.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.chaos.world import World, alive

CLOCK_MOVES = ("-2d", "-3h", "+5h", "+3d")


@dataclass(frozen=True)
class Fault:
    name: str
    what: str
    fire: Callable[[World, Armed], str]  # returns what it did, for the log
    undo: Callable[[World, Armed], None] = lambda w, a: None
    crash: bool = False
    at_start: bool = False  # in place before the operation starts (its moment is 0)
    needs: tuple[str, ...] = ()  # programs the operation must run for the fault to mean anything


@dataclass
class Armed:
    fault: Fault
    moment: tuple[str, float]  # ("call", k) or ("time", seconds)
    pid: int = 0  # the tool's pid, once started
    base: int = 0  # the calls log's length when the operation started
    clock: str = ""  # for clock-moved
    fired: str = ""  # what firing did; empty: not reached
    extra: object = None  # a second run's Popen, a truncated file's path

    def label(self) -> str:
        kind, value = self.moment
        at = f"call {int(value)}" if kind == "call" else f"{value:.1f}s"
        return f"{self.fault.name}@{'start' if self.fault.at_start else at}"


# --- the effects -----------------------------------------------------------------------------------

def _signal_tool(sig: int) -> Callable[[World, Armed], str]:
    def fire(world: World, armed: Armed) -> str:
        try:
            os.kill(armed.pid, sig)
        except ProcessLookupError:
            return ""
        return f"{signal.Signals(sig).name} to the tool"
    return fire


def _kill_child(program: str) -> Callable[[World, Armed], str]:
    """SIGKILL the newest live `program` child the tool started (waits for one, bounded)."""
    def fire(world: World, armed: Armed) -> str:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for pid, argv in reversed(world.calls_since(armed.base)):
                if not argv.startswith(program + " ") or (program == "zfs" and " destroy" in f" {argv}"):
                    continue  # zfs-fuse wedges when a destroy is killed (LAB.md); OpenZFS does not
                if alive(pid) and _is_tool_child(pid, armed.pid):
                    os.kill(pid, signal.SIGKILL)
                    return f"SIGKILL to `{argv[:80]}`"
            if not alive(armed.pid):
                return ""
            time.sleep(0.02)
        return ""
    return fire


def _is_tool_child(pid: int, tool: int) -> bool:
    """pid descends from the tool (the wrappers exec, so the logged pid is the program itself)."""
    seen = 0
    while pid > 1 and seen < 20:
        if pid == tool:
            return True
        try:
            with open(f"/proc/{pid}/stat") as f:
                pid = int(f.read().split(") ", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            return False
        seen += 1
    return False


def _freeze(world: World, armed: Armed) -> str:
    seconds = 2 + (armed.moment[1] % 4)
    threading.Thread(target=world.freeze_zfs, args=(seconds,), daemon=True).start()
    return f"zfs-fuse stopped for {seconds:.1f}s"


def _truncate_state(world: World, armed: Armed) -> str:
    files = sorted(p for p in Path(world.cycle.values["STATE_DIR"]).rglob("*.json") if p.stat().st_size > 2)
    if not files:
        return ""
    path = files[int(armed.moment[1] * 7919) % len(files)]
    with path.open("r+b") as f:
        f.truncate(path.stat().st_size // 2)
    world.truncated[str(path)] = path.stat().st_mtime
    armed.extra = path
    return f"truncated {path.name}"


def _second_run(world: World, armed: Armed) -> str:
    armed.extra = world.start("backup")
    return "a second `backup` started"


def _undo_second_run(world: World, armed: Armed) -> None:
    if isinstance(armed.extra, subprocess.Popen):
        out, err = armed.extra.communicate(timeout=900)
        armed.extra = (armed.extra.returncode, out + err)


def _stubborn_on(world: World, armed: Armed) -> str:
    world.stubborn(True)
    return "photo ignores SIGTERM"


CATALOGUE: dict[str, Fault] = {f.name: f for f in (
    Fault("kill-tool", "SIGKILL of the tool (its children run on)", _signal_tool(signal.SIGKILL), crash=True),
    Fault("term-tool", "SIGTERM of the tool", _signal_tool(signal.SIGTERM)),
    Fault("kill-borg", "SIGKILL of a borg child", _kill_child("borg"), needs=("borg",)),
    Fault("kill-compose", "SIGKILL of a compose child",
          _kill_child("docker"), needs=("docker",)),
    Fault("kill-zfs", "SIGKILL of a zfs child (not a destroy)", _kill_child("zfs"), needs=("zfs",)),
    Fault("sshd-down", "the repository server's sshd stopped, its sessions cut",
          lambda w, a: (w.stop_sshd(), "sshd stopped")[1], lambda w, a: w.start_sshd()),
    Fault("repo-full", "the repository filesystem full",
          lambda w, a: (w.fill_repos(), "repository disk filled")[1], lambda w, a: w.free_repos()),
    Fault("pool-full", "the pool full", lambda w, a: (w.fill_pool(), "pool filled")[1], lambda w, a: w.free_pool()),
    Fault("dockerd-restart", "dockerd restarted",
          lambda w, a: (w.restart_dockerd(), "dockerd restarted")[1]),
    Fault("stubborn", "a container that ignores SIGTERM", _stubborn_on, lambda w, a: w.stubborn(False),
          at_start=True),
    Fault("zfs-freeze", "zfs-fuse frozen (SIGSTOP) for 2-6 s", _freeze),
    Fault("state-truncated", "a state file truncated", _truncate_state),
    Fault("second-run", "a second run started at once", _second_run, _undo_second_run),
    Fault("clock-moved", "the clock moved (libfaketime, this run only)",
          lambda w, a: f"clock {a.clock}", at_start=True),
)}
