"""One verdict per service: PROTECTED, or AT RISK with every reason. Pure: it reads what the runs
recorded (management.state) and what the tools say now, as plain values.

A service is protected when every byte its stack keeps is backed up or declared (coverage), its
last good backup is within STALE_AFTER, its last restore drill passed, its repository was checked
within CHECK_MAX_AGE_DAYS and passed, the repository is off this machine (ssh://), the pool is
ONLINE and redundant (a mirror: ZFS repairs corruption only from a second copy), and no prune is
held (by the prune guard, or by the mass-change guard: a night that rewrote most of its files).
"""

from __future__ import annotations

from management.state import PruneHold

PROTECTED, AT_RISK = "PROTECTED", "AT RISK"
CHECK_MAX_AGE_DAYS = 35  # the monthly repository check, plus a few days


# Each reason's stable name (the metric's `reason` label), in the order `risks` checks them.
RISK_CODES = ("uncovered", "never_backed_up", "stale", "never_drilled", "drill_failed", "never_checked",
              "check_failed", "check_old", "repo_local", "pool", "pool_redundancy", "mass_change", "prune_held")


def risks(*, now: float, stale_after_hours: int, uncovered: int, last_backup: float | None,
          drill: dict | None, check: dict | None, repo: str, pool_health: str | None,
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
    elif not drill.get("ok"):
        out.append(("drill_failed", "its last restore drill failed"))
    if not check:
        out.append(("never_checked", "its repository was never checked"))
    elif not check.get("ok"):
        out.append(("check_failed", "its repository failed its check"))
    elif now - float(check.get("time") or 0) > CHECK_MAX_AGE_DAYS * 86400:
        out.append(("check_old", f"its repository was last checked over {CHECK_MAX_AGE_DAYS} days ago"))
    if not repo.startswith("ssh://"):
        out.append(("repo_local", "its repository is on this machine"))
    if pool_health is not None and pool_health != "ONLINE":
        out.append(("pool", f"the pool is {pool_health}"))
    if pool_redundant is False:
        out.append(("pool_redundancy", "the pool has no redundancy (one disk: corruption is found, not repaired)"))
    before = prune_held.mass_change if prune_held else None
    if before and before.get("text"):
        out.append(("mass_change", str(before["text"])))
    if prune_held:
        out.append(("prune_held", "its prune is held"))
    return out


def reasons(**kwargs) -> list[str]:
    """Why a service is at risk, as text (see `risks`); empty when it is protected."""
    return [text for _, text in risks(**kwargs)]


def verdict(why: list[str]) -> str:
    return AT_RISK if why else PROTECTED
