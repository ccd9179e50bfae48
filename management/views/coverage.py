"""Coverage in a line: how many mounts of how many stacks have each verdict."""

from __future__ import annotations

from management.tools.coverage import CONFIG, COVERED, EPHEMERAL, FOREIGN, NOT_DATA, UNCOVERED, Coverage

ORDER = (COVERED, CONFIG, EPHEMERAL, NOT_DATA, UNCOVERED, FOREIGN)


def summary(coverage: dict[str, list[Coverage]]) -> str:
    """'coverage: 9 mounts in 3 stacks: 5 covered, 2 config, 1 ephemeral, 1 not data, 0 uncovered'."""
    every = [c for covs in coverage.values() for c in covs]
    counts = {v: sum(c.verdict == v for c in every) for v in ORDER}
    shown = [f"{n} {v}" for v, n in counts.items() if n or v == UNCOVERED]
    return f"coverage: {len(every)} mounts in {len(coverage)} stacks: {', '.join(shown)}"
