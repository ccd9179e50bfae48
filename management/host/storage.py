"""StorageManager: the one-time host setup behind `make setup-storage` (safe to repeat).

It looks first and changes second: `plan()` only reads the host and returns the list of
changes needed; `apply()` makes them. `--dry-run` prints the plan; a second run finds
nothing to change and touches nothing (no file's ctime moves).

What it arranges (spec 004, "Secure Docker Environment Setup" and "ZFS"):
0. the pool of ZFS_PARENT_DATASET imported when its disks hold it but this system has not
   imported it (the OS disk was rebuilt, the data disk carries on): imported as it is, every
   existing dataset kept and said so, nothing in them touched. A pool last used by another
   system is not forced in: the error says how;
1. the parent dataset mounted at ZFS_BASE_MOUNTPOINT and one child dataset per service;
2. every SERVICE_VOLUME_PATHS_AND_OWNERS directory, owned by its remapped UID/GID. An existing
   directory with the right owner is left alone; a wrong owner is fixed on the directory
   itself only. Its contents are chowned only with `fix_ownership=True`, and then only the
   entries whose owner is wrong, because a chown changes ctime and makes the next backup
   read every touched file again;
3. the userns-remap user (`dockeruser`) and its ranges in /etc/subuid and /etc/subgid, merged
   with the lines already there;
4. /etc/docker/daemon.json with userns-remap and `local` log rotation (10m x 3), merged with
   the keys already there, the old file kept as a backup; docker is restarted only when the
   file changed.
"""

from __future__ import annotations

import json
import os
import pwd
import shlex
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from management.config import Settings
from management.errors import CommandError, OrchestratorError, ValidationError
from management.runner import Runner
from management.state import write_atomic
from management.text import pool_of
from management.tools.zfs import ZFSManager

DIR_MODE = 0o750
LOG_OPTS = {"max-size": "10m", "max-file": "3"}


@dataclass(frozen=True)
class Action:
    what: str  # one line for the user: what will change and why
    apply: Callable[[], None]


# --- pure helpers ----------------------------------------------------------------------------


def merge_subid(text: str, user: str, start: int, count: int) -> tuple[str, bool]:
    """Ensure `user:start:count` is in a /etc/subuid-style file. Other lines are kept as they
    are; a line for `user` that already covers the range counts as present."""
    for line in text.splitlines():
        parts = line.strip().split(":")
        if len(parts) == 3 and parts[0] == user and parts[1].isdigit() and parts[2].isdigit():
            s, c = int(parts[1]), int(parts[2])
            if s <= start and start + count <= s + c:
                return text, False
    prefix = text if not text or text.endswith("\n") else text + "\n"
    return f"{prefix}{user}:{start}:{count}\n", True


def merge_daemon_json(current: dict, remap_user: str, pool: tuple = ()) -> dict:
    """Our keys set, every other key kept. Log options merge with existing ones. The address
    pool (BASE, SIZE) is added only where daemon.json has none: pools someone chose stay."""
    merged = dict(current)
    merged["userns-remap"] = remap_user
    if pool and "default-address-pools" not in current:
        merged["default-address-pools"] = [{"base": pool[0], "size": pool[1]}]
    merged["log-driver"] = "local"
    opts = dict(current.get("log-opts") or {}) if current.get("log-driver") in (None, "local") else {}
    opts.update(LOG_OPTS)
    merged["log-opts"] = opts
    return merged


def parse_daemon_json(path: Path) -> dict:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError(f"{path}: line {exc.lineno}, column {exc.colno}: invalid JSON ({exc.msg}); "
                              "fix it by hand, nothing was changed") from None
    if not isinstance(data, dict):
        raise ValidationError(f"{path}: expected a JSON object, nothing was changed")
    return data


def wrong_owner_entries(root: Path, uid: int, gid: int) -> list[Path]:
    """Everything below `root` (not following symlinks) whose owner is not uid:gid."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            if (st.st_uid, st.st_gid) != (uid, gid):
                out.append(p)
    return out


# --- the manager -----------------------------------------------------------------------------


PARENT_PROPS = {"atime": "off"}


class StorageManager:
    def __init__(self, settings: Settings, runner: Runner, zfs: ZFSManager, echo: Callable[[str], None] = print):
        self.s = settings
        self.runner = runner
        self.zfs = zfs
        self.echo = echo
        self.kept: list[str] = []  # the datasets the last plan found and keeps

    # -- plan: read only ------------------------------------------------------------------

    def plan(self, fix_ownership: bool = False) -> list[Action]:
        return self._plan_datasets() + self._plan_rest(fix_ownership)

    def _plan_rest(self, fix_ownership: bool) -> list[Action]:
        return self._plan_directories(fix_ownership) + self._plan_remap_user() + self._plan_daemon_json()

    def _plan_pool(self, force_import: bool = False) -> list[Action]:
        """The pool is imported, or found on the disks and imported as it is (a rebuilt OS disk).
        `force_import`: also a pool another system used last (`zpool import -f`)."""
        parent = self.s.zfs_parent_dataset
        pool = pool_of(parent)
        if self.zfs.exists(pool):
            return []
        found = self.zfs.importable()
        if pool not in found:
            raise ValidationError(
                f"pool {pool} (ZFS_PARENT_DATASET={parent}) is not imported and no disk of this machine holds "
                f"it: create it first (`make setup-pool DISKS=...`, docs/storage.md) or attach its disks; "
                "nothing was changed")
        other = "another system" in found[pool]
        if other and not force_import:
            raise ValidationError(
                f"pool {pool} is on this machine's disks but was last used by another system (`zpool import` "
                f"says so: another hostid, never exported). If that system is gone (this OS disk replaces it): "
                f"`make setup-storage FORCE_IMPORT=1` (zpool import -f); if another machine may still use these "
                "disks, do not. Nothing was changed")

        def apply() -> None:
            if not self.zfs.import_pool(pool, force=force_import):
                why = self.zfs.importable().get(pool, "no longer listed by `zpool import`")
                raise OrchestratorError(f"zpool import {pool} failed: {' / '.join(why.splitlines()[:6])}; "
                                        "nothing else was changed")

        return [Action(f"import pool {pool}{' (forced: another system used it last)' if other else ''}: found on "
                       "this machine's disks, not imported here (the OS disk was rebuilt?); its datasets and "
                       "their data are kept as they are", apply)]

    def _plan_datasets(self) -> list[Action]:
        s, actions = self.s, []
        parent, base = s.zfs_parent_dataset, str(s.zfs_base_mountpoint)
        self.kept = []
        if self.zfs.exists(parent):
            mp = self.zfs.get("mountpoint", parent)
            if mp != base:
                raise ValidationError(
                    f"ZFS_PARENT_DATASET {parent} is mounted at {mp}, but ZFS_BASE_MOUNTPOINT is {base}: "
                    f"fix the .env or run `zfs set mountpoint={base} {parent}`; nothing was changed")
            self.kept.append(parent)
            if not self.zfs.is_mounted(parent):
                self._refuse_nonempty(s.zfs_base_mountpoint, parent)
                actions.append(Action(f"mount dataset {parent} (it exists but is not mounted)",
                                      lambda: self.zfs.mount(parent)))
        else:
            self._refuse_nonempty(s.zfs_base_mountpoint, parent)
            # atime=off (inherited by every service dataset): with atime on, each read is a
            # write, so OpenZFS's `written@` never says "unchanged" for a dataset an app reads
            actions.append(Action(f"create dataset {parent} mounted at {base} (atime=off)",
                                  lambda: self.zfs.create_dataset(parent, mountpoint=base, props=PARENT_PROPS)))
        for service in s.services:
            ds = s.dataset(service)
            if not self.zfs.exists(ds):
                self._refuse_nonempty(s.mountpoint(service), ds)
                actions.append(Action(f"create dataset {ds} mounted at {s.mountpoint(service)}",
                                      lambda ds=ds: self.zfs.create_dataset(ds)))
            else:
                self.kept.append(ds)
                if not self.zfs.is_mounted(ds):
                    self._refuse_nonempty(s.mountpoint(service), ds)
                    actions.append(Action(f"mount dataset {ds} (it exists but is not mounted)",
                                          lambda ds=ds: self.zfs.mount(ds)))
        return actions

    @staticmethod
    def _refuse_nonempty(path: Path, dataset: str) -> None:
        """A dataset mounted over a non-empty directory would hide what is in it."""
        if path.is_dir() and any(path.iterdir()) and not os.path.ismount(path):
            raise ValidationError(
                f"{path} already holds files but is not a dataset: creating {dataset} would hide "
                "them. Move them away (and into the dataset after setup); nothing was changed")

    def _plan_directories(self, fix_ownership: bool) -> list[Action]:
        actions = []
        for vp in self.s.volume_paths:
            path = self.s.zfs_base_mountpoint / vp.relative
            owner = f"{vp.uid}:{vp.gid}"
            try:
                st = path.lstat()
            except FileNotFoundError:
                actions.append(Action(f"create {path} owned by {owner} ({vp.uid_key})",
                                      lambda vp=vp, path=path: self._ensure_dir(path, vp.uid, vp.gid)))
                continue
            if not path.is_dir() or path.is_symlink():
                raise ValidationError(f"{path} exists but is not a directory "
                                      f"(SERVICE_VOLUME_PATHS_AND_OWNERS line {vp.line}); nothing was changed")
            if (st.st_uid, st.st_gid) != (vp.uid, vp.gid):
                actions.append(Action(
                    f"chown {path} from {st.st_uid}:{st.st_gid} to {owner} ({vp.uid_key}; the directory only"
                    f"{'' if fix_ownership else ', its contents are left alone without --fix-ownership'})",
                    lambda vp=vp, path=path: os.chown(path, vp.uid, vp.gid)))
            if fix_ownership:
                wrong = wrong_owner_entries(path, vp.uid, vp.gid)
                if wrong:
                    actions.append(Action(
                        f"chown {len(wrong)} entries below {path} to {owner} (--fix-ownership; "
                        "their next backup reads them again)",
                        lambda wrong=wrong, vp=vp: [os.lchown(p, vp.uid, vp.gid) for p in wrong]))
        return actions

    def _ensure_dir(self, path: Path, uid: int, gid: int) -> None:
        # Parents between the dataset and the directory are created root-owned (mode 0755).
        path.parent.mkdir(parents=True, exist_ok=True)
        path.mkdir(mode=DIR_MODE, exist_ok=True)
        os.chmod(path, DIR_MODE)
        os.chown(path, uid, gid)

    def _plan_remap_user(self) -> list[Action]:
        s, actions = self.s, []
        user = s.docker_remap_user
        try:
            pwd.getpwnam(user)
        except KeyError:
            argv = ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", user]
            actions.append(Action(f"create system user {user} (docker maps container users to its ranges)",
                                  lambda: self.runner.run(argv)))
        for path in (s.subuid_file, s.subgid_file):
            text = path.read_text() if path.exists() else ""
            new, changed = merge_subid(text, user, s.subid_start, s.subid_count)
            if changed:
                actions.append(Action(f"add {user}:{s.subid_start}:{s.subid_count} to {path} (other lines kept)",
                                      lambda path=path, new=new: write_atomic(path, new, mode=0o644)))
        return actions

    def _plan_daemon_json(self) -> list[Action]:
        path = self.s.docker_daemon_json
        current = parse_daemon_json(path)
        wanted = merge_daemon_json(current, self.s.docker_remap_user, self.s.docker_address_pool)
        if wanted == current:
            return []
        changed = sorted(k for k in wanted if wanted.get(k) != current.get(k))
        text = json.dumps(wanted, indent=2, sort_keys=True) + "\n"

        def apply() -> None:
            if path.exists():
                backup = path.with_name(f"{path.name}.bak-{time.strftime('%Y%m%dT%H%M%S')}")
                shutil.copy2(path, backup)
                self.echo(f"  kept the old {path.name} as {backup}")
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, text, mode=0o644)
            self._restart_docker(f"{path} changed ({', '.join(changed)})")

        return [Action(f"set {', '.join(changed)} in {path} (other keys kept), then restart docker", apply)]

    def _restart_docker(self, why: str) -> None:
        if self.s.docker_restart_command:
            argv = shlex.split(self.s.docker_restart_command)
        elif Path("/run/systemd/system").is_dir() and shutil.which("systemctl"):
            argv = ["systemctl", "restart", "docker"]
        elif shutil.which("service") and Path("/etc/init.d/docker").exists():
            argv = ["service", "docker", "restart"]
        else:
            self.echo(f"  {why}: restart dockerd yourself to apply it (no systemd or init script found)")
            return
        self.echo(f"  restarting docker because {why}")
        self.runner.run(argv, timeout=180)

    # -- at boot: wait for the pool ---------------------------------------------------------

    def missing_storage(self) -> list[str]:
        """What keeps the service datasets from being used, after one attempt to fix it: the pool
        imported by scanning (a disk that appeared after the boot's own import), every dataset
        below ZFS_PARENT_DATASET mounted. Empty when all is in place."""
        parent = self.s.zfs_parent_dataset
        pool = pool_of(parent)
        if not self.zfs.exists(parent):
            try:
                self.zfs.import_pool(pool)
            except CommandError as e:
                return [f"pool {pool}: import failed: {e.reason}"]
            if not self.zfs.exists(parent):
                return [f"{parent} not found: pool {pool} is not imported (is its disk attached?)"]
        unmounted = self.zfs.unmounted(parent)
        for ds in unmounted:
            try:
                self.zfs.mount(ds)
            except CommandError:
                pass  # reported below, tried again next round
        # asked again only when something had to be mounted (the usual boot asks once)
        return [f"{ds} is not mounted" for ds in self.zfs.unmounted(parent)] if unmounted else []

    def wait_for_storage(self, timeout: float, *, interval: float = 5.0,
                         clock: Callable[[], float] = time.monotonic,
                         sleep: Callable[[float], None] = time.sleep) -> float:
        """Block until missing_storage() is empty or `timeout` seconds passed. Returns the
        seconds waited; raises OrchestratorError naming what is still missing."""
        started = clock()
        reported = None
        while True:
            problems = self.missing_storage()
            waited = clock() - started
            if not problems:
                if reported is not None:
                    self.echo(f"wait-storage: {self.s.zfs_parent_dataset} ready after {waited:.0f}s")
                return waited
            if waited >= timeout:
                raise OrchestratorError(
                    f"storage not ready after {timeout:.0f}s (STORAGE_WAIT): {'; '.join(problems)}. "
                    "Docker is held back so that no container starts on an empty mountpoint: attach the "
                    "disk, then `systemctl start docker` or `make docker-up`")
            if reported is None or waited - reported >= 30:
                self.echo(f"wait-storage: waiting up to {timeout:.0f}s: {'; '.join(problems)}")
                reported = waited
            sleep(max(0.0, min(interval, timeout - waited)))

    # -- apply ----------------------------------------------------------------------------

    def _apply(self, actions: list[Action]) -> None:
        for action in actions:
            self.echo(f"{'would ' if self.runner.dry_run else ''}{action.what}")
            if not self.runner.dry_run:
                action.apply()

    def setup(self, fix_ownership: bool = False, force_import: bool = False) -> list[Action]:
        """Plan, then (unless dry-run) apply in order. Returns the actions (empty: nothing to do).
        A pool found on the disks is imported first; the rest is planned on what it holds."""
        found = self._plan_pool(force_import)
        self._apply(found)
        if found and self.runner.dry_run:
            self.echo("setup-storage: dry run: the datasets are planned once the pool is imported; nothing changed")
            return found
        datasets = self._plan_datasets()
        rest = self._plan_rest(fix_ownership)  # everything checked before the first change
        self._apply(datasets)
        if not self.runner.dry_run and any(a.what.startswith("mount dataset") for a in datasets):
            # what a dataset holds is seen once it is mounted: its directories exist there
            rest = self._plan_rest(fix_ownership)
        self._apply(rest)
        actions = found + datasets + rest
        if self.kept:
            self.echo(f"setup-storage: kept {len(self.kept)} existing dataset(s) as they are, their data untouched: "
                      f"{', '.join(self.kept)}")
        if not actions:
            self.echo("setup-storage: nothing to change")
        elif self.runner.dry_run:
            self.echo(f"setup-storage: dry run, {len(actions)} change(s) planned, nothing changed")
        else:
            self.echo(f"setup-storage: {len(actions)} change(s) made")
        return actions
