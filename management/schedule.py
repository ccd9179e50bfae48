"""When the tool runs by itself: the nightly cron entry (and its logrotate rule) and the systemd
unit that brings every stack up after a reboot. Rendering is pure; installing writes files
atomically and only ever replaces or removes files that carry this tool's marker.

cron runs `orchestrator.py backup` as root with the project's virtualenv; the tool's own lock
(LOCK_FILE) keeps two runs from overlapping, and the log is rotated weekly by logrotate.

The unit is a oneshot with RemainAfterExit, so after a boot `systemctl status` shows
`active (exited)` when every stack was started (spec 000), and `failed` with the summary in
the journal when one was not.
"""

from __future__ import annotations

import re
import shlex
import shutil
import tempfile
from pathlib import Path

from .errors import ValidationError
from .report import write_atomic

CRON_NAME = "orchestrator-backup"
MARKER = "# Managed by orchestrator (make install-cron); remove with make uninstall-cron."
SCHEDULE_RE = re.compile(r"^(@(daily|midnight|weekly|monthly|hourly)|(\S+\s+){4}\S+)$")


def render_cron(schedule: str, python: Path, orchestrator: Path, env_file: Path, log_file: Path,
                update_schedule: str = "", drill_schedule: str = "", drill_wait: int = 0) -> str:
    """The nightly `backup`, the restore drill when `drill_schedule` is set, and a scheduled
    `update --yes` when `update_schedule` is set. All take the same run lock, so they never
    overlap; the drill waits up to `drill_wait` seconds for a backup still running."""
    lines = []
    for when, args in ((schedule, ["backup"]), (drill_schedule, ["drill", "--wait", str(drill_wait)]),
                       (update_schedule, ["update", "--yes"])):
        if not when and args[0] != "backup":
            continue
        if not SCHEDULE_RE.match(when.strip()) or "\n" in when:
            raise ValidationError(f"cron schedule {when!r} is not five fields (e.g. '30 3 * * *')")
        command = shlex.join([str(python), str(orchestrator), "--env-file", str(env_file), *args])
        lines.append(f"{when.strip()} root {command} >> {shlex.quote(str(log_file))} 2>&1\n")
    return (
        f"{MARKER}\n"
        "SHELL=/bin/sh\n"
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
        + "".join(lines)
    )


def render_logrotate(log_file: Path) -> str:
    return (
        f"{MARKER}\n"
        f"{log_file} {{\n"
        "    weekly\n    rotate 8\n    compress\n    delaycompress\n    missingok\n    notifempty\n"
        "    create 0640 root adm\n}\n"
    )


UNIT_NAME = "orchestrator-stacks.service"
UNIT_MARKER = "# Managed by orchestrator (make install-autostart); remove with make uninstall-autostart."


def _exec(python: Path, orchestrator: Path, env_file: Path, *args: str) -> str:
    for p in (python, orchestrator, env_file):
        if not p.is_absolute():
            raise ValidationError(f"{p} must be an absolute path in a systemd unit")
    # systemd's own quoting rules match the shell's for plain double quotes
    return " ".join(f'"{a}"' if re.search(r"\s", a) else a
                    for a in (str(python), str(orchestrator), "--env-file", str(env_file), *args))


def render_unit(python: Path, orchestrator: Path, env_file: Path) -> str:
    """A oneshot unit: after docker and the ZFS mounts, `docker-up` (hub first); on stop, `docker-stop`."""
    return (
        f"{UNIT_MARKER}\n"
        "[Unit]\n"
        "Description=Start every Docker Compose stack (hub first) after docker and ZFS are up\n"
        "Requires=docker.service\n"
        "Wants=network-online.target\n"
        # OpenZFS mounts datasets in zfs-mount.service, zfs-fuse in zfs-fuse.service; ordering
        # after a unit that does not exist is a no-op, so both are named.
        "After=docker.service network-online.target local-fs.target zfs-mount.service zfs-fuse.service\n"
        "\n"
        "[Service]\n"
        "Type=oneshot\n"
        "RemainAfterExit=yes\n"
        f"WorkingDirectory={orchestrator.parent}\n"
        f"ExecStart={_exec(python, orchestrator, env_file, 'docker-up')}\n"
        f"ExecStop={_exec(python, orchestrator, env_file, 'docker-stop')}\n"
        "TimeoutStartSec=15min\n"
        "TimeoutStopSec=5min\n"
        "\n"
        "[Install]\n"
        "WantedBy=multi-user.target\n"
    )


DROPIN = Path("docker.service.d") / "orchestrator-after-zfs.conf"


def render_docker_dropin(python: Path, orchestrator: Path, env_file: Path, storage_wait: int) -> str:
    """Containers with a restart policy are started by dockerd itself at boot, before our unit
    runs: order dockerd after the ZFS mounts, and (STORAGE_WAIT > 0) hold it until the pool is
    imported and every service dataset mounted, so they never start on an empty mountpoint.
    The pool's disk may appear after zfs-import-cache ran (the 004 race): `wait-storage`
    imports it by scanning."""
    text = (
        f"{UNIT_MARKER}\n"
        "[Unit]\n"
        "After=zfs-import.target zfs-mount.service zfs-fuse.service\n"
    )
    if storage_wait > 0:
        text += (
            "\n"
            "[Service]\n"
            # bounded by STORAGE_WAIT itself; docker's own unit does not bound its start
            # (TimeoutStartSec=0 upstream and in Debian), so nothing cuts the wait short
            f"ExecStartPre={_exec(python, orchestrator, env_file, 'wait-storage')}\n"
        )
    return text


def install_unit(unit_dir: Path, text: str, dropin: str) -> list[Path]:
    return _write_managed([(unit_dir / UNIT_NAME, text), (unit_dir / DROPIN, dropin)], UNIT_MARKER)


def uninstall_unit(unit_dir: Path) -> list[Path]:
    removed = _remove_managed([unit_dir / UNIT_NAME, unit_dir / DROPIN], UNIT_MARKER)
    dropin_dir = unit_dir / DROPIN.parent
    if dropin_dir.is_dir() and not any(dropin_dir.iterdir()):
        dropin_dir.rmdir()
    return removed


def installed_unit(unit_dir: Path) -> Path | None:
    """The unit file when it exists and is ours; raises when someone else wrote it."""
    path = unit_dir / UNIT_NAME
    return path if _ours(path, UNIT_MARKER) else None


SYSTEM_UNIT_DIR = Path("/etc/systemd/system")


def manages_systemd(unit_dir: Path) -> bool:
    """Talk to systemctl only for the real unit directory on a host where systemd is PID 1
    (sd_booted(3)); a unit written elsewhere (a test, a chroot) is left to the caller."""
    return Path(unit_dir) == SYSTEM_UNIT_DIR and Path("/run/systemd/system").is_dir()


def verify_unit(runner, text: str) -> str | None:
    """`systemd-analyze verify` on the rendered unit before it is installed, where the tool
    exists. Returns None when it could not run, else its warnings ("" for none); raises
    CommandError when the unit is bad (a missing executable, say)."""
    if not shutil.which("systemd-analyze"):
        return None
    with tempfile.TemporaryDirectory(prefix="orchestrator-unit.") as tmp:
        path = Path(tmp) / UNIT_NAME
        path.write_text(text)
        result = runner.run(["systemd-analyze", "verify", str(path)], mutating=False, timeout=60)
    return result.stderr.strip()


def enable_unit(runner) -> None:
    reload_units(runner)
    runner.run(["systemctl", "enable", UNIT_NAME], timeout=60)


def disable_unit(runner) -> None:
    runner.run(["systemctl", "disable", UNIT_NAME], timeout=60, ok_codes=(0, 1))


def reload_units(runner) -> None:
    runner.run(["systemctl", "daemon-reload"], timeout=60)


def install(cron_dir: Path, logrotate_dir: Path, cron_text: str, logrotate_text: str) -> list[Path]:
    return _write_managed([(cron_dir / CRON_NAME, cron_text), (logrotate_dir / CRON_NAME, logrotate_text)], MARKER)


def uninstall(cron_dir: Path, logrotate_dir: Path) -> list[Path]:
    return _remove_managed([cron_dir / CRON_NAME, logrotate_dir / CRON_NAME], MARKER)


def unchanged(files: list[tuple[Path, str]]) -> bool:
    """True when every file already holds exactly this text: installing again would change nothing."""
    try:
        return all(path.read_text() == text for path, text in files)
    except OSError:
        return False


def _ours(path: Path, marker: str) -> bool:
    """True when path exists and carries our marker, False when it does not exist; raises
    when someone else wrote it, so nothing of theirs is ever replaced or removed."""
    if not path.exists():
        return False
    if marker not in path.read_text():
        raise ValidationError(f"{path} exists and was not written by this tool; not touching it")
    return True


def _write_managed(files: list[tuple[Path, str]], marker: str) -> list[Path]:
    for path, _text in files:  # every file checked before any is written: all or nothing
        _ours(path, marker)
    for path, text in files:
        write_atomic(path, text, mode=0o644)
    return [path for path, _text in files]


def _remove_managed(paths: list[Path], marker: str) -> list[Path]:
    ours = [p for p in paths if _ours(p, marker)]  # checked first, as for writing
    for path in ours:
        path.unlink()
    return ours
