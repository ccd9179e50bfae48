"""doctor's vocabulary: a `Check` (ok / warn / fail, a name, what it found, the fix), the `Host`
the checks look at (the settings, the Runner, the paths they read; one answer per run for what
several checks ask), and the helpers that turn a tool that is missing or broken into a warn."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from management.config import Settings
from management.errors import CommandError, OrchestratorError
from management.host import autostart, zed
from management.runner import Result, Runner
from management.text import pool_of

OK, WARN, FAIL = "ok", "warn", "fail"
QUERY_TIMEOUT = 30.0


@dataclass(frozen=True)
class Check:
    status: str  # ok | warn | fail
    name: str
    detail: str
    fix: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Host:
    """What the checks look at. Tests point the paths at a temp dir and the runner at a fake."""

    settings: Settings
    runner: Runner
    cron_dir: Path = Path("/etc/cron.d")
    zed_dir: Path = zed.ZED_DIR
    unit_dir: Path = autostart.SYSTEM_UNIT_DIR
    sshd_config: Path = Path("/etc/ssh/sshd_config")
    systemd: bool | None = None  # None: systemd is PID 1 when /run/systemd/system exists (sd_booted)
    clock: Callable[[], float] = time.time
    which: Callable[[str], str | None] = shutil.which  # where a program is on PATH (borg's interpreter)
    mounts_file: Path = Path("/proc/self/mounts")  # what is mounted (borg mounts under MOUNT_DIR)
    _memo: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.systemd is None:
            self.systemd = Path("/run/systemd/system").is_dir()

    def query(self, argv: list[str], ok_codes=(0,), timeout: float = QUERY_TIMEOUT) -> Result:
        """A read-only command; raises CommandError (program not found, exit code, timeout)."""
        return self.runner.run(argv, mutating=False, ok_codes=ok_codes, timeout=timeout)

    def once(self, key: str, compute: Callable[[], object]):
        """One answer per doctor run for what several checks need (docker info, sshd -T)."""
        if key not in self._memo:
            try:
                self._memo[key] = compute()
            except OrchestratorError as exc:
                self._memo[key] = exc
        return self._memo[key]

    @property
    def pool(self) -> str:
        return pool_of(self.settings.zfs_parent_dataset)


def missing(exc: OrchestratorError) -> str | None:
    """The program's name when the command failed because it is not installed."""
    if isinstance(exc, CommandError) and exc.reason.startswith("program not found: "):
        return exc.reason.removeprefix("program not found: ")
    return None


def why(exc: OrchestratorError) -> str:
    """One line: the tool's own last word on stderr, else the error's first line."""
    if isinstance(exc, CommandError):
        lines = [ln.strip() for ln in exc.stderr_tail.splitlines() if ln.strip()]
        return lines[-1] if lines else f"{exc.command}: {exc.reason}"
    return str(exc).splitlines()[0]


def cannot(name: str, exc: OrchestratorError, what: str) -> Check:
    """A check that could not run: a warn naming what is missing."""
    program = missing(exc)
    if program:
        return Check(WARN, name, f"cannot tell: {program} is not installed (or not on PATH)",
                     f"install {program} to check {what}")
    command = f"`{exc.command}`" if isinstance(exc, CommandError) else "it"
    return Check(WARN, name, f"cannot tell: {why(exc)}", f"make {command} work (as root) to check {what}")


def unit_state(host: Host, unit: str) -> str:
    """`systemctl is-enabled`: enabled, disabled, masked, static, ... or not-found."""
    r = host.query(["systemctl", "is-enabled", unit], ok_codes=(0, 1, 4))
    words = r.stdout.split()
    return words[0] if words else "not-found"
