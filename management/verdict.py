"""One verdict per service: PROTECTED, or AT RISK with every reason. Pure: it reads what the runs
recorded (management.state) and what the tools say now, as plain values.

A service is protected when every byte its stack keeps is backed up or declared (coverage), its
last good backup is within STALE_AFTER, its last restore drill passed, its repository was checked
within CHECK_MAX_AGE_DAYS and passed, the repository is off this machine (ssh://), the pool is
ONLINE and redundant (a mirror: ZFS repairs corruption only from a second copy), and no prune is
held (by the prune guard, or by the mass-change guard: a night that rewrote most of its files).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from management.errors import OrchestratorError
from management.state import CheckRecord, DrillRecord, PruneHold, StateStore
from management.text import pool_of

if TYPE_CHECKING:
    from management.config import Settings

PoolSays = tuple[str | None, bool | None]  # (health, redundant) of the pool: None where zpool does not say

PROTECTED, AT_RISK = "PROTECTED", "AT RISK"
CHECK_MAX_AGE_DAYS = 35  # the monthly repository check, plus a few days


# Each reason's stable name (the metric's `reason` label), in the order `risks` checks them.
RISK_CODES = ("uncovered", "never_backed_up", "stale", "never_drilled", "drill_failed", "never_checked",
              "check_failed", "check_old", "repo_local", "pool", "pool_redundancy", "mass_change", "prune_held")


def risks(*, now: float, stale_after_hours: int, uncovered: int, last_backup: float | None,
          drill: DrillRecord | None, check: CheckRecord | None, repo: str, pool_health: str | None,
          prune_held: PruneHold | None, pool_redundant: bool | None = None) -> list[tuple[str, str]]:
    """(code, text) of every reason a service is at risk; empty when it is protected.
    `pool_health` and `pool_redundant` None: unknown (not a reason)."""
    out = []
    if uncovered:
        out.append(("uncovered", f"{uncovered} mount(s) no backup reaches"))
    if last_backup is None:
        out.append(("never_backed_up", "never backed up"))
    elif now - last_backup > stale_after_hours * 3600:
        out.append(("stale", f"no good backup within {stale_after_hours}h"))
    if not drill:
        out.append(("never_drilled", "never drilled"))
    elif not drill.ok:
        out.append(("drill_failed", "its last restore drill failed"))
    if not check:
        out.append(("never_checked", "its repository was never checked"))
    elif not check.ok:
        out.append(("check_failed", "its repository failed its check"))
    elif now - (check.time or 0.0) > CHECK_MAX_AGE_DAYS * 86400:
        out.append(("check_old", f"its repository was last checked over {CHECK_MAX_AGE_DAYS} days ago"))
    if not repo.startswith("ssh://"):
        out.append(("repo_local", "its repository is on this machine"))
    if pool_health is not None and pool_health != "ONLINE":
        out.append(("pool", f"the pool is {pool_health}"))
    if pool_redundant is False:
        out.append(("pool_redundancy", "the pool has no redundancy (one disk: corruption is found, not repaired)"))
    before = prune_held.mass_change if prune_held else None
    if before and before.text:
        out.append(("mass_change", before.text))
    if prune_held:
        out.append(("prune_held", "its prune is held"))
    return out


def reasons(**kwargs) -> list[str]:
    """Why a service is at risk, as text (see `risks`); empty when it is protected."""
    return [text for _, text in risks(**kwargs)]


def verdict(why: list[str]) -> str:
    return AT_RISK if why else PROTECTED


def read_pool(zfs, dataset: str):
    """The pool `dataset` lives in, from one `zpool status` (`zfs` a tools.zfs.ZFSManager): the
    one way the verdicts' pool health is read (status, and publish after each run). None when
    zpool does not say (the pool not imported, zpool missing, no zfs)."""
    if zfs is None:
        return None
    try:
        return zfs.pool_status(pool_of(dataset))
    except OrchestratorError:
        return None


def pool_says(status) -> PoolSays:
    """(health, redundant) from `read_pool`'s answer."""
    return (status.state, status.redundant) if status else (None, None)


class VerdictInputs:
    """The run state every service's verdict reads, read once: the one place its inputs are put
    together (status, and publish's verdict textfile and status page)."""

    def __init__(self, settings: Settings, store: StateStore):
        self.settings = settings
        self.last, self.drills, self.checks = store.last_success(), store.drills(), store.checks()
        self.holds, self.nights = store.prune_holds(), store.nights()

    def last_uncovered(self, service: str) -> int:
        """The mounts no backup reached on the service's last night (nights.json)."""
        nights = self.nights.get(service)
        return (nights[-1].uncovered or 0) if nights else 0

    def risks(self, service: str, now: float, pool: PoolSays, uncovered: int | None = None) -> list[tuple[str, str]]:
        """The service's reasons (code, text); `uncovered` defaults to its last night's count."""
        health, redundant = pool
        return risks(now=now, stale_after_hours=self.settings.stale_after,
                     uncovered=self.last_uncovered(service) if uncovered is None else uncovered,
                     last_backup=self.last.get(service),
                     drill=self.drills.get(service), check=self.checks.get(service),
                     repo=self.settings.repo(service), pool_health=health, prune_held=self.holds.get(service),
                     pool_redundant=redundant)
