"""The data pool as the design draws it (spec 004, docs/storage.md): a mirror of the data disk and
the "Backup Data Disk", so that ZFS can repair what a scrub finds instead of only reporting it.

`make setup-pool DISKS="a b"` creates the pool ZFS_PARENT_DATASET lives in as a mirror of the two
disks, with ashift=12 and compression=lz4, atime=off, xattr=sa, acltype=posixacl on its root
dataset (inherited by every dataset below). `make attach-mirror DISK=` turns a one-disk pool into a
mirror. Both look first and change second: `plan_*` only reads (zpool list/status, blkid -p, the
property tables `zfs get`/`zpool get` print) and refuses, changing nothing,

- a disk that does not exist, is not a block device or a file, or is named twice;
- a disk that holds a partition table, a filesystem or a ZFS pool (blkid -p), unless forced;
- a pool that already exists (setup-pool), or one that is not a single bare disk (attach-mirror).

A property the running ZFS does not offer is left out and named: zfs-fuse (pool version 23) has no
lz4, no xattr=sa and no acltype; OpenZFS has all of them.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field

from management.config import Settings
from management.errors import ValidationError
from management.runner import Runner
from management.text import pool_of
from management.tools import disks as disktool
from management.tools.zfs import (
    FS_PROPS,
    POOL_PROPS,
    PoolStatus,
    check_pool_name,
    parse_pool_status,
    parse_supported,
    pool_attach_argv,
    pool_create_argv,
    pool_status_argv,
    split_supported,
)

TIMEOUT = 120.0


@dataclass
class PoolPlan:
    pool: str
    argv: list[str]
    what: str  # one line: what will change
    skipped: dict[str, str] = field(default_factory=dict)  # wanted properties this ZFS does not offer
    forced: list[str] = field(default_factory=list)  # disks whose contents FORCE overrides

    def lines(self, dry_run: bool) -> list[str]:
        out = [f"{'would ' if dry_run else ''}{self.what}", f"  {' '.join(self.argv)}"]
        if self.skipped:
            out.append("  not set, this ZFS does not offer them: "
                       + ", ".join(f"{k}={v}" for k, v in self.skipped.items()))
        out += [f"  FORCE: {note}" for note in self.forced]
        return out


class PoolManager:
    def __init__(self, settings: Settings, runner: Runner, echo: Callable[[str], None] = print):
        self.s = settings
        self.runner = runner
        self.echo = echo

    @property
    def pool(self) -> str:
        return check_pool_name(pool_of(self.s.zfs_parent_dataset))

    def _query(self, argv: list[str], ok_codes=(0,)):
        return self.runner.run(argv, mutating=False, ok_codes=ok_codes, timeout=TIMEOUT)

    # -- reading ------------------------------------------------------------------------------

    def exists(self) -> bool:
        r = self._query(["zpool", "list", "-H", "-o", "name", self.pool], ok_codes=(0, 1))
        return r.returncode == 0 and r.stdout.strip() == self.pool

    def status(self) -> PoolStatus:
        return parse_pool_status(self._query(pool_status_argv(self.pool)).stdout)

    def offered(self) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
        """(pool properties, root dataset properties) this ZFS takes of the recommended ones, and
        the ones it does not take. Read from the tables `zpool get` / `zfs get` print."""
        tables = []
        for tool in ("zpool", "zfs"):
            r = self._query([tool, "get"], ok_codes=(0, 1, 2))
            tables.append(parse_supported(r.stdout + "\n" + r.stderr))
        pool_props, pool_skipped = split_supported(POOL_PROPS, tables[0])
        fs_props, fs_skipped = split_supported(FS_PROPS, tables[1])
        return pool_props, fs_props, {**pool_skipped, **fs_skipped}

    def check_disks(self, disks: list[str], force: bool) -> list[str]:
        """Refuse what must not become a pool's disk; returns what FORCE overrides."""
        if len(set(disks)) != len(disks):
            raise ValidationError(f"a disk is named twice in {' '.join(disks)}; nothing was changed")
        forced, refused = [], []
        for disk in disks:
            try:
                mode = os.stat(disk).st_mode
            except FileNotFoundError:
                raise ValidationError(f"{disk}: no such disk or file; nothing was changed") from None
            if not (stat.S_ISBLK(mode) or stat.S_ISREG(mode)):
                raise ValidationError(f"{disk}: not a block device or a file; nothing was changed")
            r = self._query(disktool.probe_argv(disk), ok_codes=(0, disktool.PROBE_NOTHING))
            held = disktool.holds(disktool.parse_probe(r.stdout)) if r.returncode == 0 else None
            if held:
                (forced if force else refused).append(f"{disk} holds {held}")
        if refused:
            raise ValidationError(
                f"{'; '.join(refused)}: refusing to overwrite it. Look first (blkid -p, zpool import, "
                "lsblk); FORCE=1 (--force) overwrites it. Nothing was changed")
        return [f"{note}: it will be overwritten" for note in forced]

    # -- plans ----------------------------------------------------------------------------------

    def plan_create(self, disks: list[str], *, force: bool = False, mountpoint: str | None = None) -> PoolPlan:
        pool = self.pool
        if not disks:
            raise ValidationError("no disk given: DISKS=\"/dev/disk/by-id/... /dev/disk/by-id/...\"")
        if self.exists():
            raise ValidationError(f"pool {pool} already exists (ZFS_PARENT_DATASET={self.s.zfs_parent_dataset}); "
                                  f"`zpool status {pool}` shows it, `make attach-mirror DISK=` adds a mirror "
                                  "leg to a one-disk pool. Nothing was changed")
        forced = self.check_disks(disks, force)
        pool_props, fs_props, skipped = self.offered()
        argv = pool_create_argv(pool, disks, pool_props=pool_props, fs_props=fs_props, mountpoint=mountpoint,
                                force=force)
        shape = f"a mirror of {len(disks)} disks" if len(disks) > 1 else \
            "ONE disk (no redundancy: ZFS can detect but not repair corruption; add one with make attach-mirror)"
        return PoolPlan(pool, argv, f"create pool {pool} as {shape}: {' '.join(disks)}", skipped, forced)

    def plan_attach(self, disk: str, *, force: bool = False) -> PoolPlan:
        pool = self.pool
        if not disk:
            raise ValidationError("no disk given: DISK=/dev/disk/by-id/...")
        if not self.exists():
            raise ValidationError(f"pool {pool} does not exist: make setup-pool DISKS=\"...\" creates it as a "
                                  "mirror. Nothing was changed")
        st = self.status()
        top = st.top_level
        if st.redundant:
            raise ValidationError(f"pool {pool} is already redundant ({st.layout}); nothing was changed")
        if len(top) != 1:
            raise ValidationError(f"pool {pool} has {len(top)} disks side by side ({st.layout}): attach-mirror "
                                  "turns a ONE-disk pool into a mirror; attach a leg to each yourself "
                                  "(zpool attach). Nothing was changed")
        forced = self.check_disks([disk], force)
        existing = top[0].name
        return PoolPlan(pool, pool_attach_argv(pool, existing, disk, force=force),
                        f"attach {disk} to {existing} in pool {pool}: a mirror of 2 disks (ZFS copies every "
                        "block to the new disk, a resilver)", forced=forced)

    # -- changes --------------------------------------------------------------------------------

    def apply(self, plan: PoolPlan) -> PoolStatus | None:
        """Run the plan; then `zpool status` as it is now (None under dry-run)."""
        self.runner.run(plan.argv, timeout=TIMEOUT)
        if self.runner.dry_run:
            return None
        return self.status()
