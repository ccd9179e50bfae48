"""Local history: the nightly atomic snapshots (and SNAPSHOT_SCHEDULE's ones between nights) kept
on the pool by SNAPSHOT_RETENTION, so one file comes back in seconds (`versions`, `restore-path`).

    thin()     borg prune's rules applied to snapshot times: which stay
    History    records new points, thins each service's history, and makes room when the pool
               is nearly full (oldest first); `snapshot_now` is the scheduled, crash-consistent one

Promises (each has a test):
- only snapshots named with SNAPSHOT_PREFIX are ever destroyed, and only those history.json or
  tonight's run names;
- the snapshot a service's last archive was made from (KEEP_LAST_SNAPSHOT: skip-unchanged
  compares with it) is never thinned, whatever the policy or the pool's fill; nor is the one
  from before a mass change (`held`), until `release-prune`;
- a pool past POOL_FULL_PERCENT loses its oldest history first, and the run says which.
"""

from __future__ import annotations

import calendar
import re
import time
from collections.abc import Iterable, Sequence

from management.cycles.context import Cycle
from management.cycles.frame import RunFrame
from management.errors import OrchestratorError, brief
from management.state import CONSISTENT, CRASH_CONSISTENT, HISTORY, HistoryPoint
from management.text import pool_of

# borg prune's periods (borg/archiver.py PRUNING_PATTERNS), in its order, local time like borg
SAFETY_PREFIX = "restore-safety"  # the snapshot before an in-place restore or restore-path: `<prefix>-<time>`
PERIODS = (("hourly", "%Y-%m-%d %H"), ("daily", "%Y-%m-%d"), ("weekly", "%G-%V"), ("monthly", "%Y-%m"),
           ("yearly", "%Y"))
WITHIN_UNITS = {"S": 1, "H": 3600, "d": 86400, "w": 7 * 86400, "m": 31 * 86400, "y": 365 * 86400}
POOL_FULL_PERCENT = 90  # past this fill the night removes the oldest history snapshots first
SNAPSHOT_TIME = "%Y%m%dT%H%M%SZ"  # the clock in a snapshot's name, `<prefix>-<time>` (UTC)


def snapshot_time(prefix: str, name: str) -> float | None:
    """The clock `<prefix>-YYYYmmddTHHMMSSZ` was named with: the night's, the time its history
    point recorded (a night run while the clock was wrong names and records that clock, not the
    pool's). None for any other name."""
    head, _, stamp = name.rpartition("-")
    if head != prefix:
        return None
    try:
        return float(calendar.timegm(time.strptime(stamp, SNAPSHOT_TIME)))
    except ValueError:
        return None


def within_seconds(text: str) -> float:
    """`30d`, `12H`, `4w`, `6m`, `1y` as seconds (borg's keep-within units)."""
    match = re.fullmatch(r"(\d+)([SHdwmy])", text or "")
    if not match:
        raise ValueError(f"within={text!r} must look like 30d, 12H, 4w, 6m or 1y")
    return int(match.group(1)) * WITHIN_UNITS[match.group(2)]


def thin(points: Sequence[tuple[str, float]], policy: dict[str, str], now: float) -> set[str]:
    """The names that stay of `points` (name, Unix time) under `policy` (SNAPSHOT_RETENTION:
    within, hourly, daily, ... as borg prune reads them): everything within `within` of `now`,
    then for each rule in borg's order the newest point of each of the last N periods not
    already kept, and the oldest point when a rule has fewer periods than N (borg's "[oldest]").
    N = -1 keeps every period. An empty policy keeps nothing."""
    newest_first = sorted(points, key=lambda p: (p[1], p[0]), reverse=True)
    kept: set[str] = set()
    if policy.get("within"):
        kept |= {name for name, at in newest_first if now - at <= within_seconds(policy["within"])}
    for rule, pattern in PERIODS:
        n = int(policy.get(rule) or 0)
        if n == 0:
            continue
        chosen, last = 0, None
        for name, at in newest_first:
            period = time.strftime(pattern, time.localtime(at))
            if period == last:
                continue
            last = period
            if name not in kept:
                kept.add(name)
                chosen += 1
                if chosen == n:
                    break
        else:
            if newest_first and chosen < n:
                kept.add(newest_first[-1][0])
    return kept


class History(Cycle):
    """The owner of history.json and of the history snapshots on the pool."""

    @property
    def on(self) -> bool:
        return bool(self.s.snapshot_retention)

    def recover(self) -> str | None:
        """history.json there but cut short (a crash, a full disk): it would read as empty, and the
        night's leftover cleanup would take every history snapshot for a leftover. It is rebuilt
        from the pool instead: each of our snapshots of a service's dataset is a point again
        (its time the one its name carries, which the lost point recorded, else the pool's
        creation time; its consistency and archive unknown). Returns the note."""
        if not self.on or not self.state.unreadable(HISTORY):
            return None
        prefix = self.s.snapshot_prefix + "-"
        datasets = {self.s.dataset(svc): svc for svc in self.s.services}
        history: dict[str, list[HistoryPoint]] = {}
        for snap in self.zfs.snapshots(self.s.zfs_parent_dataset):  # oldest first
            service = datasets.get(snap.dataset)
            if service and snap.snap.startswith(prefix):
                # the name's clock, not the pool's: a night made while the clock ran ahead keeps
                # the day it recorded, and retention thins the rebuilt history as it would have
                # thinned the lost one (chaos, seed 37, step 39)
                named = snapshot_time(self.s.snapshot_prefix, snap.snap)
                history.setdefault(service, []).append(
                    HistoryPoint(snap.snap, named if named is not None else float(snap.creation)))
        for points in history.values():
            points.sort(key=lambda p: (p.time, p.snapshot))  # oldest first, as recorded
        if not self.runner.dry_run:
            self.state.save_history(history)
        return (f"{self.state.path(HISTORY)} did not parse: rebuilt from the pool, "
                f"{sum(map(len, history.values()))} restore point(s) kept")

    def _current(self) -> dict[str, list[HistoryPoint]]:
        """history.json as it stands, rebuilt from the pool first if it was cut short since the
        night began (after `recover`; a dry run rebuilds nothing): read as empty, a night's
        record or thinning would write back only tonight's points, and a cleanup would take the
        others for leftovers (chaos, seed 1564430902, step 10: the file truncated mid-night).
        Every read of the history here goes through it."""
        self.recover()
        return self.state.history()

    def all_snapshots(self) -> set[str]:
        """Every history snapshot as dataset@name (what a night's leftover cleanup must keep)."""
        return {f"{self.s.dataset(svc)}@{p.snapshot}" for svc, points in self._current().items()
                for p in points}

    def held(self) -> set[str]:
        """The snapshots (dataset@name) a mass-change hold keeps: each the version before a night
        that rewrote most of a service's files, until `release-prune`."""
        out = set()
        for service, hold in self.state.prune_holds().items():
            before = hold.mass_change
            if before and before.snapshot:
                out.add(f"{self.s.dataset(service)}@{before.snapshot}")
        return out

    def protected(self) -> set[str]:
        """What no thinning or cleanup removes (dataset@name): each dataset's kept snapshot (its
        last archive's, which skip-unchanged compares with) and the versions before a mass change."""
        kept = {f"{self.s.dataset(svc)}@{k.snapshot}" for svc, k in self.state.kept().items()} \
            if self.s.keep_last_snapshot else set()
        return kept | self.held()

    def record(self, points: dict[str, HistoryPoint]) -> None:
        """Add one point per service (tonight's snapshot), replacing a point of the same name."""
        if not points or self.runner.dry_run:
            return
        history = self._current()
        for service, point in points.items():
            history[service] = [p for p in history.get(service, []) if p.snapshot != point.snapshot] + [point]
        self.state.save_history(history)

    def thin(self, services: Iterable[str], protected: set[str]) -> list[str]:
        """Apply SNAPSHOT_RETENTION to each service's history, then make room on a nearly full
        pool, oldest first. `protected` (dataset@name: the kept snapshots) never goes. Returns
        notes for the run's report: what the pool's fill removed, and what could not be removed."""
        history = self._current()
        existing = set(self.zfs.list_snapshots(self.s.zfs_parent_dataset))
        notes: list[str] = []
        now = self.clock()
        changed = False
        for service in services:
            points = history.get(service, [])
            dataset = self.s.dataset(service)
            # a point whose snapshot is gone (destroyed by hand, a rollback) is forgotten
            alive = [p for p in points if f"{dataset}@{p.snapshot}" in existing]
            stay = thin([(p.snapshot, p.time) for p in alive], self.s.snapshot_retention, now)
            kept_points = []
            for p in alive:
                full = f"{dataset}@{p.snapshot}"
                if p.snapshot in stay or full in protected or not self._destroy(full, notes):
                    kept_points.append(p)
            if kept_points != points:
                history[service], changed = kept_points, True
        changed |= self._make_room(history, protected, notes)
        if changed and not self.runner.dry_run:
            self.state.save_history(history)
        return notes

    def _destroy(self, full: str, notes: list[str]) -> bool:
        try:
            self.zfs.destroy_ours(full, prefix=self.s.snapshot_prefix)
            return True
        except OrchestratorError as exc:
            notes.append(f"history: could not remove {full}: {brief(exc)}")
            return False

    def _make_room(self, history: dict[str, list[HistoryPoint]], protected: set[str], notes: list[str]) -> bool:
        pool = pool_of(self.s.zfs_parent_dataset)
        capacity = self.zfs.pool_capacity(pool)
        if capacity is None or capacity < POOL_FULL_PERCENT:
            return False
        oldest = sorted(((p.time, svc, p) for svc, points in history.items() for p in points),
                        key=lambda t: (t[0], t[1]))
        removed = []
        for _, service, point in oldest:
            full = f"{self.s.dataset(service)}@{point.snapshot}"
            if full in protected:
                continue
            if not self._destroy(full, notes):
                continue
            history[service] = [p for p in history[service] if p is not point]
            removed.append(full)
            capacity = self.zfs.pool_capacity(pool)
            if capacity is None or capacity < POOL_FULL_PERCENT:
                break
        if removed:
            notes.append(f"history: the pool {pool} was {POOL_FULL_PERCENT}% full or more; removed the oldest "
                         f"{len(removed)} history snapshot(s): {', '.join(removed)}")
        return bool(removed)

    # -- SNAPSHOT_SCHEDULE: a snapshot between nights ----------------------------------------

    def snapshot_now(self, name: str) -> list[str]:
        """One atomic recursive snapshot of every service dataset, nothing stopped (each point
        crash-consistent), recorded as history and thinned with the rest. The parent's own
        snapshot and those of datasets that are no service are removed at once. Returns notes."""
        if not self.on:
            raise OrchestratorError("SNAPSHOT_RETENTION is off: a scheduled snapshot would be removed at once")
        parent = self.s.zfs_parent_dataset
        with RunFrame(self, "snapshot-history", signals=False):
            self.zfs.snapshot(parent, name, recursive=True)
            services = [svc for svc in self.s.services if self.zfs.exists(f"{self.s.dataset(svc)}@{name}")]
            ours = {f"{self.s.dataset(svc)}@{name}" for svc in services}
            notes: list[str] = []
            for full in self.zfs.list_snapshots(parent):
                if full.endswith(f"@{name}") and full not in ours:
                    self._destroy(full, notes)
            now = self.clock()
            self.record({svc: HistoryPoint(snapshot=name, time=now, consistency=CRASH_CONSISTENT, archive=None)
                         for svc in services})
            return notes + self.thin(services, self.protected())


def consistency_of(service: str, live: Sequence[str], failures: Sequence[str]) -> str:
    """`crash-consistent` when the night did not stop the stack (live, or its stop failed or
    compose could not read it), else `consistent`."""
    if service in live or any(f.startswith(f"{service}: ") and "crash-consistent" in f for f in failures):
        return CRASH_CONSISTENT
    return CONSISTENT
