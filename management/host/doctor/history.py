"""doctor's checks of one file back (issue 33): the local history, borg's FUSE bindings, and
borg mounts left open, built on check.py's Check, Host and helpers; report.py runs them after
the others. Read-only like every check.

    local history        ok: how many history snapshots, the space unique to them, oldest and
                         newest; warn when they hold more than SNAPSHOT_SPACE_WARN percent of the
                         pool (used + available of its root dataset); ok "off" when
                         SNAPSHOT_RETENTION is off
    borg mount           ok when borg's interpreter (the shebang of `borg` on PATH) imports
                         pyfuse3 or llfuse; warn otherwise (`make mount` cannot work)
    mounted repositories warn for anything mounted under MOUNT_DIR: borg holds the repository's
                         lock while it is mounted, and the night fails that service
"""

from __future__ import annotations

import re
from pathlib import Path

from management.errors import CommandError, OrchestratorError
from management.host.doctor.check import OK, WARN, Check, Host, cannot, missing, why
from management.host.doctor.pool import pool_space
from management.state import StateStore, summarize_history
from management.text import age, human_size
from management.tools.zfs import parse_props, props_argv

FUSE_MODULES = ("pyfuse3", "llfuse")  # borg's BORG_FUSE_IMPL default order
FUSE_FIX = "apt-get install python3-llfuse (or python3-pyfuse3), the FUSE bindings of Debian's borg (make install)"
SHEBANG_MAX = 256


# --- local history ----------------------------------------------------------------------------


def retention_text(policy: dict[str, str]) -> str:
    """{"daily": "7", "weekly": "4"} -> `daily=7,weekly=4` (as the .env writes it)."""
    return ",".join(f"{k}={v}" for k, v in policy.items()) or "off"


def snapshot_used(out: str) -> dict[str, dict[str, int]]:
    """`zfs get -r used` of the parent -> {dataset: {snapshot name: used bytes}}."""
    found: dict[str, dict[str, int]] = {}
    for name, props in parse_props(out).items():
        if "@" in name and props.get("used", "").isdigit():
            dataset, snap = name.split("@", 1)
            found.setdefault(dataset, {})[snap] = int(props["used"])
    return found


def check_local_history(host: Host) -> Check:
    """The history snapshots (history.json's points still on the pool) and their share of the pool."""
    s, name = host.settings, "local history"
    if not s.snapshot_retention:
        return Check(OK, name, "off (SNAPSHOT_RETENTION=off): no snapshot stays but the one skip-unchanged needs")
    parent = s.zfs_parent_dataset
    try:
        r = host.query(props_argv(parent, ("used",)), ok_codes=(0, 1), timeout=60)
    except CommandError as exc:
        return cannot(name, exc, "the space the history snapshots take")
    if r.returncode != 0:
        return Check(OK, name, f"none: {parent} does not exist (see the service datasets check)")
    used = snapshot_used(r.stdout)
    now = host.clock()
    history = StateStore(s.state_dir).history()
    summaries = {svc: summarize_history(history.get(svc, []), used.get(s.dataset(svc), {}), now)
                 for svc in s.services}
    summaries = {svc: h for svc, h in summaries.items() if h.snapshots}
    policy = f"SNAPSHOT_RETENTION={retention_text(s.snapshot_retention)}"
    if not summaries:
        return Check(OK, name, f"no history snapshot yet ({policy}: each night keeps its snapshot)")
    count = sum(h.snapshots for h in summaries.values())
    total = sum(h.bytes for h in summaries.values())
    oldest = max(h.oldest_age or 0 for h in summaries.values())
    newest = min(h.newest_age or 0 for h in summaries.values())
    crash = sum(h.crash_consistent for h in summaries.values())
    biggest, big = max(summaries.items(), key=lambda kv: (kv[1].bytes, kv[0]))
    words = (f"{count} snapshot(s) of {len(summaries)} service(s), {human_size(total)} unique to them "
             f"(zfs used)")
    tail = (f"oldest {age(oldest)} ago, newest {age(newest)} ago"
            + (f", {crash} crash-consistent" if crash else "")
            + (f"; most: {biggest} {human_size(big.bytes)} in {big.snapshots}" if len(summaries) > 1 else "")
            + f" ({policy})")
    space = pool_space(host)
    if isinstance(space, OrchestratorError):
        return Check(OK, name, f"{words}; {tail}; the pool's size is unknown ({why(space)})")
    size = sum(space)
    share = total / size if size else 0.0
    where = f"{share:.1%} of the {human_size(size)} pool {host.pool}, warn above {s.snapshot_space_warn}%"
    if share * 100 > s.snapshot_space_warn:
        return Check(WARN, name, f"{words}: {where}; {tail}",
                     f"lower SNAPSHOT_RETENTION in {s.env_file} (e.g. SNAPSHOT_RETENTION=daily=3); the next "
                     "night thins the history to it")
    return Check(OK, name, f"{words}, {where}; {tail}")


# --- borg mount -------------------------------------------------------------------------------


def shebang(head: bytes) -> list[str] | None:
    """The interpreter a script's first line names, as argv: `#!/usr/bin/python3` ->
    ["/usr/bin/python3"], `#!/usr/bin/env python3` -> ["/usr/bin/env", "python3"] (the kernel
    passes at most one argument); None when there is no `#!` (a binary)."""
    if not head.startswith(b"#!"):
        return None
    line = head[2:].split(b"\n", 1)[0].decode(errors="replace").strip()
    interpreter, _, arg = line.partition(" ")
    if not interpreter:
        return None
    return [interpreter, arg.strip()] if arg.strip() else [interpreter]


def import_argv(interpreter: list[str], module: str) -> list[str]:
    """Does this Python import `module`? (argv, no shell)."""
    if module not in FUSE_MODULES:
        raise ValueError(f"not a FUSE binding: {module!r}")
    return [*interpreter, "-c", f"import {module}"]


def check_borg_mount(host: Host) -> Check:
    """`make mount` needs borg's FUSE bindings in the Python borg runs with."""
    name = "borg mount"
    borg = host.which("borg")
    if not borg:
        return Check(WARN, name, "cannot tell: borg is not installed (or not on PATH)", "make install")
    try:
        with open(borg, "rb") as f:
            head = f.read(SHEBANG_MAX)
    except OSError as exc:
        return Check(WARN, name, f"cannot tell: cannot read {borg}: {exc.strerror}", "run doctor as root")
    interpreter = shebang(head)
    if interpreter is None:
        return Check(WARN, name, f"cannot tell: {borg} is a binary, not a Python script: whether it has FUSE "
                                 "built in shows only when it mounts",
                     "make mount SERVICE_NAME=<service> once; if it says no FUSE support, install Debian's "
                     "borgbackup and " + FUSE_FIX.split(",")[0])
    shown = " ".join(interpreter)
    for module in FUSE_MODULES:
        try:
            r = host.query(import_argv(interpreter, module), ok_codes=(0, 1))
        except CommandError as exc:
            program = missing(exc)
            return Check(WARN, name, f"cannot tell: borg's interpreter {program or shown} does not run ({why(exc)})",
                         FUSE_FIX)
        if r.returncode == 0:
            return Check(OK, name, f"borg's Python ({shown}, from {borg}) imports {module}")
    return Check(WARN, name, f"borg's Python ({shown}, from {borg}) has no FUSE bindings (neither "
                             f"{' nor '.join(FUSE_MODULES)} imports): make mount cannot work", FUSE_FIX)


# --- mounts left open -------------------------------------------------------------------------


def mounts_below(text: str, root: Path) -> list[tuple[str, str]]:
    """/proc/self/mounts -> (mount point, file system type) of each mount at or below `root`.
    The kernel writes a space, tab, newline or backslash in a path as an octal escape."""
    found = []
    prefix = str(root).rstrip("/") + "/"
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        point = _unescape(fields[1])
        if point == str(root) or point.startswith(prefix):
            found.append((point, fields[2]))
    return found


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def check_open_mounts(host: Host) -> Check:
    """A `make mount` left open holds its repository's lock: the night fails that service."""
    s, name = host.settings, "mounted repositories"
    try:
        text = host.mounts_file.read_text()
    except OSError as exc:
        return Check(WARN, name, f"cannot tell: cannot read {host.mounts_file}: {exc.strerror}",
                     f"ls {s.mount_dir}")
    found = mounts_below(text, s.mount_dir)
    if not found:
        return Check(OK, name, f"nothing mounted under {s.mount_dir}")
    services = set(s.services)
    named = []
    for point, fstype in found:
        rel = Path(point).relative_to(s.mount_dir).parts
        service = rel[0] if rel and rel[0] in services else None
        named.append(f"{point} ({fstype})" + (f": the night fails {service} while it is mounted" if service else ""))
    return Check(WARN, name, f"mounted under {s.mount_dir}: {'; '.join(named)}",
                 "make umount (all of them), or make umount SERVICE_NAME=<service>")


CHECKS = (check_local_history, check_borg_mount, check_open_mounts)
