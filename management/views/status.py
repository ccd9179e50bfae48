"""`status`: one row per service, what the tools say now joined with what the runs left behind.

A service is a dataset name from SERVICE_VOLUME_PATHS_AND_OWNERS, joined with the stack folder
of the same name when there is one (a stack folder without a dataset gets a row too). Per row:

- now, from the tools: the stack's containers running/total, state and health (docker, the
  same queries as before); the dataset mounted and its used space, and its local history
  (history.json's points whose snapshot is still there: how many, the space unique to them,
  oldest and newest, how many crash-consistent), all from ONE `zfs get -r` of the parent;
- from the run state (management.state), as the runs wrote it: the last good backup and its
  age (written by every backup), what its last night found changed (files added, modified,
  deleted: nights.json), the archive that holds it (the kept snapshot, recorded when
  KEEP_LAST_SNAPSHOT=1), the last restore drill, the last image update and the pre-update
  points `make rollback` can go back to.

Status starts no borg: the number of archives is the one the last prune reported (recorded by
every backup that pruned). A last good backup older than
STALE_AFTER hours, or none at all, is stale.

Everything here reads; nothing writes. A tool that does not answer is named in `problems`
and its columns say `?`: status never fails because one part cannot be seen.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

from management.config import Settings
from management.errors import CommandError, OrchestratorError, ValidationError
from management.state import (
    CheckRecord,
    DrillRecord,
    HistorySummary,
    PruneHold,
    StateStore,
    UpdateRecord,
    summarize_history,
)
from management.text import age, human_size
from management.verdict import VerdictInputs, pool_says, read_pool
from management.verdict import verdict as verdict_of


@dataclass
class DatasetState:
    name: str
    exists: bool | None  # None: zfs did not answer
    mounted: bool | None = None
    used: int | None = None
    mountpoint: str | None = None


@dataclass
class StackState:
    state: str  # running | partial | stopped | absent | unknown
    running: int = 0
    total: int = 0
    health: str = "-"


@dataclass
class ServiceStatus:
    service: str
    dataset: DatasetState | None  # None: a folder that is not a service (its name is not a valid project)
    stack: StackState | None  # None: no stack folder of that name
    last_backup: float | None = None  # unix time of the last good backup
    last_backup_age: float | None = None  # seconds
    last_archive: str | None = None  # the archive that holds the last good backup, when recorded
    archives: int | None = None  # the service's archives after the last prune
    stale: bool = False
    drill: dict | None = None  # the drill state entry, plus age_seconds
    check: dict | None = None  # the last repository check's entry, plus age_seconds
    update: dict | None = None  # the last update state entry, plus age_seconds
    rollback_points: list[str] = field(default_factory=list)
    # each mount's verdict (stacks.coverage), None when there is no stack folder or compose cannot read it
    coverage: list[dict] | None = None
    prune_held: PruneHold | None = None  # the prune guard's hold
    # what the last night found changed against the archive before: {added, modified, deleted,
    # files, bytes, held} (nights.json), None when no night recorded it
    changed: dict | None = None
    history: HistorySummary | None = None  # local history; None: not a service, or zfs did not answer
    verdict: str = ""  # PROTECTED or AT RISK (management.verdict)
    risks: list[str] = field(default_factory=list)  # why it is at risk

    @property
    def uncovered(self) -> list[dict]:
        """Mounts whose data no backup reaches."""
        return [c for c in self.coverage or [] if c["problem"]]

    @property
    def backed_up(self) -> bool:
        """Rows with a dataset are the ones the nightly cycle backs up."""
        return self.dataset is not None


@dataclass
class PoolState:
    """The pool ZFS_PARENT_DATASET lives in, from `zpool status`."""

    name: str
    state: str  # ONLINE, DEGRADED, FAULTED, ...
    layout: str  # "mirror of 2 disks", "1 disk", ...
    redundant: bool | None
    errors: int  # READ + WRITE + CKSUM over every row
    unhealthy: list[str]  # rows not ONLINE: "name STATE"
    scrub: dict  # {state, text, errors, time, age_seconds}: the last scan as zpool says it


@dataclass
class StatusReport:
    time: float
    stale_after_hours: int
    services: list[ServiceStatus]
    problems: list[str] = field(default_factory=list)
    pool: PoolState | None = None  # None: zpool did not answer
    history_on: bool = True  # SNAPSHOT_RETENTION is not off

    @property
    def stale(self) -> list[str]:
        return [s.service for s in self.services if s.stale]

    @property
    def uncovered(self) -> list[str]:
        return [s.service for s in self.services if s.uncovered]

    def to_dict(self) -> dict:
        rows = []
        for s in self.services:
            row = asdict(s)
            row["last_backup"] = None if not s.backed_up else {
                "time": s.last_backup, "age_seconds": _round(s.last_backup_age), "stale": s.stale,
                "archive": s.last_archive}
            del row["last_backup_age"], row["last_archive"], row["stale"]
            row["prune_held"] = s.prune_held.to_json() if s.prune_held else None  # as prune_holds.json has it
            rows.append(row)
        return {"time": self.time, "stale_after_hours": self.stale_after_hours, "stale": self.stale,
                "uncovered": self.uncovered, "services": rows, "problems": list(self.problems),
                "pool": asdict(self.pool) if self.pool else None, "history_on": self.history_on}


# --- reading what the runs left -----------------------------------------------------------------


def _with_age(record: DrillRecord | CheckRecord | UpdateRecord | None, now: float) -> dict | None:
    """A run's state record as status shows it: its fields as the file has them, and its age."""
    if record is None:
        return None
    out = record.to_json()
    out["age_seconds"] = None if record.time is None else _round(now - record.time)
    return out


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


# --- collecting -----------------------------------------------------------------------------


def row_names(settings: Settings, stacks: list[str], wanted: list[str] | None) -> list[str]:
    """Every service (the listed ones, then the other stack folders), then folders compose
    would not take as a project (no dataset: check-stacks names them); `wanted` picks some."""
    names = list(settings.services) + [s for s in stacks if s not in settings.services]
    if not wanted:
        return names
    unknown = [w for w in wanted if w not in names]
    if unknown:
        raise ValidationError(f"unknown service(s) {', '.join(map(repr, unknown))}; known: {', '.join(names)}")
    return [n for n in names if n in wanted]


def datasets(settings: Settings, zfs) -> tuple[dict[str, DatasetState], dict[str, dict[str, int]] | None,
                                               str | None]:
    """Every service's dataset and its snapshots from one `zfs get -r` of the parent: (dataset by
    service, {service: {snapshot name: used bytes}} or None when zfs did not answer, problem or None)."""
    unknown = {s: DatasetState(settings.dataset(s), None) for s in settings.services}
    try:
        found_datasets, snapshots = zfs.tree(settings.zfs_parent_dataset)
        found = {d.name: d for d in found_datasets}
    except CommandError as exc:
        if "does not exist" not in exc.stderr_tail:
            return unknown, None, f"zfs: {_last_line(exc)}"
        found, snapshots = {}, []  # no parent dataset: no service dataset either
    except OrchestratorError as exc:
        return unknown, None, f"zfs: {exc}"
    out = {}
    for service in settings.services:
        name = settings.dataset(service)
        d = found.get(name)
        out[service] = (DatasetState(name, True, d.mounted, d.used, d.mountpoint) if d
                        else DatasetState(name, False, False))
    by_dataset: dict[str, dict[str, int]] = {}
    for snap in snapshots:
        by_dataset.setdefault(snap.dataset, {})[snap.snap] = snap.used
    return out, {svc: by_dataset.get(settings.dataset(svc), {}) for svc in settings.services}, None


def _last_line(exc: OrchestratorError) -> str:
    """The tool's own last word (stderr), else the error's first line."""
    if isinstance(exc, CommandError):
        lines = [ln.strip() for ln in exc.stderr_tail.splitlines() if ln.strip()]
        if lines:
            return lines[-1]
        return f"{exc.command}: {exc.reason}"
    return str(exc).splitlines()[0]


def stacks(docker, names: list[str]) -> tuple[dict[str, StackState], str | None]:
    """The stack state of each named stack folder (docker ps / inspect), or why it is unknown."""
    if not names:
        return {}, None
    try:
        rows = docker.status(names)
    except OrchestratorError as exc:
        return {n: StackState("unknown") for n in names}, f"docker: {_last_line(exc)}"
    return {r.stack: StackState(r.state, r.running, r.total, r.health) for r in rows}, None


def pool_state(st, now: float) -> PoolState | None:
    """The pool's layout, state, error counts and last scan from one `zpool status` (verdict.read_pool)."""
    if st is None:
        return None
    scan = st.scan
    kind = "scrub" if scan.kind == "scrub" else scan.kind
    scrub = {"kind": kind, "state": scan.state, "text": scan.text, "errors": scan.errors, "time": scan.end,
             "age_seconds": _round(now - scan.end) if scan.end else None}
    return PoolState(st.pool, st.state, st.layout, st.redundant, sum(v.errors for v in st.vdevs),
                     [f"{v.name} {v.state}" for v in st.unhealthy], scrub)


def coverage(docker, names: list[str]) -> tuple[dict[str, list[dict]], str | None]:
    """Each stack's mounts with their verdicts (compose's models; no container is asked)."""
    if not names:
        return {}, None
    try:
        return {n: [c.to_dict() for c in covs] for n, covs in docker.coverage(names).items()}, None
    except OrchestratorError as exc:
        return {}, f"compose: {_last_line(exc)}"


def collect(settings: Settings, zfs, docker, wanted: list[str] | None = None,
            now: float | None = None) -> StatusReport:
    now = time.time() if now is None else now
    problems: list[str] = []
    try:
        folders = docker.discover_names()
    except OrchestratorError as exc:
        folders = []
        problems.append(f"stacks: {_last_line(exc)}")
    names = row_names(settings, folders, wanted)
    by_dataset, snapshots, problem = (datasets(settings, zfs) if any(n in settings.services for n in names)
                                      else ({}, None, None))
    if problem:
        problems.append(problem)
    by_stack, problem = stacks(docker, [n for n in names if n in folders])
    if problem:
        problems.append(problem)
    by_coverage, problem = coverage(docker, [n for n in names if n in folders])
    if problem:
        problems.append(problem)

    state = StateStore(settings.state_dir)
    inputs = VerdictInputs(settings, state)  # what the verdict reads, as publish reads it
    last, drills, checks, holds, nights = inputs.last, inputs.drills, inputs.checks, inputs.holds, inputs.nights
    kept = state.kept()
    counts = state.archive_counts()
    st = read_pool(zfs, settings.zfs_parent_dataset) if any(n in settings.services for n in names) else None
    pool = pool_state(st, now)
    updates = state.last_update()
    history = state.history()
    limit = settings.stale_after * 3600

    rows = []
    for name in names:
        row = ServiceStatus(name, by_dataset.get(name) if name in settings.services else None, by_stack.get(name))
        if row.backed_up:
            row.last_backup = last.get(name)
            row.last_backup_age = None if row.last_backup is None else now - row.last_backup
            row.stale = row.last_backup_age is None or row.last_backup_age > limit
            entry = kept.get(name)
            row.last_archive = (entry.archive or None) if entry else None
            row.archives = counts[name].count if name in counts else None
            if snapshots is not None:
                row.history = summarize_history(history.get(name, []), snapshots.get(name, {}), now)
            last_night = nights[name][-1] if nights.get(name) else None
            row.changed = last_night.changed.to_json() if last_night and last_night.changed else None
        row.drill = _with_age(drills.get(name), now)
        row.check = _with_age(checks.get(name), now)
        row.prune_held = holds.get(name)
        if row.backed_up:
            row.risks = [text for _, text in inputs.risks(name, now, pool_says(st), uncovered=len(row.uncovered))]
            row.verdict = verdict_of(row.risks)
        row.update = _with_age(updates.get(name), now)
        row.rollback_points = state.update_points(name)
        row.coverage = by_coverage.get(name)
        rows.append(row)
    return StatusReport(now, settings.stale_after, rows, problems, pool, bool(settings.snapshot_retention))


# --- rendering ------------------------------------------------------------------------------


def _stack_cell(st: StackState | None) -> str:
    if st is None:
        return "-"
    if st.state in ("absent", "unknown"):
        return "?" if st.state == "unknown" else "absent"
    return f"{st.state} {st.running}/{st.total}"


def _dataset_cells(d: DatasetState | None) -> tuple[str, str]:
    if d is None:
        return "-", "-"
    if d.exists is None:
        return "?", "?"
    if not d.exists:
        return "MISSING", "-"
    return ("mounted" if d.mounted else "NOT MOUNTED"), human_size(d.used)


def _coverage_cell(row: ServiceStatus) -> str:
    if row.coverage is None:
        return "-" if row.stack is None else "?"
    return f"{len(row.uncovered)} UNCOVERED" if row.uncovered else "ok"


def _backup_cell(row: ServiceStatus) -> str:
    if not row.backed_up:
        return "-"
    if row.last_backup is None:
        return "never STALE"
    return f"{age(row.last_backup_age)} ago" + (" STALE" if row.stale else "")


def _drill_cell(row: ServiceStatus) -> str:
    drill = row.drill
    if not drill:
        return "never" if row.backed_up else "-"
    verdict = "ok" if drill.get("ok") else "FAILED"
    return f"{verdict} {age(drill.get('age_seconds'))} ago"


def _check_cell(row: ServiceStatus) -> str:
    check = row.check
    if not check:
        return "never" if row.backed_up else "-"
    return f"{'ok' if check.get('ok') else 'FAILED'} {age(check.get('age_seconds'))} ago"


def _update_cell(update: dict | None, points: list[str]) -> str:
    text = f"{update.get('result', '?')} {age(update.get('age_seconds'))} ago" if update else "-"
    return text + (f" ({len(points)} rollback point{'s' if len(points) > 1 else ''})" if points else "")


def changed_cell(changed: dict | None) -> str:
    """`+12 ~3 -0`: the files the last night found added, modified and deleted (`-?` when the
    archive before was not known), `MASS` when the mass-change guard held it; `-` when none was
    recorded."""
    if not changed:
        return "-"
    deleted = "?" if changed.get("deleted") is None else f"{changed['deleted']:,}"
    text = f"+{changed.get('added') or 0:,} ~{changed.get('modified') or 0:,} -{deleted}"
    return text + (" MASS" if changed.get("held") else "")


def history_cell(row: ServiceStatus, history_on: bool) -> str:
    """`7 (1.2 GB, 6d..9h)`: the history snapshots, the space unique to them, the oldest and the
    newest's age, and how many are crash-consistent; `none` (or `off`), `-` for no service, `?`
    when zfs did not answer."""
    if not row.backed_up:
        return "-"
    h = row.history
    if h is None:
        return "?"
    if not h.snapshots:
        return "none" if history_on else "off"
    span = age(h.oldest_age) if h.snapshots == 1 else f"{age(h.oldest_age)}..{age(h.newest_age)}"
    crash = f", {h.crash_consistent} crash-consistent" if h.crash_consistent else ""
    return f"{h.snapshots} ({human_size(h.bytes)}, {span}{crash})"


def render(report: StatusReport) -> list[tuple[str, bool]]:
    """The table as (line, highlight) pairs; highlighted lines are stale services and services
    with data no backup reaches. The words STALE and UNCOVERED are in the text itself, so the
    table says it without colour too."""
    header = ("SERVICE", "STACK", "HEALTH", "DATASET", "USED", "COVERAGE", "LAST BACKUP", "CHANGED", "ARCHIVES",
              "HISTORY", "DRILL", "REPO CHECK", "UPDATE", "LAST ARCHIVE", "VERDICT")
    rows = [header]
    for r in report.services:
        dataset, used = _dataset_cells(r.dataset)
        rows.append((r.service, _stack_cell(r.stack), r.stack.health if r.stack else "-", dataset, used,
                     _coverage_cell(r), _backup_cell(r), changed_cell(r.changed) if r.backed_up else "-",
                     ("-" if r.archives is None else str(r.archives)) + (" HELD" if r.prune_held else ""),
                     history_cell(r, report.history_on), _drill_cell(r), _check_cell(r),
                     _update_cell(r.update, r.rollback_points),
                     r.last_archive or "-", r.verdict or "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip(), False) for row in rows]
    for i, r in enumerate(report.services, start=1):
        lines[i] = (lines[i][0], r.stale or bool(r.uncovered) or bool(r.prune_held))
    for r in report.services:
        if r.risks:
            lines.append((f"at risk: {r.service}: {'; '.join(r.risks)}", False))
        if r.prune_held:
            lines.append((f"prune held: {r.service}: {r.prune_held.reason}; every archive kept until "
                          f"`make release-prune SERVICE_NAME={r.service}`", True))
        if r.uncovered:
            lines.append((f"not backed up: {r.service}: {len(r.uncovered)} mount(s) no backup reaches "
                          f"(make check-stacks names each with its fix)", True))
    if any(r.history and r.history.snapshots for r in report.services):
        lines.append(("history: snapshots on the pool (the space unique to them, oldest..newest); "
                      "`make versions SERVICE_NAME=<service> FILE=<path>` reads them", False))
    stale = report.stale
    if stale:
        lines.append((f"stale: {', '.join(stale)} (no good backup within STALE_AFTER={report.stale_after_hours}h)",
                      True))
    if report.pool:
        lines.append(pool_line(report.pool))
    for problem in report.problems:
        lines.append((f"cannot see: {problem}", True))
    return lines


def _scrub_words(scrub: dict) -> str:
    if scrub["kind"] == "scrub" and scrub["state"] == "finished":
        when = f"{age(scrub['age_seconds'])} ago" if scrub["age_seconds"] is not None else "at an unknown time"
        return f"last scrub {when}, {scrub['errors']} error(s)"
    if scrub["kind"] == "scrub" and scrub["state"] == "in_progress":
        return "scrub in progress"
    if scrub["kind"] == "none":
        return "never scrubbed"
    return f"no scrub result (last scan: {scrub['text']})"


def pool_line(pool: PoolState) -> tuple[str, bool]:
    """`pool: datapool ONLINE, mirror of 2 disks, last scrub 3d ago, 0 error(s)`; highlighted when
    the pool is not ONLINE, has errors, no redundancy, or no recent clean scrub."""
    words = [f"pool: {pool.name} {pool.state}", pool.layout]
    if pool.unhealthy and pool.state != "ONLINE":
        words.append("not ONLINE: " + ", ".join(u for u in pool.unhealthy if not u.startswith(pool.name + " ")))
    if pool.errors:
        words.append(f"{pool.errors} read/write/checksum error(s)")
    if pool.redundant is False:
        words.append("NO REDUNDANCY (see make attach-mirror)")
    words.append(_scrub_words(pool.scrub))
    scrub = pool.scrub
    fresh = (scrub["kind"] == "scrub" and scrub["state"] in ("finished", "in_progress") and not scrub["errors"]
             and (scrub["age_seconds"] or 0) <= 35 * 86400)
    return ", ".join(words), pool.state != "ONLINE" or bool(pool.errors) or pool.redundant is False or not fresh
