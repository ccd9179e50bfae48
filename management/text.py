"""Small text helpers every layer uses: sizes, ages, Prometheus label values.

Standard library only: `management.views.fleet` runs on the controller, outside the venv.
"""

from __future__ import annotations


def pool_of(dataset: str) -> str:
    """The ZFS pool a dataset lives in: its name's first component (`datapool/services` -> `datapool`)."""
    return dataset.split("/", 1)[0]


def human_size(n: int | None) -> str:
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(size) < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"  # pragma: no cover


def age(seconds: float | None) -> str:
    """'42m', '5h', '35h', '3d': hours up to three days, so 36 h reads as hours."""
    if seconds is None:
        return "?"
    seconds = max(0.0, seconds)
    if seconds < 3600:
        return f"{int(seconds // 60)}m"
    if seconds < 72 * 3600:
        return f"{int(seconds // 3600)}h"
    return f"{int(seconds // 86400)}d"


def escape_label(value: str) -> str:
    """A Prometheus label value in the text exposition format: backslash, quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
