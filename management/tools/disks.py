"""Disks: what a disk (or a file standing in for one) already holds, asked of `blkid -p`.

`blkid -p` probes the device itself (not blkid's cache): it finds a partition table (PTTYPE), a
filesystem (TYPE=ext4, xfs, ...) or a ZFS label (TYPE=zfs_member, LABEL=<pool>), also on a
regular file. Exit code 2 means it found nothing. Pure argv builders and parsers; the caller runs
them through the Runner.
"""

from __future__ import annotations

PROBE_NOTHING = 2  # blkid's exit code when it found no signature


def probe_argv(disk: str) -> list[str]:
    return ["blkid", "-p", "-o", "export", disk]


def parse_probe(out: str) -> dict[str, str]:
    """`KEY=value` lines -> {KEY: value}."""
    found = {}
    for line in out.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip():
            found[key.strip()] = value.strip()
    return found


def holds(found: dict[str, str]) -> str | None:
    """What the probe says is on the disk, in words; None when it found nothing."""
    if found.get("TYPE") == "zfs_member":
        pool = found.get("LABEL")
        return f"a ZFS pool{f' ({pool})' if pool else ''}"
    if found.get("PTTYPE"):
        return f"a partition table ({found['PTTYPE']})"
    if found.get("TYPE"):
        kind = "filesystem" if found.get("USAGE") in (None, "filesystem") else "signature"
        return f"a {kind} ({found['TYPE']})"
    return None
