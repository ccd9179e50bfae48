"""The nightly schedule: a cron.d entry and its logrotate rule, rendered by pure functions.

cron runs `orchestrator.py backup` as root with the project's virtualenv; the tool's own lock
(LOCK_FILE) keeps two runs from overlapping, and the log is rotated weekly by logrotate.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from .errors import ValidationError
from .report import write_atomic

CRON_NAME = "orchestrator-backup"
MARKER = "# Managed by orchestrator (make install-cron); remove with make uninstall-cron."
SCHEDULE_RE = re.compile(r"^(@(daily|midnight|weekly|hourly)|(\S+\s+){4}\S+)$")


def render_cron(schedule: str, python: Path, orchestrator: Path, env_file: Path, log_file: Path) -> str:
    if not SCHEDULE_RE.match(schedule.strip()) or "\n" in schedule:
        raise ValidationError(f"cron schedule {schedule!r} is not five fields (e.g. '30 3 * * *')")
    command = shlex.join([str(python), str(orchestrator), "--env-file", str(env_file), "backup"])
    return (
        f"{MARKER}\n"
        "SHELL=/bin/sh\n"
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
        f"{schedule.strip()} root {command} >> {shlex.quote(str(log_file))} 2>&1\n"
    )


def render_logrotate(log_file: Path) -> str:
    return (
        f"{MARKER}\n"
        f"{log_file} {{\n"
        "    weekly\n    rotate 8\n    compress\n    delaycompress\n    missingok\n    notifempty\n"
        "    create 0640 root adm\n}\n"
    )


def install(cron_dir: Path, logrotate_dir: Path, cron_text: str, logrotate_text: str) -> list[Path]:
    written = []
    for directory, text in ((cron_dir, cron_text), (logrotate_dir, logrotate_text)):
        path = directory / CRON_NAME
        if path.exists() and MARKER not in path.read_text():
            raise ValidationError(f"{path} exists and was not written by this tool; not touching it")
        write_atomic(path, text, mode=0o644)
        written.append(path)
    return written


def uninstall(cron_dir: Path, logrotate_dir: Path) -> list[Path]:
    removed = []
    for directory in (cron_dir, logrotate_dir):
        path = directory / CRON_NAME
        if path.exists():
            if MARKER not in path.read_text():
                raise ValidationError(f"{path} was not written by this tool; not removing it")
            path.unlink()
            removed.append(path)
    return removed
