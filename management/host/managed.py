"""Files this tool writes on the host (cron entry, logrotate rule, systemd unit and drop-in):
each carries a marker line, and only a file with the marker is ever replaced or removed."""

from __future__ import annotations

from pathlib import Path

from management.errors import ValidationError
from management.state import write_atomic


def unchanged(files: list[tuple[Path, str]]) -> bool:
    """True when every file already holds exactly this text: installing again would change nothing."""
    try:
        return all(path.read_text() == text for path, text in files)
    except OSError:
        return False


def ours(path: Path, marker: str) -> bool:
    """True when path exists and carries our marker, False when it does not exist; raises
    when someone else wrote it, so nothing of theirs is ever replaced or removed."""
    if not path.exists():
        return False
    if marker not in path.read_text():
        raise ValidationError(f"{path} exists and was not written by this tool; not touching it")
    return True


def write_managed(files: list[tuple[Path, str]], marker: str, mode: int = 0o644) -> list[Path]:
    for path, _text in files:  # every file checked before any is written: all or nothing
        ours(path, marker)
    for path, text in files:
        write_atomic(path, text, mode=mode)
    return [path for path, _text in files]


def remove_managed(paths: list[Path], marker: str) -> list[Path]:
    mine = [p for p in paths if ours(p, marker)]  # checked first, as for writing
    for path in mine:
        path.unlink()
    return mine
