"""ZFS: datasets, recursive atomic snapshots, and read-only views of a snapshot.

Only commands that OpenZFS and zfs-fuse share are used: `zfs create/list/get/snapshot/
destroy/rollback/clone/mount/unmount`. Every name is validated before any call, and every
argv is built by a pure function below.

Reading a snapshot: zfs-fuse has no `.zfs/snapshot` directory, so a snapshot is read through
a read-only clone (a "view") mounted at a stable path. Views live under a helper dataset that
is outside the recursively snapshotted tree (otherwise the next `zfs snapshot -r` would
include them).

Safety: `destroy_snapshot` refuses anything that is not `dataset@snapshot`; the automatic
cycle only destroys snapshots whose name carries the tool's prefix; `destroy_view` only
destroys clones (datasets with an origin) below the view parent.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from management.config import validate_dataset_name
from management.errors import CommandError, OrchestratorError, ValidationError
from management.runner import Runner

log = logging.getLogger("orchestrator.zfs")

SNAPSHOT_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,200}$")
ZFS_TIMEOUT = 120.0
BUSY_RETRIES = 8
# What a destroy may meet for a moment and then not: a mount still settling after its unmount, and
# zfs-fuse's control socket dropping one request under load ("zfsfuse_ioctl_read_loop(): file
# descriptor closed ... I/O error", seen once in CI on a view destroy while borg ran in parallel).
# "target is busy": a borg killed mid-create leaves its ssh child, whose working directory is in
# the view, alive for a moment (the chaos campaign, seed 37 step 22).
TRANSIENT = ("dataset is busy", "file descriptor closed", "target is busy")


def check_dataset(name: str) -> str:
    why = validate_dataset_name(name)
    if why:
        raise ValidationError(f"dataset name {name!r} {why}")
    return name


def check_snapshot_name(name: str) -> str:
    """The part after '@'. Letters, digits and `_ . : -`; no '/', '@' or spaces."""
    if not SNAPSHOT_NAME_RE.match(name or ""):
        raise ValidationError(
            f"snapshot name {name!r} is not valid: use letters, digits and _ . : - "
            "(no '/', '@' or spaces; it names a snapshot, not a dataset)"
        )
    return name


def split_snapshot(full: str) -> tuple[str, str]:
    """'pool/ds@name' -> ('pool/ds', 'name'); refuses anything that is not a snapshot."""
    if full.count("@") != 1:
        raise ValidationError(f"{full!r} is not a snapshot (expected dataset@name)")
    dataset, name = full.split("@")
    return check_dataset(dataset), check_snapshot_name(name)


# --- pure argv builders ----------------------------------------------------------------------


def create_argv(dataset: str, *, mountpoint: str | None = None, parents: bool = True,
                props: dict[str, str] | None = None) -> list[str]:
    argv = ["zfs", "create"]
    if parents:
        argv.append("-p")
    for key, value in {**({"mountpoint": mountpoint} if mountpoint else {}), **(props or {})}.items():
        argv += ["-o", f"{key}={value}"]
    return argv + [check_dataset(dataset)]


def props_argv(root: str, props: tuple[str, ...]) -> list[str]:
    """Properties of `root`, its descendants and their snapshots, exact (bytes, unix time).

    `zfs get -H -p -r -o name,property,value` is the parseable form both OpenZFS and zfs-fuse
    accept (zfs-fuse's `zfs list` has no -p and its `zfs get` no -t)."""
    return ["zfs", "get", "-H", "-p", "-r", "-o", "name,property,value", ",".join(props), check_dataset(root)]


def parse_props(out: str) -> dict[str, dict[str, str]]:
    """`name<TAB>property<TAB>value` lines -> {name: {property: value}}, in zfs's order."""
    rows: dict[str, dict[str, str]] = {}
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) == 3:
            rows.setdefault(parts[0], {})[parts[1]] = parts[2]
    return rows


def space_argv(dataset: str) -> list[str]:
    """The bytes a dataset (a pool's root: the pool) uses and still has: `used` + `available` is
    the space its data can take, what both OpenZFS and zfs-fuse print (zfs-fuse's `zpool list`
    has no -p)."""
    return ["zfs", "get", "-H", "-p", "-o", "property,value", "used,available", check_dataset(dataset)]


def parse_space(out: str) -> tuple[int, int] | None:
    """`used<TAB>N` and `available<TAB>N` lines -> (used, available); None when either is missing."""
    values = dict(line.split("\t", 1) for line in out.splitlines() if "\t" in line)
    try:
        return int(values["used"]), int(values["available"])
    except (KeyError, ValueError):
        return None


def split_tree(rows: dict[str, dict[str, str]]) -> tuple[list[Dataset], list[Snapshot]]:
    """parse_props' rows (mountpoint, mounted, used, creation) -> (datasets, snapshots oldest first)."""
    datasets = [Dataset(name, p.get("mountpoint", "-"), p.get("mounted") == "yes", _int(p.get("used", "0")))
                for name, p in rows.items() if "@" not in name]
    snaps = [Snapshot(name, _int(p.get("creation", "0")), _int(p.get("used", "0")))
             for name, p in rows.items() if "@" in name]
    return datasets, sorted(snaps, key=lambda s: (s.creation, s.name))


def get_argv(prop: str, dataset: str) -> list[str]:
    return ["zfs", "get", "-H", "-p", "-o", "value", prop, dataset]


def import_argv(pool: str, *, force: bool = False) -> list[str]:
    """Import `pool` by scanning the devices, not from the cache file: what zfs-import-scan does,
    and what still works when the pool's disk appeared after the boot's own import ran.
    -N mounts nothing; the caller mounts what it needs. `force` (-f): a pool another system
    (hostid) used last, never exported: only when that system is gone."""
    if "/" in pool:
        raise ValidationError(f"{pool!r} is not a pool name")
    return ["zpool", "import", "-N", *(["-f"] if force else []), check_dataset(pool)]


def parse_importable(text: str) -> dict[str, str]:
    """`zpool import` (no pool named: the pools its device scan finds, read-only) -> {pool: its
    block of text}, e.g. {"datapool": "pool: datapool\\n id: ...\\n state: ONLINE\\n status: ..."}."""
    pools: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        key, _, value = line.strip().partition(": ")
        if key == "pool" and value:
            current = pools.setdefault(value.strip(), [])
        if current is not None:
            current.append(line.strip())
    return {name: "\n".join(lines) for name, lines in pools.items()}


def snapshot_argv(dataset: str, name: str, *, recursive: bool = True) -> list[str]:
    return ["zfs", "snapshot", *(["-r"] if recursive else []), f"{check_dataset(dataset)}@{check_snapshot_name(name)}"]


def destroy_snapshot_argv(dataset: str, name: str, *, recursive: bool = False) -> list[str]:
    return ["zfs", "destroy", *(["-r"] if recursive else []), f"{check_dataset(dataset)}@{check_snapshot_name(name)}"]


def rollback_argv(dataset: str, name: str) -> list[str]:
    return ["zfs", "rollback", "-r", f"{check_dataset(dataset)}@{check_snapshot_name(name)}"]


def clone_argv(snapshot: str, target: str, mountpoint: str, *, readonly: bool = True) -> list[str]:
    split_snapshot(snapshot)
    return ["zfs", "clone", *(["-o", "readonly=on"] if readonly else []), "-o", f"mountpoint={mountpoint}",
            snapshot, check_dataset(target)]


TREE_PROPS = ("mountpoint", "mounted", "used", "creation")
SCRATCH_PREFIX = "drill-"  # scratch datasets a restore drill extracts into, below the view parent


@dataclass(frozen=True)
class Dataset:
    name: str
    mountpoint: str
    mounted: bool
    used: int = 0


@dataclass(frozen=True)
class Snapshot:
    name: str  # dataset@snap
    creation: int  # unix time
    used: int

    @property
    def dataset(self) -> str:
        return self.name.split("@", 1)[0]

    @property
    def snap(self) -> str:
        return self.name.split("@", 1)[1]


# One destroy or unmount at a time from this process: the borg workers remove their views in
# parallel threads, and zfs-fuse once met two concurrent destroys of clones with a dropped control
# request on one ("file descriptor closed ... I/O error") and a clone it called busy from then on,
# unmounted or not, until it restarted (CI, 2026-12-07). Each takes milliseconds; everything else
# (reads, snapshots, clones, mounts) stays parallel.
SERIAL = ("destroy", "unmount")
_SERIAL = threading.Lock()


class ZFSManager:
    def __init__(self, runner: Runner, timeout: float = ZFS_TIMEOUT):
        self.runner = runner
        self.timeout = timeout

    def _run(self, argv: list[str], *, mutating: bool = True, ok_codes=(0,)):
        if not mutating:
            try:
                return self.runner.run(argv, mutating=False, timeout=self.timeout, ok_codes=ok_codes)
            except CommandError as exc:
                # a query killed by a signal (not by our timeout: that has no exit code) is asked
                # once more: it changes nothing, and the cleanup it serves would otherwise leave a
                # clone for the next run (chaos, seed 37, step 147: `zfs get` SIGKILLed in
                # restore-path's way out)
                if exc.exit_code is None or exc.exit_code >= 0:
                    raise
                log.warning("`%s` was killed (exit code %s); asking once more", " ".join(argv[:2]), exc.exit_code)
                return self.runner.run(argv, mutating=False, timeout=self.timeout, ok_codes=ok_codes)
        if not (len(argv) > 1 and argv[0] == "zfs" and argv[1] in SERIAL):
            return self.runner.run(argv, mutating=mutating, timeout=self.timeout, ok_codes=ok_codes)
        with _SERIAL:
            return self.runner.run(argv, mutating=True, timeout=self.timeout, ok_codes=ok_codes)

    # --- queries ------------------------------------------------------------------------------

    def exists(self, name: str) -> bool:
        r = self._run(["zfs", "list", "-H", "-o", "name", "-t", "all", name], mutating=False, ok_codes=(0, 1))
        return r.returncode == 0 and r.stdout.strip() == name

    def get(self, prop: str, dataset: str) -> str:
        return self._run(get_argv(prop, check_dataset(dataset)), mutating=False).stdout.strip()

    def pool_health(self, pool: str) -> str | None:
        """ONLINE, DEGRADED, FAULTED, ... of an imported pool; None when zpool does not say."""
        r = self._run(["zpool", "list", "-H", "-o", "health", check_dataset(pool)], mutating=False, ok_codes=(0, 1))
        return r.stdout.strip() or None if r.returncode == 0 else None

    def pool_capacity(self, pool: str) -> int | None:
        """How full the pool is, in percent (`zpool list -o capacity`); None when zpool does not say."""
        r = self._run(["zpool", "list", "-H", "-o", "capacity", check_dataset(pool)], mutating=False, ok_codes=(0, 1))
        value = r.stdout.strip().rstrip("%")
        return int(value) if r.returncode == 0 and value.isdigit() else None

    def pool_status(self, pool: str) -> PoolStatus | None:
        """`zpool status POOL`, parsed; None when the pool is not imported (or zpool said nothing)."""
        r = self._run(pool_status_argv(pool), mutating=False, ok_codes=(0, 1))
        found = parse_pool_status(r.stdout) if r.returncode == 0 else None
        return found if found and found.pool else None

    def is_mounted(self, dataset: str) -> bool:
        r = self._run(get_argv("mounted", check_dataset(dataset)), mutating=False, ok_codes=(0, 1))
        return r.returncode == 0 and r.stdout.strip() == "yes"

    def _props(self, root: str, props: tuple[str, ...]) -> dict[str, dict[str, str]]:
        return parse_props(self._run(props_argv(root, props), mutating=False).stdout)

    def mounted_below(self, root: str) -> set[str]:
        """The datasets at or below `root` that are mounted, in one `zfs get` (not one per dataset)."""
        return {name for name, p in self._props(root, ("mounted",)).items()
                if "@" not in name and p.get("mounted") == "yes"}

    def list_datasets(self, root: str) -> list[Dataset]:
        rows = self._props(root, ("mountpoint", "mounted", "used"))
        return [Dataset(name, p.get("mountpoint", "-"), p.get("mounted") == "yes", _int(p.get("used", "0")))
                for name, p in rows.items() if "@" not in name]

    def tree(self, root: str) -> tuple[list[Dataset], list[Snapshot]]:
        """`root`'s datasets and every snapshot below it, in ONE `zfs get -r` (status asks this once)."""
        return split_tree(self._props(root, TREE_PROPS))

    def unmounted(self, root: str) -> list[str]:
        """Datasets at or below `root` that should be mounted (canmount=on, a path mountpoint) and are not."""
        rows = self._props(root, ("mountpoint", "canmount", "mounted"))
        return [name for name, p in rows.items()
                if "@" not in name and p.get("canmount") == "on" and p.get("mountpoint", "").startswith("/")
                and p.get("mounted") != "yes"]

    def snapshots(self, root: str) -> list[Snapshot]:
        """Every snapshot of `root` and its descendants, oldest first."""
        rows = self._props(root, ("creation", "used"))
        snaps = [Snapshot(name, _int(p.get("creation", "0")), _int(p.get("used", "0")))
                 for name, p in rows.items() if "@" in name]
        return sorted(snaps, key=lambda s: (s.creation, s.name))

    def list_snapshots(self, root: str) -> list[str]:
        return [s.name for s in self.snapshots(root)]

    def list_views(self, view_parent: str) -> list[str]:
        """Clones below the view parent (datasets with an origin); nothing else counts as a view."""
        if not self.exists(view_parent):
            return []
        rows = self._props(view_parent, ("origin",))
        views = [name for name, p in rows.items()
                 if name != view_parent and "@" not in name and p.get("origin", "-") not in ("", "-")]
        return sorted(views, key=lambda n: -n.count("/"))

    # --- changes ------------------------------------------------------------------------------

    def create_dataset(self, dataset: str, *, mountpoint: str | None = None,
                       props: dict[str, str] | None = None) -> bool:
        """Create unless it exists (with parents). Returns True when it was created."""
        if self.exists(check_dataset(dataset)):
            return False
        self._run(create_argv(dataset, mountpoint=mountpoint, props=props))
        return True

    def mount(self, dataset: str) -> None:
        self._run(["zfs", "mount", check_dataset(dataset)])

    def import_pool(self, pool: str, *, force: bool = False) -> bool:
        """True when the pool was imported now; False when no device holds it (yet)."""
        return self._run(import_argv(pool, force=force), ok_codes=(0, 1)).returncode == 0

    def importable(self) -> dict[str, str]:
        """The pools on this machine's disks that are not imported ({} when none): read-only."""
        r = self._run(["zpool", "import"], mutating=False, ok_codes=(0, 1))
        return parse_importable(r.stdout + "\n" + r.stderr)

    def snapshot(self, dataset: str, name: str, *, recursive: bool = True) -> str:
        """One atomic snapshot of `dataset` (and, recursive, every descendant) named `name`."""
        self._run(snapshot_argv(dataset, name, recursive=recursive))
        return f"{dataset}@{name}"

    def destroy_snapshot(self, snapshot: str, *, recursive: bool = False) -> None:
        """Destroy `dataset@name` (recursive: the same name on every descendant). Never a dataset."""
        dataset, name = split_snapshot(snapshot)
        self._destroy(destroy_snapshot_argv(dataset, name, recursive=recursive))

    def destroy_recursive_snapshot(self, dataset: str, name: str, *, prefix: str) -> None:
        """What the automatic cycle uses: only snapshots named `<prefix>-...` are destroyed."""
        if not prefix or not name.startswith(prefix + "-"):
            raise ValidationError(f"refusing to destroy {dataset}@{name}: not created by this tool "
                                  f"(its snapshots are named {prefix}-...)")
        self.destroy_snapshot(f"{dataset}@{name}", recursive=True)

    def destroy_ours(self, snapshot: str, *, prefix: str) -> None:
        """One snapshot (not its descendants' namesakes), only when its name has our prefix."""
        dataset, name = split_snapshot(snapshot)
        if not prefix or not name.startswith(prefix + "-"):
            raise ValidationError(f"refusing to destroy {snapshot}: not created by this tool "
                                  f"(its snapshots are named {prefix}-...)")
        self.destroy_snapshot(snapshot)

    def written_since(self, snapshot: str, earlier: str) -> int | None:
        """Bytes written to the dataset between snapshot `earlier` (a name) and `snapshot`
        (dataset@name), from OpenZFS's `written@<earlier>`. None where the property does not
        exist (zfs-fuse, pool version 23): the caller must find out another way."""
        dataset, _ = split_snapshot(snapshot)
        r = self._run(["zfs", "get", "-H", "-p", "-o", "value", f"written@{check_snapshot_name(earlier)}",
                       snapshot], mutating=False, ok_codes=(0, 1, 2))
        value = r.stdout.strip()
        return int(value) if r.returncode == 0 and value.isdigit() else None

    def rollback(self, dataset: str, name: str) -> None:
        self._run(rollback_argv(dataset, name))

    def ensure_view_parent(self, parent: str) -> None:
        """The dataset the views live under. It holds nothing itself: no mountpoint, never mounted."""
        if not self.exists(parent):
            self._run(create_argv(parent, props={"mountpoint": "none", "canmount": "off"}))

    def create_view(self, snapshot: str, view: str, path, *, readonly: bool = True) -> None:
        """A read-only clone of `snapshot` mounted at `path` (a stable path for borg). The view
        parent must exist (ensure_view_parent, once per run). `readonly=False`: writable until
        `set_readonly` (the backup adds the stack folder first)."""
        try:
            self._run(clone_argv(snapshot, view, str(path), readonly=readonly))
            if not self.is_mounted(view) and not self.runner.dry_run:
                self.mount(view)
        except OrchestratorError as exc:
            self._undo_made(view, exc, lambda: self.destroy_view(view))
            raise

    def set_readonly(self, view: str) -> None:
        self._run(["zfs", "set", "readonly=on", check_dataset(view)])

    def create_scratch(self, parent: str, name: str, mountpoint) -> str:
        """An empty dataset `<parent>/drill-<name>` mounted at `mountpoint`, for a restore drill.
        Below the view parent: outside the snapshotted tree and never a service dataset."""
        dataset = check_dataset(f"{parent}/{SCRATCH_PREFIX}{name}")
        try:
            self._run(create_argv(dataset, mountpoint=str(mountpoint), parents=False))
            if not self.is_mounted(dataset) and not self.runner.dry_run:
                self.mount(dataset)
        except OrchestratorError as exc:
            self._undo_made(dataset, exc, lambda: self.destroy_scratch(parent, dataset))
            raise
        return dataset

    def _undo_made(self, name: str, error: OrchestratorError, destroy: Callable[[], None]) -> None:
        """A create or clone that failed, or was killed, after ZFS had made the dataset (chaos,
        seed 37: `zfs create` SIGKILLed) leaves nothing: what it made is destroyed, never what was
        there before ("already exists": it made nothing). A destroy that fails too is left to the
        next run's leftover cleanup."""
        if "already exists" in str(error) or self.runner.dry_run:
            return
        try:
            if self.exists(name):
                destroy()
        except OrchestratorError:
            pass

    def list_scratch(self, parent: str) -> list[str]:
        if not self.exists(parent):
            return []
        return [d.name for d in self.list_datasets(parent)
                if d.name.rpartition("/")[0] == parent and d.name.rpartition("/")[2].startswith(SCRATCH_PREFIX)]

    def destroy_scratch(self, parent: str, dataset: str) -> None:
        """Unmount and destroy a drill's scratch dataset; refuses anything else."""
        head, _, tail = dataset.rpartition("/")
        if head != parent or not tail.startswith(SCRATCH_PREFIX):
            raise ValidationError(f"refusing to destroy {dataset}: not a drill scratch dataset below {parent}")
        if self.is_mounted(dataset):
            self._unmount_before_destroy(dataset)
        self._destroy(["zfs", "destroy", check_dataset(dataset)])

    def clear_leftovers(self, view_parent: str) -> list[str]:
        """Destroy what a killed run left below the view parent: its views (clones), then a
        drill's scratch datasets; nothing else (destroy_view and destroy_scratch refuse it).
        Call it holding the run lock. Returns what was destroyed."""
        removed = []
        for view in self.list_views(view_parent):
            self.destroy_view(view)
            removed.append(view)
        for dataset in self.list_scratch(view_parent):
            self.destroy_scratch(view_parent, dataset)
            removed.append(dataset)
        return removed

    def destroy_view(self, view: str) -> None:
        """Unmount and destroy a clone. Refuses a dataset without an origin (real data)."""
        props = self._props(view, ("origin", "mounted")).get(view, {})
        if props.get("origin", "-") in ("", "-"):
            raise ValidationError(f"refusing to destroy {view}: it is not a clone made by this tool")
        if props.get("mounted") == "yes":
            self._unmount_before_destroy(view)
        self._destroy(["zfs", "destroy", view], unmount=view)

    def _unmount_before_destroy(self, dataset: str) -> None:
        """An unmount ahead of a destroy of ours. One that fails, or is killed (chaos, seed 37,
        step 147 again: `zfs unmount` of restore-path's clone SIGKILLed), does not stop the
        destroy: `zfs destroy` unmounts what it can, and its answer is the one that counts."""
        try:
            self._run(["zfs", "unmount", dataset], ok_codes=(0, 1))
        except CommandError as exc:
            log.warning("`zfs unmount %s` failed (%s); the destroy decides", dataset, exc.reason)

    def _destroy(self, argv: list[str], *, unmount: str | None = None) -> None:
        """Retry a destroy that met a transient state (TRANSIENT), bounded (about 7 s in all); a
        view still mounted after a busy answer is unmounted again before the next try."""
        for attempt in range(BUSY_RETRIES):
            try:
                self._run(argv)
                return
            except CommandError as exc:
                if not any(t in (exc.stderr_tail or "") for t in TRANSIENT) or attempt == BUSY_RETRIES - 1:
                    raise
                time.sleep(0.25 * (attempt + 1))
                if unmount and self.is_mounted(unmount):
                    self._unmount_before_destroy(unmount)


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return 0


# --- pools: create, attach, status ------------------------------------------------------------
#
# `zpool create/attach/status/list/get` as both OpenZFS and zfs-fuse (pool version 23) take them.
# zfs-fuse has no `zpool status -p` and prints "scrub:" where OpenZFS prints "scan:"; the parser
# below reads both (tests/fixtures/zpool-status holds real outputs of each).

# What docs/storage.md recommends for the data pool: 4K sectors, and on the root dataset (inherited
# by every service dataset) lz4, no atime writes, extended attributes in the inode, POSIX ACLs.
POOL_PROPS: dict[str, str] = {"ashift": "12"}
FS_PROPS: dict[str, str] = {"compression": "lz4", "atime": "off", "xattr": "sa", "acltype": "posixacl"}
VALUE_ALIASES = {("acltype", "posixacl"): "posix"}  # OpenZFS lists `posix`, and still takes `posixacl`
REDUNDANT_VDEVS = ("mirror", "raidz", "draid")
HEALTHY_STATES = ("ONLINE", "AVAIL", "INUSE")


def check_pool_name(pool: str) -> str:
    if "/" in (pool or "") or "@" in (pool or ""):
        raise ValidationError(f"{pool!r} is not a pool name")
    return check_dataset(pool)


def pool_create_argv(pool: str, disks: list[str], *, pool_props: dict[str, str], fs_props: dict[str, str],
                     mountpoint: str | None = None, force: bool = False) -> list[str]:
    """`zpool create` of `pool`: a mirror of `disks` (two or more), or one disk (no redundancy)."""
    if not disks:
        raise ValidationError("no disk given")
    argv = ["zpool", "create", *(["-f"] if force else [])]
    for key, value in pool_props.items():
        argv += ["-o", f"{key}={value}"]
    for key, value in fs_props.items():
        argv += ["-O", f"{key}={value}"]
    if mountpoint:
        argv += ["-m", mountpoint]
    return argv + [check_pool_name(pool), *(["mirror"] if len(disks) > 1 else []), *disks]


def pool_attach_argv(pool: str, existing: str, new: str, *, force: bool = False) -> list[str]:
    """`zpool attach`: `new` becomes a mirror of `existing` (a one-disk pool turns into a mirror)."""
    return ["zpool", "attach", *(["-f"] if force else []), check_pool_name(pool), existing, new]


def pool_status_argv(pool: str) -> list[str]:
    return ["zpool", "status", check_pool_name(pool)]


def parse_supported(usage: str) -> dict[str, str]:
    """The property table `zfs get` / `zpool get` print with their usage (no arguments given):
    {property: its VALUES column}, e.g. {"compression": "on | off | lzjb | ... | zle"}."""
    table: dict[str, str] = {}
    inherit_column = None
    for line in usage.splitlines():
        words = line.split()
        if words[:2] == ["PROPERTY", "EDIT"]:
            inherit_column = len(words) > 2 and words[2] == "INHERIT"
            continue
        if inherit_column is None or len(words) < 3 or words[1] not in ("YES", "NO"):
            continue
        start = 3 if inherit_column and words[2] in ("YES", "NO") else 2
        table[words[0]] = " ".join(words[start:])
    return table


def offers(table: dict[str, str], prop: str, value: str) -> bool:
    """Does this ZFS take `prop=value`? A property missing from its table, or a value its VALUES
    column does not list, is not taken; a free-form column (`<ashift, 9-13, ...>`) takes any."""
    values = table.get(prop)
    if values is None:
        return False
    if values.startswith("<"):
        return True
    listed = {v.strip() for v in values.split("|")}
    return value in listed or VALUE_ALIASES.get((prop, value)) in listed


def split_supported(wanted: dict[str, str], table: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(what this ZFS takes, what it does not) of `wanted`."""
    kept = {k: v for k, v in wanted.items() if offers(table, k, v)}
    return kept, {k: v for k, v in wanted.items() if k not in kept}


@dataclass(frozen=True)
class Vdev:
    """One row of the config table. depth 0 is the pool (or a section: logs, cache, spares)."""

    name: str
    depth: int
    state: str
    read: int = 0
    write: int = 0
    cksum: int = 0
    note: str = ""
    section: str = ""  # "" for the data vdevs, else logs | cache | spares | special | dedup

    @property
    def errors(self) -> int:
        return self.read + self.write + self.cksum


@dataclass(frozen=True)
class Scan:
    """The last scrub or resilver as `zpool status` says it."""

    kind: str  # none | scrub | resilver
    state: str  # none | finished | in_progress | canceled | paused
    text: str = ""
    errors: int | None = None  # errors the finished scan found
    end: float | None = None  # unix time it finished (read in local time, as zpool printed it)


@dataclass(frozen=True)
class PoolStatus:
    pool: str
    state: str
    status: str = ""
    action: str = ""
    scan: Scan = Scan("none", "none")
    vdevs: tuple[Vdev, ...] = ()
    errors: str = ""  # the `errors:` line

    @property
    def top_level(self) -> list[Vdev]:
        """The data vdevs right below the pool: mirror-0, raidz1-0, or bare disks."""
        return [v for v in self.vdevs if v.depth == 1 and not v.section]

    @property
    def redundant(self) -> bool | None:
        """True when every data vdev is a mirror/raidz/draid; False when any is a bare disk (ZFS
        then detects corruption but cannot repair it); None when zpool listed none."""
        top = self.top_level
        if not top:
            return None
        return all(v.name.startswith(REDUNDANT_VDEVS) for v in top)

    @property
    def layout(self) -> str:
        """`mirror of 2 disks`, `1 disk`, `stripe of 2 disks`, `raidz1-0 of 3 disks`, ..."""
        top = self.top_level
        if not top:
            return "no data vdev listed"
        if not self.redundant:
            return "1 disk" if len(top) == 1 else f"stripe of {len(top)} disks, no mirror"
        parts = []
        for v in top:
            legs = self.children(v)
            kind = "mirror" if v.name.startswith("mirror") else v.name.rsplit("-", 1)[0]
            parts.append(f"{kind} of {len(legs)} disks")
        return ", ".join(parts)

    def children(self, parent: Vdev) -> list[Vdev]:
        i = self.vdevs.index(parent)
        out = []
        for v in self.vdevs[i + 1:]:
            if v.depth <= parent.depth or v.section != parent.section:
                break
            if v.depth == parent.depth + 1:
                out.append(v)
        return out

    @property
    def unhealthy(self) -> list[Vdev]:
        """Rows (pool, vdevs, disks) not ONLINE (spares: not AVAIL/INUSE)."""
        return [v for v in self.vdevs if v.state and v.state not in HEALTHY_STATES]

    @property
    def with_errors(self) -> list[Vdev]:
        """Rows whose READ, WRITE or CKSUM count is not zero."""
        return [v for v in self.vdevs if v.errors]


SECTIONS = ("logs", "cache", "spares", "special", "dedup")
_FINISHED = re.compile(r"^(scrub repaired|resilvered)\s+(?:\(\S+\)\s+)?\S+\s+in\s+.+?\s+with\s+(\d+)\s+errors?"
                       r"(?:\s+on\s+(.+))?$")
_FUSE_FINISHED = re.compile(r"^(scrub|resilver) completed after\s+\S+\s+with\s+(\d+)\s+errors?\s+on\s+(.+)$")


def _count(text: str) -> int:
    """READ/WRITE/CKSUM: `0`, `12`, or without -p a rounded `1.05K`, `2M`."""
    text = text.strip()
    scale = {"K": 10 ** 3, "M": 10 ** 6, "G": 10 ** 9, "T": 10 ** 12}
    try:
        if text and text[-1].upper() in scale:
            return int(float(text[:-1]) * scale[text[-1].upper()])
        return int(text)
    except ValueError:
        return 0


def _ctime(text: str) -> float | None:
    """`Tue Dec  1 19:25:47 2026` (C's ctime, local time) -> unix time."""
    try:
        return time.mktime(time.strptime(" ".join(text.split()), "%a %b %d %H:%M:%S %Y"))
    except ValueError:
        return None


def parse_scan(text: str) -> Scan:
    """The `scan:` (OpenZFS) or `scrub:` (zfs-fuse) line, continuation lines joined."""
    text = " ".join(text.split())
    first = text.split(" ", 1)[0] if text else ""
    kind = "resilver" if first.startswith("resilver") else "scrub" if first.startswith("scrub") else "none"
    if not text or text.startswith("none requested"):
        return Scan("none", "none", text)
    m = _FINISHED.match(text) or _FUSE_FINISHED.match(text)
    if m:
        return Scan(kind, "finished", text, int(m.group(2)), _ctime(m.group(3) or ""))
    if " in progress" in text:
        return Scan(kind, "in_progress", text)
    if " paused" in text:
        return Scan(kind, "paused", text)
    if " canceled" in text or " stopped" in text:
        return Scan(kind, "canceled", text)
    return Scan(kind, "unknown", text)


def parse_pool_status(text: str) -> PoolStatus:
    """One pool's `zpool status POOL` (OpenZFS 2.x or zfs-fuse), as printed without -p."""
    fields: dict[str, str] = {}
    config: list[str] = []
    key = None
    for raw in text.splitlines():
        line = raw.expandtabs(8)
        stripped = line.strip()
        m = re.match(r"^\s*(pool|state|status|action|see|scan|scrub|config|errors):\s?(.*)$", line)
        if m and not (key == "config" and m.group(1) not in ("errors",)):
            key = m.group(1)
            fields[key] = m.group(2).strip()
            continue
        if key == "config":
            if stripped:
                config.append(line)
        elif key and stripped:
            fields[key] = f"{fields[key]} {stripped}".strip()
    vdevs = _parse_config(config)
    return PoolStatus(fields.get("pool", ""), fields.get("state", ""), fields.get("status", ""),
                      fields.get("action", ""), parse_scan(fields.get("scan") or fields.get("scrub") or ""),
                      tuple(vdevs), fields.get("errors", ""))


def _parse_config(lines: list[str]) -> list[Vdev]:
    base = None
    section = ""
    out: list[Vdev] = []
    for line in lines:
        words = line.split()
        if words[:2] == ["NAME", "STATE"]:
            base = len(line) - len(line.lstrip())
            continue
        if base is None:
            continue
        depth = max(0, (len(line) - len(line.lstrip()) - base) // 2)
        if depth == 0 and words[0] in SECTIONS:
            section = words[0]
            if len(words) >= 2:  # OpenZFS prints `logs` alone; some print a state beside it
                out.append(Vdev(words[0], 0, words[1] if len(words) > 1 else "", section=section))
            continue
        if depth == 0:
            section = ""
        state = words[1] if len(words) > 1 else ""
        nums = words[2:5] if len(words) >= 5 else []
        note = " ".join(words[5:]) if len(words) > 5 else " ".join(words[2:]) if len(words) > 2 and not nums else ""
        out.append(Vdev(words[0], depth, state, *(_count(n) for n in nums), note=note, section=section))
    return out
