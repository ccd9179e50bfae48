""".env.example, rendered from the settings table (`make env-example` writes it): headings, each
setting's doc line and note, its example or its default commented out. A unit test checks that
the committed file is this rendering.
"""

from __future__ import annotations

import re
import textwrap
from typing import Any

from management.config.kinds import SWITCH, UNSET, Derived, Problems, Setting
from management.config.table import SETTINGS

ENV_EXAMPLE_HEADER = (
    "# Orchestrator settings: copy to .env (chmod 600 .env) and edit.",
    "# Read with python-dotenv; values may be quoted, multi-line values need double quotes.",
    "# `orchestrator config check` (make config-check) validates this file and lists every problem.",
    "# Generated from management/config/table.py (SETTINGS) by `make env-example`: edit that, not this.",
)
ENV_EXAMPLE_WIDTH = 100
# Every part of a secret's example must say that it is one to replace.
PLACEHOLDER_RE = re.compile(r"your-|change-me")


def _section_problems(settings: tuple[Setting, ...]) -> list[str]:
    """A setting outside every section, or a section whose settings are not together."""
    out: list[str] = []
    seen: list[str] = []
    for s in settings:
        if not s.section:
            out.append(f"{s.key}: no section (declare it inside a _section(...) of SETTINGS)")
        elif s.section in seen and s.section != seen[-1]:
            out.append(f"{s.key}: its section {s.section!r} is split; keep a section's settings together")
        elif s.section not in seen:
            seen.append(s.section)
    return out


def _setting_problems(s: Setting) -> list[str]:
    """What keeps one setting from a loadable, honest line: a required one without an example,
    a secret's example that is not a placeholder, a value the file could not hold as written."""
    shown = s.example if isinstance(s.example, str) else s.sample
    checks = (
        (s.family is not None and not isinstance(s.example, dict), "a family of keys needs example={key: value}"),
        (s.family is None and isinstance(s.example, dict), "example={...} is for a family of keys only"),
        (s.required and s.example is None, "required, so it needs an example"),
        (s.sample is not None and (s.example is not None or bool(s.default_text)),
         "sample is only for a setting with no example and no default to show"),
        (s.secret and shown is not None and not all(PLACEHOLDER_RE.search(part) for part in shown.split()),
         "a secret's example must be a placeholder (each part saying your- or change-me)"),
        (shown is not None and ('"' in shown or " #" in shown), "an example must not contain '\"' or ' #'"),
    )
    return [f"{s.key}: {why}" for failed, why in checks if failed]


def _example_values(settings: tuple[Setting, ...]) -> dict[str, Any]:
    """Each setting's value as the file gives it (its example, else its plain default), by key:
    what a Derived default is computed from."""
    p = Problems()
    values: dict[str, Any] = {}
    for s in settings:
        if isinstance(s.example, str):
            value = s.kind.parse(s.key, s.example.strip() if s.kind.strip else s.example, p)
            values[s.key] = None if value is UNSET else value
        elif not isinstance(s.default, Derived):
            values[s.key] = s.default
    return values


def _shown_default(s: Setting, values: dict[str, Any]) -> str:
    """The default as the commented-out line shows it: a Derived one computed from `values`."""
    if isinstance(s.default, Derived):
        value = s.default.value(values)
        if value is not None:
            return s.kind.show(value)
    return s.default_text


def _comment(s: Setting) -> list[str]:
    """Doc line and note, wrapped; then the default, unless the line below shows it as it is
    (then a number's bounds only)."""
    if s.example is None and s.default_text and not isinstance(s.default, Derived):
        tail = f"Within {s.bounds}." if s.bounds and s.kind != SWITCH else ""
    else:
        tail = s.default_phrase
    text = " ".join(part for part in (s.doc, s.note, tail) if part)
    return ["# " + line for line in textwrap.wrap(text, ENV_EXAMPLE_WIDTH - 2, break_long_words=False,
                                                  break_on_hyphens=False)]


def _assignment(key: str, value: str, commented: bool = False) -> str:
    """`KEY=value`, `#KEY=value`, or a multi-line value in double quotes starting on the next line."""
    if "\n" not in value:
        return f"{'#' if commented else ''}{key}={value}"
    if commented:
        raise ValueError(f"{key}: a multi-line value cannot be shown commented out")
    return f'{key}="\n{value}\n"'


def _assignments(s: Setting, values: dict[str, Any]) -> list[str]:
    """The setting's line(s): its example set, else its default (or sample) commented out."""
    if isinstance(s.example, dict):
        return [_assignment(key, value) for key, value in s.example.items()]
    if s.example is not None:
        return [_assignment(s.key, s.example)]
    return [_assignment(s.key, _shown_default(s, values) or s.sample or "", commented=True)]


def render_env_example(settings: tuple[Setting, ...] = SETTINGS) -> str:
    """The text of .env.example: the header, then per section its heading and, per setting, its
    comment and line(s). Raises ValueError when the table cannot give an honest example."""
    problems = _section_problems(settings) + [why for s in settings for why in _setting_problems(s)]
    if problems:
        raise ValueError("cannot render .env.example:\n" + "\n".join(problems))
    values = _example_values(settings)
    lines = list(ENV_EXAMPLE_HEADER)
    section = None
    for s in settings:
        if s.section != section:
            section = s.section
            lines += ["", f"# --- {section} ".ljust(ENV_EXAMPLE_WIDTH, "-")]
        lines += _comment(s) + _assignments(s, values)
    return "\n".join(lines) + "\n"
