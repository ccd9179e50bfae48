"""Time travel: one file or folder from any night, with the service running.

    versions      one timeline of a path: every local snapshot (read where it is read-only:
                  `.zfs/snapshot` on OpenZFS, a read-only clone where the pool has no `.zfs`) and
                  every archive no local snapshot stands for (`borg list ARCHIVE PATH`, nothing
                  extracted); identical neighbours collapsed
    restore_path  the chosen version copied from a snapshot (seconds), or only that path
                  extracted from an archive; staged beside the target, a safety snapshot, then
                  renamed into place; or written to TO, touching nothing live
    mount/umount  `borg mount` of a repository or one archive at MOUNT_DIR/<service>, read-only

Promises (each has a test):
- nothing outside the service's dataset is read or written for FILE: `..`, an absolute path,
  the archive's stack folder and a symlink anywhere on the live path are refused before any
  change, and never followed;
- an in-place restore takes a safety snapshot first and prints the command that undoes it;
- an interruption (SIGINT/SIGTERM) or a failure leaves the live tree as it was: the swap is
  two renames inside one critical section, the staging folder is removed on every way out;
- the stack keeps running unless STOP=1.
"""

from __future__ import annotations

import difflib
import os
import stat
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath

from management.cycles.context import Cycle
from management.cycles.frame import RunFrame
from management.cycles.history import SAFETY_PREFIX, SNAPSHOT_TIME
from management.errors import OrchestratorError, ValidationError, brief
from management.lock import SignalGuard
from management.state import CONSISTENT
from management.tools.borg import STACK_PREFIX
from management.tools.files import Files

STAGING = ".orchestrator-restore"  # a hidden folder beside the target while a version is staged
REPLACED = ".orchestrator-replaced"  # the live folder between the two renames of a swap
LIST_PARALLEL = 4  # archives listed at once
TT_VIEW = "tt-"  # read-only clones for snapshots where the pool has no .zfs (zfs-fuse)


def check_relative(text: str) -> PurePosixPath:
    """FILE as a path inside the service's dataset: relative, no `..`, not the dataset itself,
    not the archive's stack folder. Raises ValidationError naming the value."""
    if not text or "\0" in text:
        raise ValidationError(f"FILE {text!r} is empty or holds a NUL byte")
    if text.startswith("/"):
        raise ValidationError(f"FILE {text!r} is absolute; give it relative to the service's dataset "
                              "(e.g. photos/2024/cat.jpg)")
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ValidationError(f"FILE {text!r} climbs out of the service's dataset with '..'")
    if not parts:
        raise ValidationError(f"FILE {text!r} is the whole dataset: `make restore` brings a whole service back")
    if parts[0] == STACK_PREFIX:
        raise ValidationError(f"FILE {text!r} is the archived stack folder: `make restore ONLY=stack` brings it back")
    return PurePosixPath(*parts)


@dataclass(frozen=True)
class Version:
    """What a path is at one restore point. A folder: its entries below and their bytes."""

    exists: bool
    kind: str = ""  # file, folder, symlink, other
    size: int = 0
    mtime: int = 0  # seconds
    entries: int | None = None
    target: str | None = None  # a symlink's target

    def key(self) -> tuple:
        return (self.exists, self.kind, self.size, self.mtime, self.entries, self.target)

    def describe(self) -> str:
        if not self.exists:
            return "absent"
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.mtime))
        if self.kind == "folder":
            return f"folder, {self.entries} entries, {human(self.size)}, newest change {when}"
        if self.kind == "symlink":
            return f"symlink -> {self.target!r}"
        return f"{self.kind}, {human(self.size)}, modified {when}"


ABSENT = Version(False)


def human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _kind(mode: int) -> str:
    return "folder" if stat.S_ISDIR(mode) else "file" if stat.S_ISREG(mode) else \
        "symlink" if stat.S_ISLNK(mode) else "other"


def symlink_on_path(root: Path, rel: PurePosixPath, *, last: bool = True) -> str | None:
    """The first component of `rel` below `root` that is a symlink (the last one too when
    `last`), as a relative path, or None. Nothing is followed."""
    current = root
    parts = rel.parts if last else rel.parts[:-1]
    for i, part in enumerate(parts):
        current = current / part
        try:
            if stat.S_ISLNK(os.lstat(current).st_mode):
                return "/".join(rel.parts[:i + 1])
        except FileNotFoundError:
            return None
    return None


def version_at(root: Path, rel: PurePosixPath) -> Version:
    """The path's version below `root` (a snapshot's tree or the live dataset), never following
    a symlink: a symlinked parent means the path is not there."""
    if symlink_on_path(root, rel, last=False):
        return ABSENT
    path = root / rel
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return ABSENT
    kind = _kind(st.st_mode)
    if kind == "symlink":
        return Version(True, kind, 0, int(st.st_mtime), None, os.readlink(path))
    if kind != "folder":
        return Version(True, kind, st.st_size if kind == "file" else 0, int(st.st_mtime))
    entries, total, newest = 0, 0, int(st.st_mtime)
    for top, dirs, files in os.walk(path):
        for name in dirs + files:
            s = os.lstat(os.path.join(top, name))
            entries += 1
            total += s.st_size if stat.S_ISREG(s.st_mode) else 0
            newest = max(newest, int(s.st_mtime))
    return Version(True, kind, total, newest, entries)


BORG_KINDS = {"d": "folder", "-": "file", "h": "file", "l": "symlink"}


def _borg_mtime(text: str) -> int:
    try:
        return int(datetime.fromisoformat(text).timestamp())
    except (TypeError, ValueError):
        return 0


def version_from_listing(rel: PurePosixPath, items: Sequence[dict]) -> Version:
    """The path's version from `borg list --json-lines ARCHIVE PATH` (the path and, for a folder,
    every item below it), in the same terms as `version_at`."""
    top = str(rel)
    own = next((i for i in items if i.get("path") == top), None)
    if own is None:
        return ABSENT
    kind = BORG_KINDS.get(str(own.get("type", "")), "other")
    mtime = _borg_mtime(own.get("mtime", ""))
    if kind == "symlink":
        return Version(True, kind, 0, mtime, None, str(own.get("linktarget") or own.get("source") or ""))
    if kind != "folder":
        return Version(True, kind, int(own.get("size") or 0) if kind == "file" else 0, mtime)
    below = [i for i in items if str(i.get("path", "")).startswith(top + "/")]
    total = sum(int(i.get("size") or 0) for i in below if BORG_KINDS.get(str(i.get("type", ""))) == "file")
    newest = max([mtime, *(_borg_mtime(i.get("mtime", "")) for i in below)])
    return Version(True, kind, total, newest, len(below))


@dataclass
class Point:
    """A restore point: a snapshot of the dataset, or an archive no local snapshot stands for."""

    source: str  # snapshot | archive
    name: str
    time: float
    consistency: str | None = None  # consistent | crash-consistent (ours); None: not known
    archive: str | None = None  # for a snapshot: the archive made from it
    version: Version = ABSENT

    def label(self) -> str:
        also = f" (archive {self.archive})" if self.source == "snapshot" and self.archive else ""
        return f"{self.source} {self.name}{also}"


@dataclass
class Row:
    """Consecutive restore points holding the same version."""

    version: Version
    points: list[Point] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"version": asdict(self.version), "count": len(self.points),
                "first": _iso(self.points[0].time), "last": _iso(self.points[-1].time),
                "points": [{"source": p.source, "name": p.name, "time": _iso(p.time), "consistency": p.consistency,
                            "archive": p.archive} for p in self.points]}


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(t))


def collapse(points: Sequence[Point]) -> list[Row]:
    """Points oldest first -> rows, one per run of identical versions."""
    rows: list[Row] = []
    for p in points:
        if rows and rows[-1].version.key() == p.version.key():
            rows[-1].points.append(p)
        else:
            rows.append(Row(p.version, [p]))
    return rows


def parse_when(text: str) -> float | None:
    """An ISO date (the end of that day) or date and time, in local time unless it says
    otherwise; None when it is not a date (then it may name a snapshot or an archive)."""
    try:
        if len(text) == 10:
            return datetime.fromisoformat(text).timestamp() + 86399
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


@dataclass
class Timeline:
    service: str
    path: str
    live: Version
    points: list[Point]

    @property
    def rows(self) -> list[Row]:
        return collapse(self.points)

    def to_dict(self) -> dict:
        return {"service": self.service, "path": self.path, "live": asdict(self.live),
                "versions": [r.to_dict() for r in self.rows]}

    def lines(self) -> list[str]:
        snaps = sum(p.source == "snapshot" for p in self.points)
        out = [f"{self.service}: {self.path!r}: {len(self.rows)} version(s) in {len(self.points)} restore point(s) "
               f"({snaps} local snapshot(s), {len(self.points) - snaps} archive(s)), oldest first"]
        for row in self.rows:
            first, last = row.points[0], row.points[-1]
            span = time.strftime("%Y-%m-%d %H:%M", time.localtime(first.time))
            if len(row.points) > 1:
                span += f" .. {time.strftime('%Y-%m-%d %H:%M', time.localtime(last.time))} (x{len(row.points)})"
            out.append(f"  {span}  {row.version.describe()}")
            out.append(f"      {last.label()}" + (f" [{last.consistency}]" if last.consistency else ""))
        out.append(f"  live              {self.live.describe()}")
        return out


@dataclass
class PathRestored:
    service: str
    path: str
    point: Point
    destination: str
    safety_snapshot: str = ""
    existed: bool = True
    swapped: bool = False  # the version is in place (or at TO)
    notes: list[str] = field(default_factory=list)
    not_started: str = ""  # why the stack stopped around the swap (--stop) did not start again

    def undo(self) -> str:
        if not self.safety_snapshot:
            return ""
        if not self.existed:
            return f"rm -r -- {self.destination!r}   (it did not exist before)"
        return (f"make restore-path SERVICE_NAME={self.service} FILE={self.path!r} "
                f"WHEN={self.safety_snapshot.partition('@')[2]} YES=1")


class Trees:
    """The snapshot trees of one service's dataset, read-only, each opened on first use:
    `.zfs/snapshot/<name>` where the pool has one (OpenZFS), else a read-only clone each
    (zfs-fuse), destroyed on the way out."""

    def __init__(self, travel: TimeTravel, service: str):
        self.travel, self.service = travel, service
        self._roots: dict[str, Path] = {}
        self._made: list[str] = []
        snapdir = travel.s.mountpoint(service) / ".zfs" / "snapshot"
        self._snapdir = snapdir if snapdir.is_dir() else None

    def __enter__(self) -> Trees:
        return self

    def __exit__(self, *exc) -> None:
        for view in self._made:
            try:
                self.travel.zfs.destroy_view(view)
            except OrchestratorError as e:
                self.travel.echo(f"warning: could not remove the read-only clone {view}: {brief(e)}")

    def root(self, name: str) -> Path:
        if name not in self._roots:
            self._roots[name] = self._snapdir / name if self._snapdir else self._clone(name)
        return self._roots[name]

    def opened(self) -> list[Path]:
        return list(self._roots.values())

    def _clone(self, name: str) -> Path:
        s, zfs = self.travel.s, self.travel.zfs
        if not self._made:
            zfs.ensure_view_parent(s.view_dataset)
        i = len(self._made)
        view = f"{s.view_dataset}/{TT_VIEW}{self.service}-{i}"
        path = s.view_mountpoint / f".{TT_VIEW}{self.service}-{i}"
        if zfs.exists(view):
            zfs.destroy_view(view)  # a killed run's
        zfs.create_view(f"{s.dataset(self.service)}@{name}", view, path, readonly=True)
        self._made.append(view)
        return path


class TimeTravel(Cycle):
    last: PathRestored | None = None  # the restore under way, for a caller that sees it interrupted

    # -- reading restore points --------------------------------------------------------------

    def _snapshot_points(self, service: str) -> list[Point]:
        """Every snapshot of the dataset, oldest first, versions unread (ours with their
        consistency and the archive made from each, a safety snapshot, a user's own). No borg."""
        dataset = self.s.dataset(service)
        history = {p.snapshot: p for p in self.state.history().get(service, [])}
        kept = self.state.kept().get(service)
        snaps: list[Point] = []
        for snap in self.zfs.snapshots(dataset):
            ds, _, name = snap.name.partition("@")
            if ds != dataset:
                continue
            point = history.get(name)
            is_kept = kept is not None and kept.snapshot == name
            archive = point.archive if point else (kept.archive if is_kept else None)
            consistency = point.consistency if point else (CONSISTENT if is_kept else None)
            snaps.append(Point("snapshot", name, float(point.time) if point else float(snap.creation),
                               consistency, archive))
        return sorted(snaps, key=lambda p: (p.time, p.name))

    def _archive_points(self, service: str, snaps: Sequence[Point]) -> list[Point]:
        """The archives no local snapshot stands for (one `borg list` of the repository), oldest first."""
        covered = {p.archive for p in snaps if p.archive}
        return sorted((Point("archive", str(a["name"]), _archive_time(a)) for a in self.borg.list_archives(service)
                       if str(a.get("name", "")).startswith(f"{service}-") and a["name"] not in covered),
                      key=lambda p: p.time)

    def _read_archives(self, service: str, rel: PurePosixPath, points: Sequence[Point]) -> None:
        def one(p: Point) -> None:
            p.version = version_from_listing(rel, self.borg.list_path(service, p.name, str(rel)))

        with ThreadPoolExecutor(max_workers=max(1, min(LIST_PARALLEL, len(points))), thread_name_prefix="list") as pool:
            list(pool.map(one, points))

    def _check_service(self, service: str) -> None:
        if service not in self.s.services:
            raise ValidationError(f"unknown service {service!r}; known: {', '.join(self.s.services)}")

    def versions(self, service: str, file: str) -> Timeline:
        """One timeline of FILE in SERVICE's dataset, read-only: every snapshot read, every archive
        no snapshot stands for listed at that path (a few at once)."""
        rel = check_relative(file)
        self._check_service(service)
        with RunFrame(self, "versions", signals=False), Trees(self, service) as trees:
            snaps = self._snapshot_points(service)
            archives = self._archive_points(service, snaps)
            for p in snaps:
                p.version = version_at(trees.root(p.name), rel)
            self._read_archives(service, rel, archives)
            live = version_at(self.s.mountpoint(service), rel)
            found = Timeline(service, str(rel), live,
                             sorted(snaps + archives, key=lambda p: (p.time, p.source != "archive")))
            if not any(p.version.exists for p in found.points) and not live.exists:
                raise ValidationError(self._nowhere(service, rel, trees))
        return found

    def _nowhere(self, service: str, rel: PurePosixPath, trees: Trees) -> str:
        """No version holds the path: say so with the nearest names that exist (live, and in the
        snapshot trees already open)."""
        names: set[str] = set()
        for root in [self.s.mountpoint(service), *trees.opened()]:
            folder = root / rel.parent
            try:
                if not symlink_on_path(root, rel, last=False):
                    names |= {(rel.parent / n).as_posix() for n in os.listdir(folder)}
            except OSError:
                continue
        names.discard(STACK_PREFIX)
        near = difflib.get_close_matches(str(rel), sorted(names), n=5, cutoff=0.5)
        hint = f"; nearest that exist: {', '.join(map(repr, near))}" if near else ""
        return f"{service}: no snapshot, archive or live tree holds {str(rel)!r}{hint}"

    # -- restore-path --------------------------------------------------------------------------

    def restore_path(self, service: str, file: str, when: str | None = None, to: Path | None = None,
                     stop: bool = False) -> PathRestored:
        rel = check_relative(file)
        self._check_service(service)
        mountpoint = self.s.mountpoint(service)
        if to is not None:
            to = Path(os.path.abspath(to))
            if to == mountpoint or mountpoint in to.parents or Path(os.path.realpath(to)).is_relative_to(
                    os.path.realpath(mountpoint)):
                raise ValidationError(f"TO={to} is inside {service}'s dataset ({mountpoint}); restore there in "
                                      "place (no TO), or pick a folder outside it")
            if os.path.lexists(to / rel.name):
                raise ValidationError(f"{to / rel.name} exists; TO= must not already hold {rel.name!r}")
        else:
            link = symlink_on_path(mountpoint, rel)
            if link:
                raise ValidationError(f"{service}: {link!r} on the live path is a symlink; it is never followed "
                                      "(restore with TO= into a folder outside the dataset, then move it yourself)")
        with RunFrame(self, "restore-path") as frame, Trees(self, service) as trees:
            guard = frame.guard
            live = version_at(mountpoint, rel)
            snaps = self._snapshot_points(service)
            point = self._quick(service, rel, snaps, trees, live, when) or self._walk(service, rel, snaps, trees,
                                                                                    live, when)
            self.echo(f"{service}: {str(rel)!r} from {point.label()}"
                      + (f": {point.version.describe()}" if point.version.exists else ""))
            return self._put(service, rel, point, trees, to, stop, guard, existed=live.exists)

    def _quick(self, service: str, rel: PurePosixPath, snaps: list[Point], trees: Trees, live: Version,
               when: str | None) -> Point | None:
        """The answer without asking borg, when there is one: WHEN names a snapshot, or an archive
        (a local snapshot of ours made it, or only that path is extracted from it: no listing);
        or a snapshot taken since the newest night this tool recorded is the answer: those are
        the newest restore points (every archive was made from a night's snapshot, and the
        night's snapshot outlives its archive's predecessor)."""
        if when:
            named = [p for p in snaps if p.name == when] or [p for p in snaps if p.archive == when]
            if named:
                named[-1].version = version_at(trees.root(named[-1].name), rel)
                if not named[-1].version.exists:
                    raise ValidationError(f"{when} does not hold {str(rel)!r}")
                return named[-1]
            if when.startswith(f"{service}-") and parse_when(when) is None:
                return Point("archive", when, 0.0)  # its version is known once extracted
        nights = [p.time for p in self.state.history().get(service, [])]
        kept = self.state.kept().get(service)
        known = max(nights + ([next((p.time for p in snaps if p.name == kept.snapshot), 0.0)] if kept else []),
                    default=None)
        if known is None:
            return None
        # the snapshots since the newest night (it, a safety snapshot, one of yours): newer than
        # every archive's contents; newest first, the first that answers is the answer
        at = parse_when(when) if when else None
        if when and (at is None or snaps[-1].time > at):
            return None
        for p in reversed([p for p in snaps if p.time >= known]):
            p.version = version_at(trees.root(p.name), rel)
            if p.version.exists and (when or p.version.key() != live.key()):
                return p
            if when:
                return None  # the newest at or before WHEN does not hold it: the rest decide
        return None

    def _walk(self, service: str, rel: PurePosixPath, snaps: list[Point], trees: Trees, live: Version,
              when: str | None) -> Point:
        """Every restore point, newest first, each read only when reached: the first at or before
        WHEN that holds the path, or (no WHEN) the first that differs from live."""
        at = parse_when(when) if when else None
        if when and at is None:
            raise ValidationError(f"WHEN {when!r} is neither a date (2026-12-01, 2026-12-01T14:00) nor the name "
                                  "of a snapshot or archive `make versions` lists")
        points = sorted(snaps + self._archive_points(service, snaps), key=lambda p: (p.time, p.source != "archive"))
        for p in reversed(points):
            if at is not None and p.time > at:
                continue
            if p.source == "snapshot":
                p.version = version_at(trees.root(p.name), rel)
            else:
                p.version = version_from_listing(rel, self.borg.list_path(service, p.name, str(rel)))
            if p.version.exists and (at is not None or p.version.key() != live.key()):
                return self._nearest_snapshot(p, snaps, trees, rel)
        held = any(p.version.exists for p in points)
        if at is not None and held:
            raise ValidationError(f"no restore point at or before {when} holds {str(rel)!r}")
        if at is not None and points and not any(p.time <= at for p in points):
            raise ValidationError(f"no restore point at or before {when}: the oldest is {points[0].label()}")
        if held:
            raise ValidationError("every restore point holds the same version as live: nothing to restore "
                                  "(WHEN= picks one anyway)")
        raise ValidationError(self._nowhere(service, rel, trees))

    def _nearest_snapshot(self, point: Point, snaps: Sequence[Point], trees: Trees, rel: PurePosixPath) -> Point:
        """An archive point, or the local snapshot that holds the very same version (a copy beats
        an extraction): the snapshot of the same night when there is one."""
        if point.source == "snapshot":
            return point
        for p in sorted(snaps, key=lambda p: abs(p.time - point.time))[:2]:
            if version_at(trees.root(p.name), rel).key() == point.version.key():
                p.version = point.version
                return p
        return point

    def _put(self, service: str, rel: PurePosixPath, point: Point, trees: Trees, to: Path | None, stop: bool,
             guard: SignalGuard, *, existed: bool) -> PathRestored:
        mountpoint = self.s.mountpoint(service)
        stamp = time.strftime(SNAPSHOT_TIME, time.gmtime(self.clock()))
        target = (to / rel.name) if to is not None else mountpoint / rel
        done = self.last = PathRestored(service, str(rel), point, str(target), existed=existed)
        stopped = False
        with ExitStack() as stack:
            if to is None:
                self._make_parents(mountpoint, rel, trees.root(point.name) if point.source == "snapshot" else None,
                                   done)
                safety = f"{SAFETY_PREFIX}-{stamp}"
                n = 1
                while self.zfs.exists(f"{self.s.dataset(service)}@{safety}"):  # an undo in the same second
                    n += 1
                    safety = f"{SAFETY_PREFIX}-{stamp}-{n}"
                self.zfs.snapshot(self.s.dataset(service), safety, recursive=False)
                done.safety_snapshot = f"{self.s.dataset(service)}@{safety}"
                self.echo(f"{service}: safety snapshot {done.safety_snapshot}")
            else:
                to.mkdir(parents=True, exist_ok=True)
            staging = target.parent / f"{STAGING}-{stamp}"
            staging.mkdir()
            stack.callback(self._remove, staging)
            if point.source == "snapshot":
                staged = staging / rel.name
                Files(self.runner).copy_path(trees.root(point.name) / rel, staged)
            else:
                if not self.borg.extract(service, point.name, staging, paths=(str(rel),), sparse=True, force=True):
                    raise ValidationError(f"{point.name} does not hold {str(rel)!r} (`make versions` lists what does)")
                staged = staging / rel
                point.version = version_at(staging, rel)
            if stop and to is None:
                with guard.critical():
                    stopped = self._stop(service)
            try:
                with guard.critical():  # the swap: both renames or neither
                    self._swap(staged, target, stamp)
                    done.swapped = True
            finally:
                if stopped:
                    self._start(service, done)
        self.echo(f"{service}: {target} is back as of {point.label()}")
        return done

    def _make_parents(self, mountpoint: Path, rel: PurePosixPath, snap_root: Path | None, done: PathRestored) -> None:
        """Folders on the way to the target that are gone live are made again, with the owner and
        mode the snapshot gives them (or the nearest live folder's)."""
        current, like = mountpoint, os.lstat(mountpoint)
        for part in rel.parts[:-1]:
            current = current / part
            if os.path.lexists(current):
                like = os.lstat(current)
                continue
            source = (snap_root / current.relative_to(mountpoint)) if snap_root else None
            if source is not None and source.is_dir() and not source.is_symlink():
                like = os.lstat(source)
            current.mkdir(mode=stat.S_IMODE(like.st_mode))
            os.chown(current, like.st_uid, like.st_gid)
            os.chmod(current, stat.S_IMODE(like.st_mode))
            done.notes.append(f"made the folder {current} again")

    def _swap(self, staged: Path, target: Path, stamp: str) -> None:
        if not os.path.lexists(target):
            os.rename(staged, target)
            return
        if not stat.S_ISDIR(os.lstat(target).st_mode) and not stat.S_ISDIR(os.lstat(staged).st_mode):
            os.replace(staged, target)  # one atomic rename
            return
        aside = target.parent / f"{REPLACED}-{stamp}-{target.name}"
        os.rename(target, aside)
        try:
            os.rename(staged, target)
        except OSError:
            os.rename(aside, target)
            raise
        self._remove(aside)  # the safety snapshot holds it

    def _remove(self, path: Path) -> None:
        if os.path.lexists(path):
            Files(self.runner).remove_tree(path)

    def _stop(self, service: str) -> bool:
        if service not in self.docker.running_stacks():
            return False
        self.echo(f"{service}: stopping the stack (STOP=1)")
        for result in self.docker.stop([service]):
            if not result.ok:
                raise OrchestratorError(f"{service}: could not stop the stack: {result.message}; nothing was changed")
        return True

    def _start(self, service: str, done: PathRestored) -> None:
        for result in self.docker.start([service]):
            if not result.ok:
                done.not_started = result.message

    # -- borg mount ---------------------------------------------------------------------------

    def mount_point(self, service: str) -> Path:
        return self.s.mount_dir / service

    def mount(self, service: str, archive: str | None = None) -> Path:
        self._check_service(service)
        path = self.mount_point(service)
        if os.path.ismount(path):
            raise ValidationError(f"{service}: {path} is mounted already; `make umount SERVICE_NAME={service}` first")
        path.mkdir(parents=True, exist_ok=True)
        self.borg.mount(service, path, archive)
        return path

    def mounted(self) -> list[str]:
        """The services whose repository is mounted under MOUNT_DIR now."""
        return [svc for svc in self.s.services if os.path.ismount(self.mount_point(svc))]

    def umount(self, services: Sequence[str] | None = None) -> list[str]:
        names = list(services) if services else self.mounted()
        for svc in names:
            self._check_service(svc)
        done = []
        for svc in names:
            path = self.mount_point(svc)
            if not os.path.ismount(path):
                continue
            self.borg.umount(path)
            done.append(svc)
            try:
                path.rmdir()
            except OSError:
                pass
        return done


def _archive_time(archive: dict) -> float:
    text = str(archive.get("time") or archive.get("start") or "")
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return 0.0

