"""Cross-checks: rules that span several settings, run after every key was parsed (the volume
list and its REMAPPED_*_UID keys, per-service retention, where VIEW_DATASET may live, how the
passphrase is given). Each is a function of the `Loading`; `CROSS_CHECKS` runs them in order.
"""

from __future__ import annotations

import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from management.config.kinds import (
    PASSPHRASE_KEYS,
    UID_KEY_RE,
    Problems,
    VolumePath,
    check_relative_path,
    parse_retention,
)
from management.config.table import SETTINGS


@dataclass
class Loading:
    """What the cross-checks see: the file, its raw values, and every setting's parsed value
    by key (a setting whose own check failed holds its default, or None)."""

    path: Path
    values: dict[str, str | None]
    key_lines: dict[str, list[int]]
    parsed: dict[str, Any]
    p: Problems


def check_one_passphrase_source(ld: Loading) -> None:
    """Exactly one of BORG_PASSPHRASE / BORG_PASSCOMMAND / BORG_PASSPHRASE_FILE; a passphrase
    of at least 8 characters."""
    present = [k for k in PASSPHRASE_KEYS if (ld.values.get(k) or "").strip()]
    if not present:
        ld.p.error("BORG_PASSPHRASE: required (or BORG_PASSCOMMAND / BORG_PASSPHRASE_FILE instead)")
    elif len(present) > 1:
        ld.p.error(f"{' and '.join(present)}: set only one way to give the passphrase")
    passphrase = ld.parsed["BORG_PASSPHRASE"]
    if passphrase is not None and len(passphrase) < 8:
        ld.p.error("BORG_PASSPHRASE: shorter than 8 characters")


def parse_volume_paths(ld: Loading) -> None:
    """SERVICE_VOLUME_PATHS_AND_OWNERS, line by line, against the REMAPPED_*_UID keys."""
    key = "SERVICE_VOLUME_PATHS_AND_OWNERS"
    raw = ld.parsed[key]
    if not isinstance(raw, str):  # missing: already reported as required
        ld.parsed[key] = ()
        return
    uids = ld.parsed["REMAPPED_*_UID"]
    broken = {k for k in ld.values if UID_KEY_RE.match(k)} - set(uids)  # reported as not a number
    # The value usually starts on the line after `KEY="`; dotenv keeps the leading newline.
    base_line = ld.key_lines.get(key, [None])[0]
    p = ld.p
    out: list[VolumePath] = []
    seen: dict[str, int] = {}
    bad_lines = 0
    for number, line in enumerate(raw.split("\n"), start=1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        where = f"{key} line {number}"
        if base_line:
            where += f" (.env line {base_line + number - 1})"
        fields = entry.split(":")
        if len(fields) not in (2, 3):
            p.error(f"{where}: {entry!r} is not 'relative/path:UID_KEY' (or 'path:UID_KEY:GID_KEY')")
            bad_lines += 1
            continue
        rel = fields[0].strip().rstrip("/")
        keys = [f.strip() for f in fields[1:]]
        bad = False
        reason = check_relative_path(rel)
        if reason:
            p.error(f"{where}: {reason}")
            bad = True
        for uid_key in keys:
            if uid_key in broken:
                bad = True  # already reported as not a number
            elif uid_key not in uids:
                known = ", ".join(sorted(uids)) or "none defined"
                p.error(f"{where}: unknown UID key {uid_key!r} (defined: {known})")
                bad = True
        if rel in seen and not bad:
            p.error(f"{where}: duplicate entry {rel!r} (first on line {seen[rel]})")
            bad = True
        if bad:
            bad_lines += 1
            continue
        seen[rel] = number
        uid = uids[keys[0]]
        gid = uids[keys[1]] if len(keys) == 2 else uid
        out.append(VolumePath(rel, keys[0], uid, gid, number))
    if not out and not bad_lines:
        p.error(f"{key}: no entries (one 'service/path:UID_KEY' per line)")
    ld.parsed[key] = tuple(out)


def warn_ids_outside_subid_range(ld: Loading) -> None:
    """A volume owner outside the remap user's subordinate range: no container will own it."""
    start, count = ld.parsed["SUBID_START"], ld.parsed["SUBID_COUNT"]
    for vp in ld.parsed["SERVICE_VOLUME_PATHS_AND_OWNERS"]:
        for kind, number in (("UID", vp.uid), ("GID", vp.gid)):
            if not start <= number < start + count:
                ld.p.warn(
                    f"SERVICE_VOLUME_PATHS_AND_OWNERS line {vp.line}: {kind} {number} is outside the "
                    f"userns-remap range {start}..{start + count - 1}; containers will not own it"
                )


def parse_retention_overrides(ld: Loading) -> None:
    """BORG_RETENTION_OVERRIDES: one `service:daily=N,...` per line, for a known service."""
    key = "BORG_RETENTION_OVERRIDES"
    raw = ld.parsed[key]
    overrides: dict[str, dict[str, str]] = {}
    services = list(dict.fromkeys(vp.service for vp in ld.parsed["SERVICE_VOLUME_PATHS_AND_OWNERS"]))
    for number, line in enumerate(raw.split("\n") if isinstance(raw, str) else [], start=1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        where = f"{key} line {number}"
        service, sep, spec = entry.partition(":")
        service = service.strip()
        if not sep:
            ld.p.error(f"{where}: {entry!r} is not 'service:daily=N,weekly=N,...'")
            continue
        if services and service not in services:
            ld.p.error(f"{where}: unknown service {service!r} (known: {', '.join(services)})")
            continue
        if service in overrides:
            ld.p.error(f"{where}: duplicate entry for {service!r}")
            continue
        overrides[service] = parse_retention(spec, where, ld.p)
    ld.parsed[key] = overrides


def check_view_dataset_outside_parent(ld: Loading) -> None:
    """The views must not lie inside ZFS_PARENT_DATASET: the recursive snapshot would take them."""
    view, parent = ld.parsed["VIEW_DATASET"], ld.parsed["ZFS_PARENT_DATASET"]
    if view and parent and (view == parent or view.startswith(parent + "/")):
        ld.p.error(
            f"VIEW_DATASET: {view!r} lies inside ZFS_PARENT_DATASET; it would be included "
            "in the recursive snapshot. Put it beside it (e.g. POOL/orchestrator-views)"
        )


def warn_readable_passphrase(ld: Loading) -> None:
    """The .env holding BORG_PASSPHRASE, or BORG_PASSPHRASE_FILE, readable by others."""
    try:
        mode = ld.path.stat().st_mode
        if ld.parsed["BORG_PASSPHRASE"] and mode & (stat.S_IROTH | stat.S_IRGRP):
            who = "everyone" if mode & stat.S_IROTH else "its group"
            ld.p.warn(f"{ld.path} holds BORG_PASSPHRASE and is readable by {who}: run `chmod 600 {ld.path}`")
    except OSError:
        pass
    passphrase_file = ld.parsed["BORG_PASSPHRASE_FILE"]
    if passphrase_file:
        try:
            if passphrase_file.stat().st_mode & (stat.S_IROTH | stat.S_IRGRP):
                ld.p.warn(
                    f"BORG_PASSPHRASE_FILE {passphrase_file} is readable by others: "
                    f"run `chmod 600 {passphrase_file}`"
                )
        except OSError:
            ld.p.error(f"BORG_PASSPHRASE_FILE: {passphrase_file} does not exist or cannot be read")


def warn_unknown_keys(ld: Loading) -> None:
    for key in ld.values:
        if not any(s.matches(key) for s in SETTINGS):
            ld.p.warn(f"{key}: unknown key, ignored (typo?)")


CROSS_CHECKS: tuple[Callable[[Loading], None], ...] = (
    check_one_passphrase_source,
    parse_volume_paths,
    warn_ids_outside_subid_range,
    parse_retention_overrides,
    check_view_dataset_outside_parent,
    warn_readable_passphrase,
    warn_unknown_keys,
)
