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

import re
import time
from dataclasses import dataclass

from management.config import validate_dataset_name
from management.errors import CommandError, ValidationError
from management.runner import Runner

SNAPSHOT_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,200}$")
ZFS_TIMEOUT = 120.0
BUSY_RETRIES = 5


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


def get_argv(prop: str, dataset: str) -> list[str]:
    return ["zfs", "get", "-H", "-p", "-o", "value", prop, dataset]


def import_argv(pool: str) -> list[str]:
    """Import `pool` by scanning the devices, not from the cache file: what zfs-import-scan does,
    and what still works when the pool's disk appeared after the boot's own import ran.
    -N mounts nothing; the caller mounts what it needs."""
    if "/" in pool:
        raise ValidationError(f"{pool!r} is not a pool name")
    return ["zpool", "import", "-N", check_dataset(pool)]


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


class ZFSManager:
    def __init__(self, runner: Runner, timeout: float = ZFS_TIMEOUT):
        self.runner = runner
        self.timeout = timeout

    def _run(self, argv: list[str], *, mutating: bool = True, ok_codes=(0,)):
        return self.runner.run(argv, mutating=mutating, timeout=self.timeout, ok_codes=ok_codes)

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

    def is_mounted(self, dataset: str) -> bool:
        r = self._run(get_argv("mounted", check_dataset(dataset)), mutating=False, ok_codes=(0, 1))
        return r.returncode == 0 and r.stdout.strip() == "yes"

    def _props(self, root: str, props: tuple[str, ...]) -> dict[str, dict[str, str]]:
        return parse_props(self._run(props_argv(root, props), mutating=False).stdout)

    def list_datasets(self, root: str) -> list[Dataset]:
        rows = self._props(root, ("mountpoint", "mounted", "used"))
        return [Dataset(name, p.get("mountpoint", "-"), p.get("mounted") == "yes", _int(p.get("used", "0")))
                for name, p in rows.items() if "@" not in name]

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

    def import_pool(self, pool: str) -> bool:
        """True when the pool was imported now; False when no device holds it (yet)."""
        return self._run(import_argv(pool), ok_codes=(0, 1)).returncode == 0

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
        self._run(clone_argv(snapshot, view, str(path), readonly=readonly))
        if not self.is_mounted(view) and not self.runner.dry_run:
            self.mount(view)

    def set_readonly(self, view: str) -> None:
        self._run(["zfs", "set", "readonly=on", check_dataset(view)])

    def create_scratch(self, parent: str, name: str, mountpoint) -> str:
        """An empty dataset `<parent>/drill-<name>` mounted at `mountpoint`, for a restore drill.
        Below the view parent: outside the snapshotted tree and never a service dataset."""
        dataset = check_dataset(f"{parent}/{SCRATCH_PREFIX}{name}")
        self._run(create_argv(dataset, mountpoint=str(mountpoint), parents=False))
        if not self.is_mounted(dataset) and not self.runner.dry_run:
            self.mount(dataset)
        return dataset

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
            self._run(["zfs", "unmount", dataset], ok_codes=(0, 1))
        self._destroy(["zfs", "destroy", check_dataset(dataset)])

    def destroy_view(self, view: str) -> None:
        """Unmount and destroy a clone. Refuses a dataset without an origin (real data)."""
        props = self._props(view, ("origin", "mounted")).get(view, {})
        if props.get("origin", "-") in ("", "-"):
            raise ValidationError(f"refusing to destroy {view}: it is not a clone made by this tool")
        if props.get("mounted") == "yes":
            self._run(["zfs", "unmount", view], ok_codes=(0, 1))
        self._destroy(["zfs", "destroy", view])

    def _destroy(self, argv: list[str]) -> None:
        """zfs-fuse reports 'dataset is busy' for a moment after an unmount: retry, bounded."""
        for attempt in range(BUSY_RETRIES):
            try:
                self._run(argv)
                return
            except CommandError as exc:
                if "busy" not in (exc.stderr_tail or "") or attempt == BUSY_RETRIES - 1:
                    raise
                time.sleep(0.2 * (attempt + 1))


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return 0
