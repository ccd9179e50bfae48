"""Coverage in a line: how many mounts of how many stacks have each verdict."""

from __future__ import annotations

from management.stacks.coverage import CONFIG, COPIED, COVERED, EPHEMERAL, FOREIGN, NOT_DATA, UNCOVERED, Coverage

ORDER = (COVERED, CONFIG, COPIED, EPHEMERAL, NOT_DATA, UNCOVERED, FOREIGN)


def summary(coverage: dict[str, list[Coverage]], unreadable: int = 0) -> str:
    """'coverage: 10 mounts in 3 stacks: 5 covered, 2 config, 1 copied, 1 ephemeral, 1 not data, 0 uncovered',
    and how many stacks compose could not read (so their mounts are not counted)."""
    every = [c for covs in coverage.values() for c in covs]
    counts = {v: sum(c.verdict == v for c in every) for v in ORDER}
    shown = [f"{n} {v}" for v, n in counts.items() if n or v == UNCOVERED]
    line = f"coverage: {len(every)} mounts in {len(coverage)} stacks: {', '.join(shown)}"
    return line + (f" ({unreadable} stack(s) compose cannot read: not counted)" if unreadable else "")


def copied(coverage: dict[str, list[Coverage]]) -> list[str]:
    """Each writable mount in a stack folder the night copies whole (not a problem): what the
    copy covers and that it is outside the snapshot, for check-stacks to say."""
    return [c.note() for covs in coverage.values() for c in covs if c.verdict == COPIED]
