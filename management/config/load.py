"""Loading: `load_settings(path)` reads the .env with `dotenv_values` (os.environ is never
touched), runs every setting's own check and then the cross-checks, and returns
`(Settings, warnings)` or raises `ConfigError` listing every problem at once.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

from management.config.checks import CROSS_CHECKS, Loading
from management.config.kinds import UNSET, Derived, Problems
from management.config.settings import Settings
from management.config.table import SETTINGS
from management.errors import ConfigError


def _key_lines(raw_lines: list[str]) -> dict[str, list[int]]:
    """Map each assigned key to the 1-based .env lines where it is assigned."""
    found: dict[str, list[int]] = {}
    in_multiline: str | None = None
    for number, line in enumerate(raw_lines, start=1):
        if in_multiline:
            if line.rstrip().endswith(in_multiline):
                in_multiline = None
            continue
        m = re.match(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$", line)
        if not m:
            continue
        found.setdefault(m.group(1), []).append(number)
        value = m.group(2).strip()
        for quote in ('"', "'"):
            if value.startswith(quote) and (len(value) == 1 or not value.rstrip().endswith(quote) or value == quote):
                in_multiline = quote
    return found


def _read_text(path: Path) -> str:
    try:
        raw_bytes = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError([f"file not found (copy .env.example to {path} and edit it)"], str(path)) from None
    except PermissionError:
        raise ConfigError(
            ["cannot read the file: permission denied (run as root or fix its owner)"], str(path)
        ) from None
    except IsADirectoryError:
        raise ConfigError(["is a directory, not a file"], str(path)) from None
    if not raw_bytes.strip():
        raise ConfigError(["the file is empty (copy .env.example and fill it in)"], str(path))
    try:
        return raw_bytes.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([f"not UTF-8 text (byte {exc.start})"], str(path)) from None


def load_settings(env_file: str | os.PathLike[str]) -> tuple[Settings, list[str]]:
    """Read and validate `env_file`. Returns (settings, warnings) or raises ConfigError."""
    path = Path(env_file)
    p = Problems()
    raw = _read_text(path)

    raw_lines = raw.split("\n")
    crlf = [n for n, line in enumerate(raw_lines, start=1) if line.endswith("\r")]
    if crlf:
        shown = ", ".join(map(str, crlf[:5])) + (" ..." if len(crlf) > 5 else "")
        p.error(f"Windows (CRLF) line endings on line(s) {shown}: convert with `sed -i 's/\\r$//' {path}`")
        raw = raw.replace("\r\n", "\n")
        raw_lines = raw.split("\n")

    key_lines = _key_lines(raw_lines)
    for key, lines in key_lines.items():
        if len(lines) > 1:
            p.error(f"{key}: set more than once (lines {', '.join(map(str, lines))}); keep one")

    from dotenv import dotenv_values  # lazily: `--help` does not read a .env

    values = dotenv_values(stream=io.StringIO(raw), interpolate=True)

    parsed = {s.key: s.read(values, p) for s in SETTINGS}
    unset = [s for s in SETTINGS if parsed[s.key] is UNSET]
    # Plain defaults first, then the derived ones: they may derive from a defaulted value.
    for s in sorted(unset, key=lambda s: isinstance(s.default, Derived)):
        parsed[s.key] = s.default_value(parsed)
    loading = Loading(path, values, key_lines, parsed, p)
    for check in CROSS_CHECKS:
        check(loading)

    if p.errors:
        raise ConfigError(p.errors, str(path), p.warnings)
    settings = Settings(env_file=path, **{s.name: parsed[s.key] for s in SETTINGS})
    return settings, p.warnings
