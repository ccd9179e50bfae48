"""`make outdated`: one row per service (stack, service, the image it runs, status, reference)."""

from __future__ import annotations

from collections.abc import Sequence

NEWER = "newer available"


def render(rows: Sequence) -> list[str]:
    lines = [f"{'STACK':<14} {'SERVICE':<18} {'RUNNING':<14} {'STATUS':<18} IMAGE"]
    for r in rows:
        running = (r.running or "-").removeprefix("sha256:")[:12]
        lines.append(f"{r.stack:<14} {r.service:<18} {running:<14} {r.status:<18} {r.image}")
    newer = sum(r.status == NEWER for r in rows)
    hint = " - `make update` applies them" if newer else ""
    lines.append(f"outdated: {newer} service(s) with a newer image{hint}")
    return lines
