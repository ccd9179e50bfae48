"""The one path by which every run tells the world how it went, in this order:

    state (STATE_DIR) -> Prometheus textfile -> push URL -> Apprise notification

Each run kind (backup, drill, update) is a small `Outcome`: what it records in the state, its
metrics, its verdict, the push body and the message. Failures here are warnings, except that
a backup whose state could not be written says so in its own report (status would lie).
Monitoring must never turn a good run into a failed one otherwise.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from management.config import Settings
from management.monitoring.metrics import (
    BACKUP,
    CHECK,
    DRILL,
    UPDATE,
    VERDICT,
    Family,
    backup_families,
    check_families,
    drill_families,
    render,
    textfile,
    update_families,
    verdict_families,
)
from management.monitoring.notify import (
    Message,
    backup_message,
    check_message,
    drill_message,
    notify,
    trusted_prune_message,
    update_message,
)
from management.monitoring.page import PAGE_FILE, PageRow
from management.monitoring.page import render as render_page
from management.results import (
    GOOD,
    OK,
    SKIPPED,
    UNCHANGED,
    UPDATED,
    WARNING,
    CheckReport,
    DrillReport,
    RunReport,
    UpdateResult,
)
from management.state import (
    ArchiveCount,
    Changed,
    CheckRecord,
    DrillRecord,
    Night,
    StateStore,
    UpdateRecord,
    write_atomic,
)
from management.verdict import PoolSays, VerdictInputs
from management.verdict import verdict as verdict_of


def push_url_for(base: str, event: str) -> str:
    """healthchecks.io / Uptime Kuma style: start -> <url>/start, failure -> <url>/fail,
    success -> <url>. A URL with a query string (Uptime Kuma's ?status=up) gets status=down
    on failure instead."""
    if "?" in base:
        if event == "start":
            return ""
        return base.replace("status=up", "status=down") if event == "fail" else base
    base = base.rstrip("/")
    return {"start": f"{base}/start", "fail": f"{base}/fail"}.get(event, base)


def push(base: str | None, event: str, body: str = "", timeout: float = 10.0) -> str | None:
    """Ping the push URL. Returns a warning (without the URL: it carries a token) or None."""
    if not base:
        return None
    url = push_url_for(base, event)
    if not url:
        return None
    try:
        request = urllib.request.Request(url, data=body.encode()[:10000] or None, method="POST" if body else "GET")
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - http(s) checked in config
            response.read(1024)
        return None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or type(exc).__name__
        return f"push ({event}) failed: {reason}"


class Outcome:
    """A finished run as monitoring sees it."""

    kind: str | None  # None: a run that records nothing and writes no metrics

    def record(self, store: StateStore, now: float) -> list[Family]:
        """Write the run's state; return the metrics, which read the state as a whole."""
        raise NotImplementedError

    @property
    def ok(self) -> bool:
        raise NotImplementedError

    @classmethod
    def push_url(cls, settings: Settings) -> str | None:
        """Where this kind of run pings (start, success, fail); None: it does not."""
        return settings.push_url

    def body(self) -> str:
        raise NotImplementedError

    def message(self) -> Message:
        raise NotImplementedError

    def state_failed(self, text: str, echo: Callable[[str], None]) -> None:
        echo(f"warning: {text}")


@dataclass
class BackupOutcome(Outcome):
    report: RunReport
    kind = BACKUP

    def record(self, store: StateStore, now: float) -> list[Family]:
        last = store.last_success()
        last.update({d.service: now for d in self.report.datasets if d.result in GOOD})
        counts = store.archive_counts()
        for d in self.report.datasets:
            entry = counts.get(d.service) or ArchiveCount()
            if d.archives is not None:
                entry.count, entry.time = d.archives, now
            if d.result in (OK, WARNING) and d.service not in self.report.held:  # what the prune guard compares
                entry.files, entry.bytes, entry.archive = d.nfiles, d.original_size, d.archive
            if entry.to_json():
                counts[d.service] = entry
        store.save_last_success(last)
        store.save_archive_counts(counts)
        before = store.nights()  # read once: once per service made a night at 100 stacks 100 reads of 3,000 nights
        store.add_nights({d.service: self._night(d, before.get(d.service, []), now)
                          for d in self.report.datasets if d.result != SKIPPED})
        return backup_families(self.report, last)

    def _night(self, d, before: list[Night], now: float) -> Night:
        """One night of a service for the status page's charts. An unchanged dataset's archive is
        the one before: its size and file count carry over."""
        night = Night(now, d.result, d.original_size, d.deduplicated_size, d.nfiles, round(d.duration, 3),
                      len(self.report.uncovered.get(d.service, [])),
                      # what changed against the archive before (the mass-change guard's record)
                      None if d.changed is None else Changed.from_json(d.changed))
        if d.result == UNCHANGED and d.original_size is None and before:
            night.bytes, night.files, night.deduplicated = before[-1].bytes, before[-1].files, 0
        return night

    @property
    def ok(self) -> bool:
        return self.report.ok

    def body(self) -> str:
        return json.dumps(self.report.to_dict(), default=str)

    def message(self) -> Message:
        return backup_message(self.report)

    def state_failed(self, text: str, echo: Callable[[str], None]) -> None:
        self.report.errors.append(text)  # the night is not OK when status cannot know of it


@dataclass
class DrillOutcome(Outcome):
    report: DrillReport
    mask: Callable[[str], str]
    kind = DRILL

    def record(self, store: StateStore, now: float) -> list[Family]:
        when = self.report.finished_at
        return drill_families(store.record_drills({r.service: DrillRecord(
            when, r.ok, r.mode, r.archive, r.entries, r.bytes, r.differences, self.mask(r.message),
            last_success=when if r.ok else None) for r in self.report.results}))

    @property
    def ok(self) -> bool:
        return self.report.ok

    @classmethod
    def push_url(cls, settings: Settings) -> str | None:
        return None  # the drill has no push URL of its own; its metric and notification tell

    def body(self) -> str:
        return json.dumps(self.report.to_dict(), default=str)

    def message(self) -> Message:
        return drill_message(self.report)


@dataclass
class CheckOutcome(Outcome):
    report: CheckReport
    kind = CHECK

    def record(self, store: StateStore, now: float) -> list[Family]:
        return check_families(store.record_checks({r.service: CheckRecord(
            now, r.ok, r.mode, (r.message.splitlines() or [""])[-1], last_success=now if r.ok else None)
            for r in self.report.results}))

    @property
    def ok(self) -> bool:
        return self.report.ok

    @classmethod
    def push_url(cls, settings: Settings) -> str | None:
        return None  # its metric and notification tell

    def body(self) -> str:
        return json.dumps(self.report.to_dict(), default=str)

    def message(self) -> Message:
        return check_message(self.report)


@dataclass
class UpdateOutcome(Outcome):
    results: list[UpdateResult]
    kind = UPDATE

    def record(self, store: StateStore, now: float) -> list[Family]:
        return update_families(store.record_updates({r.stack: UpdateRecord(now, r.result, r.message)
                                                     for r in self.results if r.result != SKIPPED}))

    @property
    def ok(self) -> bool:
        return all(r.result in (UPDATED, UNCHANGED, SKIPPED) for r in self.results)

    @classmethod
    def push_url(cls, settings: Settings) -> str | None:
        return settings.update_push_url

    def body(self) -> str:
        return json.dumps([{"stack": r.stack, "result": r.result, "message": r.message} for r in self.results])

    def message(self) -> Message:
        return update_message([r for r in self.results if r.result != SKIPPED], self.ok)


@dataclass
class TrustedPruneOutcome(Outcome):
    """`prune-trusted` on the trusted machine: it writes its holds as it goes, and has no metrics,
    no verdict and no push URL; only its notification (a hold says so loudly)."""

    report: RunReport
    kind = None

    @property
    def ok(self) -> bool:
        return self.report.ok

    @classmethod
    def push_url(cls, settings: Settings) -> str | None:
        return None

    def body(self) -> str:
        return ""

    def message(self) -> Message:
        return trusted_prune_message(self.report)


def service_risks(settings: Settings, store: StateStore, now: float,
                  pool: PoolSays) -> dict[str, list[tuple[str, str]]]:
    """Every service's verdict reasons (code, text) from the run state: the same inputs as status."""
    inputs = VerdictInputs(settings, store)
    return {service: inputs.risks(service, now, pool) for service in settings.services}


ARCHIVES_SHOWN = 5  # the newest archives the status page lists per service


def restore_points(store: StateStore, services: list[str], now: float) -> dict[str, tuple[list[dict], list[str]]]:
    """Per service, what the state knows of its restore points, nothing asked of borg or zfs:
    (its history snapshots {snapshot, consistency, archive, age_seconds}, oldest first; the
    newest ARCHIVES_SHOWN archive names from the last listing, the history and the kept
    snapshot, oldest first). Archive names end in their UTC time, so they sort by it."""
    history, repos, kept, counts = store.history(), store.repositories(), store.kept(), store.archive_counts()
    out = {}
    for service in services:
        snaps = [{"snapshot": p.snapshot, "consistency": p.consistency, "archive": p.archive,
                  "age_seconds": round(now - p.time, 1)} for p in history.get(service, [])]
        repo = repos.get(service)
        names = set(repo.archives) if repo else set()
        names |= {p["archive"] for p in snaps if p["archive"]}
        count = counts.get(service)
        kept_one = kept.get(service)
        for archive in (kept_one.archive if kept_one else None, count.archive if count else None):
            if archive:
                names.add(str(archive))
        out[service] = (snaps, sorted(names)[-ARCHIVES_SHOWN:])
    return out


def page_rows(reasons: dict[str, list[str]], store: StateStore, now: float) -> list[PageRow]:
    """One row per service of `reasons` (service -> why it is at risk, as text), with what the
    run state says of it."""
    last, counts, nights = store.last_success(), store.archive_counts(), store.nights()
    points = restore_points(store, list(reasons), now)
    rows = []
    for service, why in reasons.items():
        when = last.get(service)
        count = counts[service].count if service in counts else None
        rows.append(PageRow(service, verdict_of(why), list(why), None if when is None else now - when, count,
                            nights.get(service, []), *points[service]))
    return rows


def write_page(path: Path, rows: list[PageRow], now: float) -> None:
    """The status page, to `path` (STATUS_PAGE_DIR/index.html after each run, or `status
    --html`'s file), atomically (a reader never sees half a page)."""
    generated = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(now))
    write_atomic(path, render_page(rows, host=socket.gethostname(), generated=generated))


def publish_verdicts(settings: Settings, store: StateStore, now: float,
                     pool_health: Callable[[], PoolSays]) -> None:
    """The verdict textfile and the status page, when either is set (else no pool is asked)."""
    if not settings.prometheus_textfile and not settings.status_page_dir:
        return
    risks = service_risks(settings, store, now, pool_health())
    if settings.prometheus_textfile:
        write_atomic(textfile(settings.prometheus_textfile, VERDICT),
                     render(verdict_families({s: [code for code, _ in why] for s, why in risks.items()})))
    if settings.status_page_dir:
        rows = page_rows({s: [text for _, text in why] for s, why in risks.items()}, store, now)
        write_page(settings.status_page_dir / PAGE_FILE, rows, now)


def publish(outcome: Outcome, settings: Settings, store: StateStore, mask: Callable[[str], str],
            echo: Callable[[str], None], now: float,
            pool_health: Callable[[], PoolSays] = lambda: (None, None)) -> None:
    """state -> textfile -> verdicts -> push -> notification; each step runs whatever the one
    before did. `pool_health` asks zpool for the pool's health and redundancy (only when a verdict
    is written). An outcome without a kind (prune-trusted) records nothing and writes no verdict."""
    if outcome.kind is not None:
        try:
            families = outcome.record(store, now)
            if settings.prometheus_textfile:
                write_atomic(textfile(settings.prometheus_textfile, outcome.kind), render(families))
        except OSError as exc:
            outcome.state_failed(f"could not write the {outcome.kind} state: {exc}", echo)
        try:
            publish_verdicts(settings, store, now, pool_health)
        except OSError as exc:
            echo(f"warning: could not write the verdicts (metrics, status page): {exc}")
    warning = push(outcome.push_url(settings), "success" if outcome.ok else "fail", body=mask(outcome.body()))
    if warning:
        echo(f"warning: {warning}")
    notify(settings, outcome.message(), mask, echo)
