"""A zedlet: ZFS's event daemon (zed, Debian's zfs-zed) hands every pool event to the tool, which
tells the user through its own notification settings (NOTIFY_URLS, Apprise) what went wrong with
a disk: a mirror leg faulted or removed, read/write/checksum errors, a scrub that finished.

zed runs every executable `all-*.sh` in its zedlet folder with the event in ZEVENT_* variables;
this one runs `orchestrator.py zfs-event`, which decides (monitoring.notify.zfs_event_message)
whether the event is worth a message. Rendering is pure; installing writes the file atomically and
only ever replaces or removes a file that carries this tool's marker.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from pathlib import Path

from management.errors import ValidationError
from management.host.managed import remove_managed, unchanged, write_managed

ZED_DIR = Path("/etc/zfs/zed.d")
ZEDLET = "all-orchestrator.sh"
MARKER = "# Managed by orchestrator (make install-zedlet); remove with make uninstall-zedlet."


def render_zedlet(python: Path, orchestrator: Path, env_file: Path, subclasses: Sequence[str] = ()) -> str:
    """`subclasses`: the only events the tool can say something about (ZEVENT_SUBCLASS, the class's
    last word); every other event ends in the shell. zed runs an all-*.sh zedlet for every event,
    and a busy night makes dozens (each snapshot, clone and destroy is a history_event): without
    the filter each one would start the tool's Python (measured in the VM lab under TCG: 15 s of
    CPU each)."""
    command = shlex.join([str(python), str(orchestrator), "--env-file", str(env_file), "zfs-event"])
    for name in subclasses:
        if not re.fullmatch(r"[a-z_]+", name):
            raise ValidationError(f"{name!r} is not a ZFS event subclass")
    only = (f'case "${{ZEVENT_SUBCLASS:-}}" in\n  {"|".join(subclasses)}) ;;\n  *) exit 0 ;;\nesac\n'
            if subclasses else "")
    return (f"#!/bin/sh\n{MARKER}\n"
            "# zed passes the event in ZEVENT_* variables; the tool decides what is worth a message.\n"
            f"{only}exec {command}\n")


def install(zed_dir: Path, text: str) -> Path | None:
    """The zedlet's path once written; None when it already holds this text (nothing to change:
    the provisioning playbook restarts zed only when a zedlet was written)."""
    if not zed_dir.is_dir():
        raise ValidationError(f"{zed_dir} does not exist: install ZFS's event daemon first "
                              "(Debian: apt-get install zfs-zed), then run this again")
    files = [(zed_dir / ZEDLET, text)]
    if unchanged(files) and (zed_dir / ZEDLET).stat().st_mode & 0o777 == 0o755:
        return None
    (path,) = write_managed(files, MARKER, mode=0o755)
    return path


def uninstall(zed_dir: Path) -> list[Path]:
    return remove_managed([zed_dir / ZEDLET], MARKER)
