"""One verdict per service: PROTECTED, or AT RISK with every reason. Pure: it reads what the runs
recorded (management.state) and what the tools say now, as plain values.

A service is protected when every byte its stack keeps is backed up or declared (coverage), its
last good backup is within STALE_AFTER, its last restore drill passed, its repository was checked
within CHECK_MAX_AGE_DAYS and passed, the repository is off this machine (ssh://), the pool is
ONLINE and redundant (a mirror: ZFS repairs corruption only from a second copy), and no prune is
held.
"""

from __future__ import annotations

PROTECTED, AT_RISK = "PROTECTED", "AT RISK"
CHECK_MAX_AGE_DAYS = 35  # the monthly repository check, plus a few days


def reasons(*, now: float, stale_after_hours: int, uncovered: int, last_backup: float | None,
            drill: dict | None, check: dict | None, repo: str, pool_health: str | None,
            prune_held: dict | None, pool_redundant: bool | None = None) -> list[str]:
    """Why a service is at risk; empty when it is protected. `pool_health` and `pool_redundant`
    None: unknown (not a reason)."""
    out = []
    if uncovered:
        out.append(f"{uncovered} mount(s) no backup reaches")
    if last_backup is None:
        out.append("never backed up")
    elif now - last_backup > stale_after_hours * 3600:
        out.append(f"no good backup within {stale_after_hours}h")
    if not drill:
        out.append("never drilled")
    elif not drill.get("ok"):
        out.append("its last restore drill failed")
    if not check:
        out.append("its repository was never checked")
    elif not check.get("ok"):
        out.append("its repository failed its check")
    elif now - float(check.get("time") or 0) > CHECK_MAX_AGE_DAYS * 86400:
        out.append(f"its repository was last checked over {CHECK_MAX_AGE_DAYS} days ago")
    if not repo.startswith("ssh://"):
        out.append("its repository is on this machine")
    if pool_health is not None and pool_health != "ONLINE":
        out.append(f"the pool is {pool_health}")
    if pool_redundant is False:
        out.append("the pool has no redundancy (one disk: corruption is found, not repaired)")
    if prune_held:
        out.append("its prune is held")
    return out


def verdict(why: list[str]) -> str:
    return AT_RISK if why else PROTECTED
