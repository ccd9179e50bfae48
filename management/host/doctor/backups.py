"""doctor's checks of the nightly runs: the cron entry and the boot unit in place, the last good
backup within STALE_AFTER, and every mount of every stack backed up or declared."""

from __future__ import annotations

import shlex
from pathlib import Path

from management.errors import CommandError, OrchestratorError
from management.host import autostart, schedule
from management.host.doctor.check import FAIL, OK, WARN, Check, Host, cannot, unit_state
from management.state import StateStore
from management.text import age


def _ours(path: Path, marker: str) -> bool | None:
    """True: ours; False: someone else's file; None: no file."""
    try:
        return marker in path.read_text()
    except FileNotFoundError:
        return None


def check_cron(host: Host) -> Check:
    name, path = "nightly backup (cron)", host.cron_dir / schedule.CRON_NAME
    try:
        ours = _ours(path, schedule.MARKER)
    except OSError as exc:
        return Check(WARN, name, f"cannot tell: {path}: {exc.strerror}", "run doctor as root")
    if ours is None:
        return Check(FAIL, name, f"{path} does not exist: nothing runs the backup at night", "make install-cron")
    if not ours:
        return Check(WARN, name, f"{path} exists but was not written by this tool",
                     f"look at {path}; make install-cron")
    lines = [ln for ln in path.read_text().splitlines() if " backup" in ln and not ln.startswith("#")]
    if not lines:
        return Check(FAIL, name, f"{path} runs no backup", "make install-cron")
    when = " ".join(lines[0].split()[:5])
    env = str(host.settings.env_file.resolve())
    if env not in lines[0] and shlex.quote(env) not in lines[0]:
        return Check(WARN, name, f"{path} backs up at '{when}' but with another .env than {env}",
                     f"make install-cron ENV_FILE={env}")
    return Check(OK, name, f"{path}: backup at '{when}'")


def check_boot_unit(host: Host) -> Check:
    name, path = "boot unit", host.unit_dir / autostart.UNIT_NAME
    try:
        ours = _ours(path, autostart.UNIT_MARKER)
    except OSError as exc:
        return Check(WARN, name, f"cannot tell: {path}: {exc.strerror}", "run doctor as root")
    if ours is None:
        return Check(WARN, name, f"{path} does not exist: after a reboot only containers with a restart policy "
                     "come back, in no order and without the mount check", "make install-autostart")
    if not ours:
        return Check(WARN, name, f"{path} exists but was not written by this tool", f"look at {path}")
    if not host.systemd:
        return Check(WARN, name, f"{path} installed; cannot tell whether it is enabled: systemd is not running here",
                     f"on the VM: systemctl is-enabled {autostart.UNIT_NAME}")
    try:
        state = unit_state(host, autostart.UNIT_NAME)
    except CommandError as exc:
        return cannot(name, exc, f"whether {autostart.UNIT_NAME} is enabled")
    if state != "enabled":
        return Check(WARN, name, f"{path} installed but {state}", f"systemctl enable {autostart.UNIT_NAME}")
    return Check(OK, name, f"{autostart.UNIT_NAME} installed and enabled")


def check_last_backup(host: Host) -> Check:
    s, name = host.settings, "last backup"

    last = StateStore(s.state_dir).last_success()
    now, limit = host.clock(), s.stale_after * 3600
    stale = []
    for service in s.services:
        when = last.get(service)
        if when is None:
            stale.append(f"{service} never")
        elif now - when > limit:
            stale.append(f"{service} {age(now - when)} ago")
    if stale:
        return Check(FAIL, name, f"no good backup within STALE_AFTER={s.stale_after}h: {', '.join(stale)}",
                     "make backup-all, and read its summary (or the cron log) for why the last one failed")
    oldest = max(now - last[svc] for svc in s.services)
    return Check(OK, name, f"every service within {s.stale_after}h (oldest {age(oldest)} ago)")


def check_coverage(host: Host) -> Check:
    """Every byte a stack keeps is backed up, or its compose file says why not (stacks.coverage)."""
    from management.tools.compose import DockerComposeManager

    name = "data coverage"
    docker = DockerComposeManager(host.settings, host.runner, None, echo=lambda _m: None)
    try:
        by_stack = docker.coverage()
    except OrchestratorError as exc:
        return cannot(name, exc, "where the stacks keep their data")
    bad = {stack: [c for c in covs if c.problem] for stack, covs in by_stack.items()}
    bad = {stack: covs for stack, covs in bad.items() if covs}
    if bad:
        shown = "; ".join(f"{stack}: {', '.join(f'{c.source} -> {c.target} ({c.where})' for c in covs)}"
                          for stack, covs in sorted(bad.items()))
        return Check(FAIL, name, f"data no backup reaches: {shown}",
                     "make check-stacks shows each mount with its fix (make adopt, ':ro', or a declared reason)")
    mounts = sum(len(c) for c in by_stack.values())
    return Check(OK, name, f"every mount of {len(by_stack)} stack(s) is backed up or declared ({mounts} mounts)")
