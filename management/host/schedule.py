"""The nightly cron entry and its logrotate rule. Rendering is pure; installing writes files
atomically and only ever replaces or removes files that carry this tool's marker.

cron runs `orchestrator.py backup` as root with the project's virtualenv; the tool's own lock
(LOCK_FILE) keeps two runs from overlapping, and the log is rotated weekly by logrotate.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from management.config import SCHEDULE_RE
from management.errors import ValidationError
from management.host.managed import remove_managed, unchanged, write_managed

CRON_NAME = "orchestrator-backup"
MARKER = "# Managed by orchestrator (make install-cron); remove with make uninstall-cron."


def render_cron(schedule: str, python: Path, orchestrator: Path, env_file: Path, log_file: Path,
                update_schedule: str = "", drill_schedule: str = "", drill_wait: int = 0,
                check_schedule: str = "", check_verify_data: bool = False, snapshot_schedule: str = "") -> str:
    """The nightly `backup`, the restore drill when `drill_schedule` is set, the repository
    check when `check_schedule` is, a scheduled `update --yes` when `update_schedule` is, and
    history snapshots between nights (`snapshot-history`) when `snapshot_schedule` is.
    All take the same run lock, so they never overlap; the drill and the check wait up to
    `drill_wait` seconds for a backup still running."""
    lines = []
    check = ["check-repos", "--repository-only", "--wait", str(drill_wait)]
    if check_verify_data:
        check = ["check-repos", "--verify-data", "--wait", str(drill_wait)]
    for when, args in ((schedule, ["backup"]), (drill_schedule, ["drill", "--wait", str(drill_wait)]),
                       (check_schedule, check), (update_schedule, ["update", "--yes"]),
                       (snapshot_schedule, ["snapshot-history"])):
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


def install(cron_dir: Path, logrotate_dir: Path, cron_text: str, logrotate_text: str) -> list[Path]:
    return write_managed([(cron_dir / CRON_NAME, cron_text), (logrotate_dir / CRON_NAME, logrotate_text)], MARKER)


def uninstall(cron_dir: Path, logrotate_dir: Path) -> list[Path]:
    return remove_managed([cron_dir / CRON_NAME, logrotate_dir / CRON_NAME], MARKER)




def install_cron(schedule: str, python: Path, orchestrator: Path, env_file: Path, log_file: Path,
                 cron_dir: Path, logrotate_dir: Path, *, update_schedule: str, drill_schedule: str,
                 drill_wait: int, dry_run: bool, echo, check_schedule: str = "",
                 check_verify_data: bool = False, snapshot_schedule: str = "") -> None:
    """Render the cron entry and its logrotate rule; write them when they changed. Says
    "nothing to change" when both are current (the provisioning playbook reads that line)."""
    cron = render_cron(schedule, python, orchestrator, env_file, log_file, update_schedule=update_schedule,
                       drill_schedule=drill_schedule, drill_wait=drill_wait, check_schedule=check_schedule,
                       check_verify_data=check_verify_data, snapshot_schedule=snapshot_schedule)
    rotate = render_logrotate(log_file)
    if dry_run:
        echo(cron + "\n" + rotate)
        return
    if unchanged([(cron_dir / CRON_NAME, cron), (logrotate_dir / CRON_NAME, rotate)]):
        echo("install-cron: nothing to change")
        return
    for path in install(cron_dir, logrotate_dir, cron, rotate):
        echo(f"wrote {path}")
