"""What each run produces, as data: the backup's `RunReport` (a `DatasetResult` per dataset),
the drill's `DrillReport` (a `DrillResult` per service) and an update's `UpdateResult` per stack.

The cycles fill them; monitoring publishes them; views render them. Data only, no I/O.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from management.state import MassChange
from management.text import human_size

OK, WARNING, FAILED, SKIPPED, UNCHANGED = "ok", "warning", "failed", "skipped", "unchanged"
GOOD = (OK, WARNING, UNCHANGED)  # the dataset is held by an archive as it is now
COMPARED, VERIFIED = "compared", "verified"  # drill modes (or FAILED)
UPDATED, ROLLED_BACK = "updated", "rolled back"  # update results (or UNCHANGED, FAILED, SKIPPED)
SHOWN = 5  # differences a drill names per service; the count says how many there were


@dataclass
class DatasetResult:
    service: str
    result: str = SKIPPED
    archive: str = ""
    duration: float = 0.0
    nfiles: int | None = None
    original_size: int | None = None
    deduplicated_size: int | None = None
    files_read: int | None = None  # files borg read (the rest were skipped by its files cache)
    pruned: bool = False
    compacted: bool = False
    message: str = ""
    archives: int | None = None  # the service's archives after prune
    # what changed against the archive before (backup.night_changes): {added, modified, deleted,
    # files, bytes}, and `held` when the mass-change guard held it; None when borg did not say
    changed: dict | None = None


@dataclass
class RunReport:
    started_at: float
    snapshot: str = ""
    downtime: float | None = None
    stopped_stacks: list[str] = field(default_factory=list)
    restarted_stacks: list[str] = field(default_factory=list)
    stack_failures: list[str] = field(default_factory=list)
    live_stacks: list[str] = field(default_factory=list)  # backed up running (x-orchestrator consistency: live)
    stack_downtime: dict[str, float] = field(default_factory=dict)  # stack -> stop issued .. healthy again
    notes: list[str] = field(default_factory=list)  # worth reading, not a failure (a live stack fell back)
    datasets: list[DatasetResult] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    finished_at: float | None = None
    interrupted: str = ""
    # stack -> its mounts no backup reaches (management.stacks.coverage): the night is not OK
    uncovered: dict[str, list[str]] = field(default_factory=dict)
    # service -> why its prune is held (the prune guard): every archive kept, the night not OK
    held: dict[str, str] = field(default_factory=dict)
    # service -> the mass-change guard's finding: {text, archive, snapshot}, the version before
    mass_changes: dict[str, MassChange] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return (
            not self.errors
            and not self.stack_failures
            and not self.interrupted
            and not self.uncovered
            and not self.held
            and not self.mass_changes
            and all(d.result in GOOD for d in self.datasets)
        )

    def to_dict(self) -> dict:
        data = asdict(self)
        data["ok"] = self.ok
        return data


@dataclass
class ServiceRunReport:
    """A run that goes service by service (a drill, a repository check): OK when it looked at
    one at least and every one is OK."""

    results: list = field(default_factory=list)
    started_at: float = 0.0
    finished_at: float = 0.0

    @property
    def ok(self) -> bool:
        return bool(self.results) and all(r.ok for r in self.results)

    def to_dict(self) -> dict:
        return {"ok": self.ok, "started_at": self.started_at, "finished_at": self.finished_at,
                "services": [{**asdict(r), "ok": r.ok} for r in self.results]}


# -- restore drill ---------------------------------------------------------------------


@dataclass
class DrillResult:
    service: str
    archive: str = ""
    snapshot: str = ""
    mode: str = FAILED  # compared (with the snapshot) | verified (check + extract only) | failed
    entries: int = 0
    bytes: int = 0
    differences: int = 0
    first_differences: list[str] = field(default_factory=list)
    duration: float = 0.0
    message: str = ""
    booted: bool | None = None  # the boot drill: None when not asked (or nothing to boot)
    boot: str = ""  # how the restored stack came up, or why it did not
    boot_duration: float = 0.0

    @property
    def ok(self) -> bool:
        return self.mode != FAILED and self.booted is not False

    def line(self) -> str:
        head = f"{self.service}: {'OK' if self.ok else 'FAILED'}"
        booted = f"; boot: {self.boot}" if self.boot else ""
        if self.mode == COMPARED:
            body = (f"{self.archive} == {self.snapshot}: {self.entries} entries, {human_size(self.bytes)} compared"
                    if not self.differences else
                    f"{self.archive} != {self.snapshot}: {self.differences} difference(s) in {self.entries} entries: "
                    + "; ".join(self.first_differences))
        elif self.mode == VERIFIED:
            body = f"{self.archive}: {self.message}"
        else:
            body = (f"{self.archive}: " if self.archive else "") + (self.message or "failed") + (
                (": " + "; ".join(self.first_differences)) if self.first_differences else "")
        return f"{head} {body}{booted} ({self.duration:.1f}s)"


@dataclass
class DrillReport(ServiceRunReport):
    results: list[DrillResult] = field(default_factory=list)

    def summary(self) -> str:
        failed = [r.service for r in self.results if not r.ok]
        lines = [r.line() for r in self.results]
        lines.append("drill: OK" if self.ok else f"drill: FAILED ({', '.join(failed) or 'nothing drilled'})")
        return "\n".join(lines)


# -- image update ----------------------------------------------------------------------


@dataclass
class UpdateResult:
    stack: str
    result: str
    message: str = ""
    snapshot: str = ""
    services: dict[str, dict[str, str]] = field(default_factory=dict)  # service -> {ref, old, new}


# -- repository check ------------------------------------------------------------------


@dataclass
class CheckResult:
    service: str
    ok: bool = False
    mode: str = "repository"  # repository (--repository-only) | full | verify-data
    duration: float = 0.0
    message: str = ""

    def line(self) -> str:
        return f"{self.service}: {'OK' if self.ok else 'FAILED'} ({self.mode}, {self.duration:.1f}s)" + (
            f"\n{self.message}" if self.message else "")


@dataclass
class CheckReport(ServiceRunReport):
    results: list[CheckResult] = field(default_factory=list)

