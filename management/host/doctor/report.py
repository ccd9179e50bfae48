"""doctor's runner: every check in order (`CHECKS`, then the local history's), each one's
failure kept to itself, and the report: one line per check, its fix, the counts."""

from __future__ import annotations

from collections.abc import Callable

from management.errors import OrchestratorError
from management.host.doctor import history
from management.host.doctor.access import check_firewall, check_ssh_password, check_ssh_port, check_ssh_root
from management.host.doctor.backups import check_boot_unit, check_coverage, check_cron, check_last_backup
from management.host.doctor.check import FAIL, OK, WARN, Check, Host
from management.host.doctor.docker import check_compose, check_log_rotation, check_subids, check_userns
from management.host.doctor.pool import (
    check_datasets,
    check_free_space,
    check_pool,
    check_pool_errors,
    check_pool_redundancy,
    check_scrub,
    check_scrub_schedule,
    check_zed,
    check_zfs_import,
)
from management.host.doctor.secrets import check_borg_keys, check_env_mode, check_history_protection

CHECKS: tuple[Callable[[Host], Check], ...] = (
    check_userns, check_subids, check_log_rotation, check_compose,
    check_pool, check_pool_redundancy, check_pool_errors, check_scrub, check_scrub_schedule, check_zed,
    check_datasets, check_free_space, check_zfs_import,
    check_ssh_port, check_ssh_root, check_ssh_password, check_firewall,
    check_env_mode, check_borg_keys, check_history_protection,
    check_cron, check_boot_unit, check_coverage, check_last_backup,
)


def all_checks() -> tuple[Callable[[Host], Check], ...]:
    """CHECKS, then the local history's (management.host.doctor.history)."""
    return CHECKS + history.CHECKS


def run_checks(host: Host, checks=None) -> list[Check]:
    """Every check (all_checks() unless `checks` are given), in order. A check that breaks
    unexpectedly is a warn with the reason: one check never keeps the others from running."""
    checks = all_checks() if checks is None else checks
    results = []
    for check in checks:
        try:
            results.append(check(host))
        except (OrchestratorError, OSError, ValueError, KeyError) as exc:
            label = check.__name__.removeprefix("check_").replace("_", " ")
            results.append(Check(WARN, label, f"cannot tell: the check broke: {type(exc).__name__}: {exc}",
                                 "a bug in doctor: please report this line"))
    return results


def render(checks: list[Check], style: Callable[[str, str], str] = lambda text, status: text) -> list[str]:
    """One line per check (status, name, detail), its fix below when it is not ok, then the
    counts. `style(text, status)` colours the status column (click.style on a terminal)."""
    width = max((len(c.name) for c in checks), default=0)
    lines = []
    for c in checks:
        lines.append(style(f"{c.status:<4}", c.status) + f"  {c.name:<{width}}  {c.detail}")
        if c.fix and c.status != OK:
            lines.append(f"{'':<4}  {'':<{width}}  fix: {c.fix}")
    counts = {s: sum(c.status == s for c in checks) for s in (OK, WARN, FAIL)}
    lines.append(f"doctor: {counts[OK]} ok, {counts[WARN]} warn, {counts[FAIL]} fail")
    return lines
