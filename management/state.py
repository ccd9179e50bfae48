"""Every file under STATE_DIR, and the only module that names one: one typed load and save
each, every write atomic (a temp file in the same directory, fsync, rename). Each JSON record
is a dataclass here (Kept, HistoryPoint, Night, PruneHold, DrillRecord, ...) that reads the
file as the tool has always written it (from_json) and writes it back the same (to_json);
nothing outside this module reads a record as a dict. Writes with a rule of their own have a
named method (record_drills, record_checks, record_updates, record_repositories, add_nights,
release_prune).

| file | written by | read by |
|---|---|---|
| last_success.json | backup (publish) | status, doctor, metrics |
| archives.json | backup (publish) | status |
| kept_snapshots.json | backup | backup, drill, status |
| compact.json | backup | backup |
| drills.json | drill (publish) | status, metrics |
| last_update.json | update (publish) | status, metrics |
| updates/<stack>/<snapshot>.json | update | update (rollback), status |
| manifest.key | backup or drill, first use | backup, drill |
| stack-copies/<snapshot>/<service>/ | backup, in the window | backup (borg phase), removed after |
| adopted.json | adopt | adopt --remove-old |
| checks.json | check-repos (publish) | status, metrics |
| nights.json | backup (publish), the last NIGHTS_KEPT runs | the status page, status, backup (the mass-change guard) |
| prune_holds.json | backup (its prune guard), prune-trusted | backup, prune-trusted, status, release-prune |
| trusted_kept.json | prune-trusted (on the trusted machine) | prune-trusted, release-prune |
| repositories.json | backup, init-repos | backup (its preflight), page |
| history.json | backup, snapshot-history (SNAPSHOT_SCHEDULE) | backup, versions, restore-path, status, doctor, page |
| compose-models/<stack>.json | status, check-stacks (compose's model and its key; mode 0600) | status, check-stacks |

(page: the status page, written after each run.) A missing JSON file reads as empty: no run
wrote it yet. One that exists but does not parse (cut short by a crash or a full disk, edited by
hand) reads as empty too, and `damaged()` names it: the night says so, rebuilds the local
history from the pool, and lets every prune wait rather than forget a hold.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

LAST_SUCCESS = "last_success.json"
ARCHIVES = "archives.json"
KEPT = "kept_snapshots.json"
COMPACT = "compact.json"
DRILLS = "drills.json"
LAST_UPDATE = "last_update.json"
UPDATES = "updates"
MANIFEST_KEY = "manifest.key"
STACK_COPIES = "stack-copies"
ADOPTED = "adopted.json"
CHECKS = "checks.json"
PRUNE_HOLDS = "prune_holds.json"
NIGHTS = "nights.json"
NIGHTS_KEPT = 30  # runs per service the status page charts
TRUSTED_KEPT = "trusted_kept.json"
REPOSITORIES = "repositories.json"
HISTORY = "history.json"
COMPOSE_MODELS = "compose-models"
JSON_FILES = (LAST_SUCCESS, ARCHIVES, KEPT, COMPACT, DRILLS, LAST_UPDATE, ADOPTED, CHECKS, PRUNE_HOLDS, NIGHTS,
              TRUSTED_KEPT, REPOSITORIES, HISTORY)
CONSISTENT, CRASH_CONSISTENT = "consistent", "crash-consistent"
UPDATE_PREFIX = "pre-update"  # the pre-update snapshots, and the records of them under updates/


def _opt_float(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _opt_int(value) -> int | None:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def _opt_str(value) -> str | None:
    return None if value is None else str(value)


@dataclass
class Kept:
    """kept_snapshots.json, per service: the snapshot its last archive was made from, kept until
    the next backup of that dataset succeeds: its name, the archive, the change digest of its data
    (`manifest`, None when it was not taken or not settled), the manifest of the stack folder that
    went into the archive (`stack`, None when it had none), and the id of the repository that holds
    the archive (`repository`)."""

    snapshot: str
    archive: str = ""
    manifest: str | None = None
    stack: dict | None = None
    repository: str | None = None

    @classmethod
    def from_json(cls, data: dict) -> Kept:
        stack = data.get("stack")
        return cls(str(data["snapshot"]), str(data.get("archive") or ""), _opt_str(data.get("manifest")),
                   stack if isinstance(stack, dict) else None, _opt_str(data.get("repository")))

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class HistoryPoint:
    """history.json, per service, oldest first: one snapshot of its dataset kept as local history
    (SNAPSHOT_RETENTION): its name, when it was taken (Unix time), whether its stack was stopped
    for it (`consistent`) or not (`crash-consistent`: a live stack, a stack that would not stop, a
    scheduled snapshot; None in a record that did not say), and the archive made from it that
    night, if any."""

    snapshot: str
    time: float
    consistency: str | None = None
    archive: str | None = None

    @classmethod
    def from_json(cls, data: dict) -> HistoryPoint:
        return cls(str(data["snapshot"]), float(data["time"]), _opt_str(data.get("consistency")),
                   _opt_str(data.get("archive")))

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class Changed:
    """What a night's archive changed against the one before (backup.night_changes): the data's
    files `added`, `modified` and `deleted` (None when the archive before was not known), the
    `files` it holds now and the `bytes` it added to the repository; `held` when the mass-change
    guard held its prune, `restored` when the night came after a restore (not weighed by the
    guard, nor for the nights after)."""

    added: int | None = None
    modified: int | None = None
    deleted: int | None = None
    files: int | None = None
    bytes: int | None = None
    held: bool = False
    restored: bool = False

    @property
    def touched(self) -> int:
        """Modified + deleted files: what the mass-change guard weighs."""
        return (self.modified or 0) + (self.deleted or 0)

    @classmethod
    def from_json(cls, data: dict) -> Changed:
        return cls(_opt_int(data.get("added")), _opt_int(data.get("modified")), _opt_int(data.get("deleted")),
                   _opt_int(data.get("files")), _opt_int(data.get("bytes")), bool(data.get("held")),
                   bool(data.get("restored")))

    def to_json(self) -> dict:
        out = asdict(self)
        for flag in ("held", "restored"):  # the file says each only when it was
            if not out[flag]:
                del out[flag]
        return out


@dataclass
class Night:
    """nights.json, per service, the last NIGHTS_KEPT backup runs oldest first: when, its result,
    its archive's size, deduplicated size and files, how long borg took, the mounts no backup
    reached, and what changed against the archive before (None when borg did not say)."""

    time: float
    result: str = ""
    bytes: int | None = None
    deduplicated: int | None = None
    files: int | None = None
    duration: float | None = None
    uncovered: int | None = None
    changed: Changed | None = None

    @classmethod
    def from_json(cls, data: dict) -> Night:
        changed = data.get("changed")
        duration = data.get("duration")
        return cls(_opt_float(data.get("time")) or 0.0, str(data.get("result") or ""), _opt_int(data.get("bytes")),
                   _opt_int(data.get("deduplicated")), _opt_int(data.get("files")),
                   float(duration) if isinstance(duration, (int, float)) else None, _opt_int(data.get("uncovered")),
                   Changed.from_json(changed) if isinstance(changed, dict) else None)

    def to_json(self) -> dict:
        out = {k: v for k, v in asdict(self).items() if k != "changed"}
        if self.changed is not None:
            out["changed"] = self.changed.to_json()
        return out


@dataclass
class UpdatePoint:
    """updates/<stack>/<snapshot>.json: what a stack ran before an update, for rollback: its
    dataset (None when it has none) and, per service, its images {ref, old, new, keep} (`keep`:
    the tag that holds the old image)."""

    dataset: str | None
    services: dict[str, dict[str, str]]

    @classmethod
    def from_json(cls, data: dict) -> UpdatePoint:
        services = data.get("services")
        return cls(_opt_str(data.get("dataset")),
                   {str(k): dict(v) for k, v in services.items() if isinstance(v, dict)}
                   if isinstance(services, dict) else {})

    def to_json(self) -> dict:
        return {"dataset": self.dataset, "services": self.services}


@dataclass
class AdoptedMove:
    """adopted.json, per stack: one mount adopt moved onto the dataset: the service and its
    target path, the kind (volume or directory), where the data was (`old`) and is (`new`), and
    when; kept until `adopt --remove-old` removes the old copy."""

    service: str
    target: str
    kind: str
    old: str
    new: str
    time: float | None = None

    @classmethod
    def from_json(cls, data: dict) -> AdoptedMove:
        return cls(str(data.get("service") or ""), str(data.get("target") or ""), str(data.get("kind") or ""),
                   str(data.get("old") or ""), str(data.get("new") or ""), _opt_float(data.get("time")))

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class ArchiveCount:
    """archives.json, per service: its archives after the last prune (`count`) and when (`time`);
    and its last archive as the prune guard compares it (`files`, `bytes`, `archive`: written
    together, by a night whose backup was good and not held; release-prune removes them)."""

    count: int | None = None
    time: float | None = None
    files: int | None = None
    bytes: int | None = None
    archive: str | None = None  # None: no baseline (the three keys are not in the file)

    @classmethod
    def from_json(cls, data: dict) -> ArchiveCount:
        return cls(_opt_int(data.get("count")), _opt_float(data.get("time")), _opt_int(data.get("files")),
                   _opt_int(data.get("bytes")), _opt_str(data["archive"]) if "archive" in data else None)

    def to_json(self) -> dict:
        out: dict = {}
        if self.count is not None or self.time is not None:
            out.update(count=self.count, time=self.time)
        if self.archive is not None:
            out.update(files=self.files, bytes=self.bytes, archive=self.archive)
        return out


@dataclass
class RepositoryRecord:
    """repositories.json, per service: what its local repository held when this tool last wrote,
    listed or created it: its `fingerprint` (id and last transaction, read from its files), its id
    (`repository`) and its archive names."""

    fingerprint: str
    repository: str = ""
    archives: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, data: dict) -> RepositoryRecord:
        return cls(str(data.get("fingerprint") or ""), str(data.get("repository") or ""),
                   tuple(str(a) for a in data.get("archives") or ()))

    def to_json(self) -> dict:
        return {"fingerprint": self.fingerprint, "repository": self.repository, "archives": list(self.archives)}


@dataclass
class DrillRecord:
    """drills.json, per service: its last restore drill, and when one last passed."""

    time: float | None
    ok: bool
    mode: str | None = None
    archive: str | None = None
    entries: int | None = None
    bytes: int | None = None
    differences: int | None = None
    message: str = ""
    last_success: float | None = None

    @classmethod
    def from_json(cls, data: dict) -> DrillRecord:
        return cls(_opt_float(data.get("time")), bool(data.get("ok")), _opt_str(data.get("mode")),
                   _opt_str(data.get("archive")), _opt_int(data.get("entries")), _opt_int(data.get("bytes")),
                   _opt_int(data.get("differences")), str(data.get("message") or ""),
                   _opt_float(data.get("last_success")))

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class CheckRecord:
    """checks.json, per service: its repository's last `borg check`, and when one last passed."""

    time: float | None
    ok: bool
    mode: str | None = None
    message: str = ""
    last_success: float | None = None

    @classmethod
    def from_json(cls, data: dict) -> CheckRecord:
        return cls(_opt_float(data.get("time")), bool(data.get("ok")), _opt_str(data.get("mode")),
                   str(data.get("message") or ""), _opt_float(data.get("last_success")))

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class UpdateRecord:
    """last_update.json, per stack: its last image update's result and when."""

    time: float
    result: str
    message: str = ""

    @classmethod
    def from_json(cls, data: dict) -> UpdateRecord:
        return cls(_opt_float(data.get("time")) or 0.0, str(data.get("result") or ""), str(data.get("message") or ""))

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class MassChange:
    """What the mass-change guard held a prune for: its words (`text`), and the version before
    the change: the archive and the local snapshot that hold it (kept until release-prune)."""

    text: str
    archive: str | None = None
    snapshot: str | None = None

    @classmethod
    def from_json(cls, data: dict) -> MassChange:
        return cls(str(data.get("text") or ""), _opt_str(data.get("archive")), _opt_str(data.get("snapshot")))

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class PruneHold:
    """A service's prune held until a person releases it (prune_holds.json): why (`reason`), since
    when, the archive it was set on, and the id of the repository it was set on (`repository`:
    a hold on a repository since replaced no longer applies; None from prune-trusted). With
    `mass_change` when the mass-change guard held it: the archive and the local snapshot from
    before, which history thinning keeps meanwhile."""

    reason: str
    since: float | None = None
    archive: str = ""
    repository: str | None = None
    mass_change: MassChange | None = None

    @classmethod
    def from_json(cls, data: dict) -> PruneHold:
        since = data.get("since")
        before = data.get("mass_change")
        return cls(str(data.get("reason") or ""), float(since) if isinstance(since, (int, float)) else None,
                   str(data.get("archive") or ""), str(data["repository"]) if data.get("repository") else None,
                   MassChange.from_json(before) if isinstance(before, dict) else None)

    def to_json(self) -> dict:
        """As prune_holds.json keeps it (the keys a hold did not have stay out)."""
        out: dict = {"reason": self.reason, "since": self.since, "archive": self.archive}
        if self.repository is not None:
            out["repository"] = self.repository
        if self.mass_change is not None:
            out["mass_change"] = self.mass_change.to_json()
        return out


@dataclass
class HistorySummary:
    """What one service's local history holds on the pool (status, doctor): the points of
    history.json whose snapshot is still there, joined with zfs's `used` of each snapshot."""

    snapshots: int = 0
    bytes: int = 0  # the sum of each snapshot's `used`: the space unique to each (shared blocks not counted)
    oldest_age: float | None = None  # seconds
    newest_age: float | None = None
    crash_consistent: int = 0
    points: list[dict] = field(default_factory=list)  # {snapshot, time, age_seconds, consistency, archive, used}


def summarize_history(points: Sequence[HistoryPoint], used: Mapping[str, int], now: float) -> HistorySummary:
    """`points` (StateStore.history() of one service) that `used` (snapshot name -> bytes, what
    zfs says of the service's dataset's snapshots) holds; a point whose snapshot is gone is left
    out, as the next night forgets it."""
    alive = sorted((p for p in points if p.snapshot in used), key=lambda p: (p.time, p.snapshot))
    if not alive:
        return HistorySummary()
    rows = [{"snapshot": p.snapshot, "time": p.time, "age_seconds": round(now - p.time, 1),
             "consistency": p.consistency or CONSISTENT, "archive": p.archive,
             "used": used[p.snapshot]} for p in alive]
    return HistorySummary(len(rows), sum(r["used"] for r in rows), rows[0]["age_seconds"], rows[-1]["age_seconds"],
                          sum(r["consistency"] == CRASH_CONSISTENT for r in rows), rows)


def write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    """Write via a temp file in the same directory and rename: never a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def read_json(path: Path) -> dict:
    """A JSON object file as a dict; a missing or unreadable one is empty."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def parses(path: Path) -> bool:
    """A missing file, or one that holds a JSON object."""
    try:
        return isinstance(json.loads(path.read_text()), dict)
    except FileNotFoundError:
        return True
    except (OSError, ValueError):
        return False


def _floats(data: dict) -> dict[str, float]:
    try:
        return {str(k): float(v) for k, v in data.items()}
    except (TypeError, ValueError):
        return {}


def _dicts(data: dict) -> dict[str, dict]:
    return {k: v for k, v in data.items() if isinstance(v, dict)}


class StateStore:
    """The run state of one host, under `root` (STATE_DIR)."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def _write(self, name: str, data: object, mode: int = 0o644, indent: int | None = 2) -> None:
        write_atomic(self.root / name, json.dumps(data, indent=indent), mode=mode)

    def path(self, name: str) -> Path:
        return self.root / name

    def damaged(self) -> list[str]:
        """The state files that exist but do not read as a JSON object: each reads as empty."""
        return [name for name in JSON_FILES if self.unreadable(name)]

    def unreadable(self, name: str) -> bool:
        """One state file (of JSON_FILES) exists but does not read as a JSON object."""
        return not parses(self.root / name)

    # -- backups ------------------------------------------------------------------------

    def last_success(self) -> dict[str, float]:
        """service -> Unix time of its last good backup."""
        return _floats(read_json(self.root / LAST_SUCCESS))

    def save_last_success(self, data: dict[str, float]) -> None:
        self._write(LAST_SUCCESS, data, indent=None)

    def archive_counts(self) -> dict[str, ArchiveCount]:
        """service -> its archives after the last prune, and the prune guard's baseline (ArchiveCount)."""
        return {k: ArchiveCount.from_json(v) for k, v in _dicts(read_json(self.root / ARCHIVES)).items()}

    def save_archive_counts(self, data: Mapping[str, ArchiveCount]) -> None:
        self._write(ARCHIVES, {k: v.to_json() for k, v in data.items()})

    def kept(self) -> dict[str, Kept]:
        """service -> its kept snapshot (entries without a snapshot name are ignored)."""
        return {k: Kept.from_json(v) for k, v in _dicts(read_json(self.root / KEPT)).items() if v.get("snapshot")}

    def save_kept(self, data: Mapping[str, Kept]) -> None:
        self._write(KEPT, {k: v.to_json() for k, v in data.items()})

    def forget_kept(self) -> bool:
        """Remove the record of kept snapshots (KEEP_LAST_SNAPSHOT=0); True when there was one."""
        try:
            (self.root / KEPT).unlink()
            return True
        except FileNotFoundError:
            return False

    def prune_holds(self) -> dict[str, PruneHold]:
        """service -> its held prune (PruneHold), until a person releases it, or until the
        repository it was set on is replaced."""
        return {k: PruneHold.from_json(v) for k, v in _dicts(read_json(self.root / PRUNE_HOLDS)).items()}

    def save_prune_holds(self, data: Mapping[str, PruneHold]) -> None:
        self._write(PRUNE_HOLDS, {k: v.to_json() for k, v in data.items()})

    def release_prune(self, service: str) -> PruneHold | None:
        """Remove the service's hold, and the size the guard compared with: the change was meant,
        so the next archive is the new baseline. Returns the hold (None when there was none)."""
        holds = self.prune_holds()
        hold = holds.pop(service, None)
        if hold is not None:
            self.save_prune_holds(holds)
            counts = self.archive_counts()
            if service in counts:
                counts[service].files = counts[service].bytes = counts[service].archive = None
            self.save_archive_counts(counts)
            kept = self.trusted_kept()
            if kept.pop(service, None) is not None:  # the archives that vanished are accepted as gone
                self.save_trusted_kept(kept)
        return hold

    def nights(self) -> dict[str, list[Night]]:
        """service -> its last NIGHTS_KEPT backup runs, oldest first."""
        return {k: [Night.from_json(n) for n in v if isinstance(n, dict)]
                for k, v in read_json(self.root / NIGHTS).items() if isinstance(v, list)}

    def add_nights(self, runs: Mapping[str, Night]) -> dict[str, list[Night]]:
        """Append one run per service, keep the last NIGHTS_KEPT of each; returns the whole history."""
        data = self.nights()
        for service, run in runs.items():
            data[service] = (data.get(service, []) + [run])[-NIGHTS_KEPT:]
        self._write(NIGHTS, {k: [n.to_json() for n in v] for k, v in data.items()}, indent=None)
        return data

    def repositories(self) -> dict[str, RepositoryRecord]:
        """service -> what its local repository held when this tool last wrote, listed or
        created it; see BackupOrchestrator._listing_from_record."""
        return {k: RepositoryRecord.from_json(v) for k, v in _dicts(read_json(self.root / REPOSITORIES)).items()}

    def save_repositories(self, data: Mapping[str, RepositoryRecord]) -> None:
        self._write(REPOSITORIES, {k: v.to_json() for k, v in data.items()})

    def record_repositories(self, records: Mapping[str, RepositoryRecord]) -> None:
        """Add `records` to what is known of the repositories (the others' records stay)."""
        known = self.repositories()
        known.update(records)
        self.save_repositories(known)

    def history(self) -> dict[str, list[HistoryPoint]]:
        """service -> its local history snapshots, oldest first (records without a snapshot name
        or a time are dropped)."""
        out: dict[str, list[HistoryPoint]] = {}
        for service, points in read_json(self.root / HISTORY).items():
            if isinstance(points, list):
                good = [HistoryPoint.from_json(p) for p in points if isinstance(p, dict) and p.get("snapshot")
                        and isinstance(p.get("time"), (int, float))]
                out[str(service)] = sorted(good, key=lambda p: (p.time, p.snapshot))
        return out

    def save_history(self, data: Mapping[str, list[HistoryPoint]]) -> None:
        self._write(HISTORY, {k: [p.to_json() for p in v] for k, v in data.items() if v})

    def trusted_kept(self) -> dict[str, list[str]]:
        """service -> the archive names the last `prune-trusted` left in its repository."""
        data = read_json(self.root / TRUSTED_KEPT)
        return {k: [str(n) for n in v] for k, v in data.items() if isinstance(v, list)}

    def save_trusted_kept(self, data: dict[str, list[str]]) -> None:
        self._write(TRUSTED_KEPT, data)

    def last_compact(self) -> dict[str, float]:
        """service -> Unix time of its repository's last `borg compact`."""
        return _floats(read_json(self.root / COMPACT))

    def save_last_compact(self, data: dict[str, float]) -> None:
        self._write(COMPACT, data, indent=None)

    def manifest_key(self) -> bytes:
        """The key for content hashes in stack manifests: 32 random bytes, mode 0600, made on
        first use."""
        path = self.root / MANIFEST_KEY
        try:
            return path.read_bytes()
        except FileNotFoundError:
            pass
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another run made it meanwhile
            return path.read_bytes()
        with os.fdopen(fd, "wb") as handle:
            handle.write(os.urandom(32))
        return path.read_bytes()

    def stack_copies(self) -> Path:
        """Where the backup keeps each stack folder as it was at the snapshot, until borg read it."""
        return self.root / STACK_COPIES

    def adopted(self) -> dict[str, list[AdoptedMove]]:
        """stack -> what adopt moved, until `adopt --remove-old` removes the old copies."""
        return {k: [AdoptedMove.from_json(m) for m in v if isinstance(m, dict)]
                for k, v in read_json(self.root / ADOPTED).items() if isinstance(v, list)}

    def save_adopted(self, data: Mapping[str, list[AdoptedMove]]) -> None:
        self._write(ADOPTED, {k: [m.to_json() for m in v] for k, v in data.items()})

    # -- compose models -----------------------------------------------------------------

    def compose_model(self, stack: str, key: str) -> str | None:
        """What `compose config` printed for `stack` when its inputs had `key` (stacks/model_key.py),
        or None: another key, or none recorded."""
        data = read_json(self.root / COMPOSE_MODELS / f"{stack}.json")
        return data["output"] if data.get("key") == key and isinstance(data.get("output"), str) else None

    def save_compose_model(self, stack: str, key: str, output: str) -> None:
        """Mode 0600: a model holds what compose interpolated, `.env`'s secrets included."""
        (self.root / COMPOSE_MODELS).mkdir(parents=True, exist_ok=True, mode=0o700)
        self._write(f"{COMPOSE_MODELS}/{stack}.json", {"key": key, "output": output}, mode=0o600, indent=None)

    # -- drills -------------------------------------------------------------------------

    def drills(self) -> dict[str, DrillRecord]:
        """service -> its last restore drill."""
        return {k: DrillRecord.from_json(v) for k, v in _dicts(read_json(self.root / DRILLS)).items()}

    def save_drills(self, data: Mapping[str, DrillRecord]) -> None:
        self._write(DRILLS, {k: v.to_json() for k, v in data.items()})

    def record_drills(self, records: Mapping[str, DrillRecord]) -> dict[str, DrillRecord]:
        """Tonight's drills over the ones before; a failed one keeps the time the service last
        passed. Returns every service's record."""
        state = self.drills()
        for service, record in records.items():
            before = state.get(service)
            if not record.ok:
                record.last_success = before.last_success if before else None
            state[service] = record
        self.save_drills(state)
        return state

    # -- repository checks --------------------------------------------------------------

    def checks(self) -> dict[str, CheckRecord]:
        """service -> its repository's last check."""
        return {k: CheckRecord.from_json(v) for k, v in _dicts(read_json(self.root / CHECKS)).items()}

    def save_checks(self, data: Mapping[str, CheckRecord]) -> None:
        self._write(CHECKS, {k: v.to_json() for k, v in data.items()})

    def record_checks(self, records: Mapping[str, CheckRecord]) -> dict[str, CheckRecord]:
        """This run's checks over the ones before; a failed one keeps the time the repository
        last passed. Returns every service's record."""
        state = self.checks()
        for service, record in records.items():
            before = state.get(service)
            if not record.ok:
                record.last_success = before.last_success if before else None
            state[service] = record
        self.save_checks(state)
        return state

    # -- updates ------------------------------------------------------------------------

    def last_update(self) -> dict[str, UpdateRecord]:
        """stack -> its last update."""
        return {k: UpdateRecord.from_json(v) for k, v in _dicts(read_json(self.root / LAST_UPDATE)).items()}

    def save_last_update(self, data: Mapping[str, UpdateRecord]) -> None:
        self._write(LAST_UPDATE, {k: v.to_json() for k, v in data.items()})

    def record_updates(self, records: Mapping[str, UpdateRecord]) -> dict[str, UpdateRecord]:
        """This run's updates over the ones before; returns every stack's record."""
        state = self.last_update()
        state.update(records)
        self.save_last_update(state)
        return state

    def update_dir(self, stack: str) -> Path:
        return self.root / UPDATES / stack

    def update_point_path(self, stack: str, snapshot: str) -> Path:
        return self.update_dir(stack) / f"{snapshot}.json"

    def update_point(self, stack: str, snapshot: str) -> UpdatePoint | None:
        """What a stack ran before update `snapshot` (its dataset and service images), or None."""
        path = self.update_point_path(stack, snapshot)
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return UpdatePoint.from_json(data) if isinstance(data, dict) else None

    def save_update_point(self, stack: str, snapshot: str, point: UpdatePoint) -> None:
        self._write(f"{UPDATES}/{stack}/{snapshot}.json", point.to_json(), mode=0o600)

    def remove_update_point(self, stack: str, snapshot: str) -> None:
        self.update_point_path(stack, snapshot).unlink()

    def update_points(self, stack: str) -> list[str]:
        """The recorded pre-update snapshots of a stack, oldest first."""
        d = self.update_dir(stack)
        return sorted(p.stem for p in d.glob(f"{UPDATE_PREFIX}-*.json")) if d.is_dir() else []
