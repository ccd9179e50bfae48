"""Kinds of value: how a setting's text becomes a value and what makes it wrong (`Kind` and
its subclasses), the `Setting` declaration itself, `Derived` defaults, and the checks of single
values that the kinds, the cross-checks and other modules share (`validate_dataset_name`).
"""

from __future__ import annotations

import copy
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

# Five cron fields or an @word: cron schedules (the cron file's module checks with it too).
SCHEDULE_RE = re.compile(r"^(@(daily|midnight|weekly|monthly|hourly)|(\S+\s+){4}\S+)$")
# One Apprise URL (scheme://...); NOTIFY_URLS holds several.
URL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://\S+$")


def split_urls(text: str) -> list[str]:
    """NOTIFY_URLS: URLs separated by spaces, commas or newlines."""
    return [u for u in re.split(r"[\s,]+", text or "") if u]

UID_KEY_RE = re.compile(r"^REMAPPED_[A-Z0-9_]+_UID$")
# A service name becomes a ZFS dataset component, a borg repository directory, an archive
# prefix and a compose folder name. Stricter than ZFS on purpose: no spaces, no shell
# metacharacters, no ':' (archive names), no leading dot or dash.
SERVICE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# compose's own precedence: the file compose picks up by itself in a stack folder
COMPOSE_FILES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")
# a folder compose accepts as a project name, and so as a service this tool backs up
PROJECT_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
PATH_COMPONENT_RE = re.compile(r"^[A-Za-z0-9_.@+-][A-Za-z0-9_.@+ -]*$")
DATASET_COMPONENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
POOL_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.:-]*$")
RESERVED_POOL_NAMES = {"mirror", "raidz", "raidz1", "raidz2", "raidz3", "spare", "log", "cache"}
SNAPSHOT_PREFIX_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,31}$")
RETENTION_KEYS = ("within", "hourly", "daily", "weekly", "monthly", "yearly")
DEFAULT_RETENTION = {"daily": "7", "weekly": "4", "monthly": "6"}
WITHIN_RE = re.compile(r"^\d+[HdwmyS]$")
LARGEST_ID = 4294967294
PASSPHRASE_KEYS = ("BORG_PASSPHRASE", "BORG_PASSCOMMAND", "BORG_PASSPHRASE_FILE")


@dataclass(frozen=True)
class VolumePath:
    """One line of SERVICE_VOLUME_PATHS_AND_OWNERS: `service/sub/dir:UID_KEY[:GID_KEY]`."""

    relative: str  # e.g. "photo/immich-postgres"
    uid_key: str
    uid: int
    gid: int
    line: int  # line number inside the multi-line value (1-based)

    @property
    def service(self) -> str:
        return self.relative.split("/", 1)[0]


class Problems:
    def __init__(self) -> None:
        self.errors: list[str] = []
        self.warnings: list[str] = []

    def error(self, msg: str) -> None:
        self.errors.append(msg)

    def warn(self, msg: str) -> None:
        self.warnings.append(msg)


# ---------------------------------------------------------------------------------------
# Kinds of value: how a setting's text becomes a value, and what makes it wrong
# ---------------------------------------------------------------------------------------

UNSET = object()  # a parser's answer for "use the default" (its problem, if any, is reported)


class Kind:
    """Base of every kind. `parse` gets the text (stripped unless `strip` is False) of a key
    that is set and not blank, reports what is wrong with it, and returns the value or UNSET."""

    type: Any = str  # the Settings attribute's type
    strip = True  # parse the value with surrounding blanks removed
    blank_is_value = False  # `KEY=` is parsed as a value, not replaced by the default
    hashable = True

    def parse(self, key: str, text: str, p: Problems) -> Any:
        return text

    def show(self, value: Any) -> str:
        """The value as `config show` prints it (secrets are masked before this)."""
        return "" if value is None else str(value)

    def secret_extras(self, value: Any) -> list[str]:
        """For a secret setting that is set: parts of the value to mask on their own too."""
        return []


@dataclass(frozen=True)
class Text(Kind):
    """Free text, or text a pattern must match (`why` completes "KEY: 'value' ...")."""

    pattern: re.Pattern[str] | None = None
    why: str = ""
    strip: bool = True

    def parse(self, key: str, text: str, p: Problems) -> Any:
        if self.pattern and not self.pattern.match(text):
            p.error(f"{key}: {text!r} {self.why}")
            return UNSET
        return text


@dataclass(frozen=True)
class Int(Kind):
    """A whole number within bounds; 0..1 is an on/off switch."""

    low: int
    high: int
    type = int

    def parse(self, key: str, text: str, p: Problems) -> Any:
        if not re.fullmatch(r"\d+", text):
            p.error(f"{key}: {text!r} is not a whole number")
            return UNSET
        number = int(text)
        if not self.low <= number <= self.high:
            p.error(f"{key}: {number} is outside {self.low}..{self.high}")
            return UNSET
        return number


SWITCH = Int(0, 1)


@dataclass(frozen=True)
class Uid(Kind):
    """A host user or group id."""

    type = int

    def parse(self, key: str, text: str, p: Problems) -> Any:
        if not re.fullmatch(r"\d+", text):
            p.error(f"{key}: {text!r} is not a number")
            return UNSET
        number = int(text)
        if number > LARGEST_ID:
            p.error(f"{key}: {number} is larger than the largest UID ({LARGEST_ID})")
            return UNSET
        return number


@dataclass(frozen=True)
class AbsPath(Kind):
    """An absolute path; `strict` also refuses '..' components."""

    strict: bool = False
    type = Path

    def parse(self, key: str, text: str, p: Problems) -> Any:
        if not text.startswith("/"):
            p.error(f"{key}: {text!r} must be an absolute path")
            return UNSET
        if self.strict and ".." in text.split("/"):
            p.error(f"{key}: {text!r} must not contain '..'")
            return UNSET
        return Path(text)


@dataclass(frozen=True)
class Choice(Kind):
    """One of a few words."""

    choices: tuple[str, ...]

    def parse(self, key: str, text: str, p: Problems) -> Any:
        if text not in self.choices:
            p.error(f"{key}: {text!r} must be one of {', '.join(self.choices)}")
            return UNSET
        return text


@dataclass(frozen=True)
class Schedule(Kind):
    """Five cron fields or an @word; with `off`, the word off (or an empty value) means none."""

    off: bool = False

    @property
    def blank_is_value(self) -> bool:
        return self.off

    def parse(self, key: str, text: str, p: Problems) -> Any:
        if self.off and text.lower() == "off":
            return ""
        if text and not SCHEDULE_RE.match(text):
            alternatives = "), @weekly or off" if self.off else ") or @weekly"
            p.error(f"{key}: {text!r} is not five cron fields (e.g. '0 5 * * 0'{alternatives}")
            return UNSET
        return text


@dataclass(frozen=True)
class AddressPool(Kind):
    """A private IPv4 range and the prefix length of each network docker cuts from it
    (BASE/PREFIX:SIZE), or `off`."""

    type = tuple
    hashable = True

    def parse(self, key: str, text: str, p: Problems) -> Any:
        if text == "off":
            return ()
        base, _, size = text.partition(":")
        try:
            network = ipaddress.IPv4Network(base)
        except ValueError as exc:
            p.error(f"{key}: {text!r} is not BASE/PREFIX:SIZE, e.g. 172.16.0.0/12:24 ({exc})")
            return UNSET
        if not network.is_private:
            p.error(f"{key}: {base} is not a private range (10/8, 172.16/12, 192.168/16)")
            return UNSET
        if not size.isdigit() or not network.prefixlen < int(size) <= 29:
            p.error(f"{key}: the network size after ':' must be a prefix length between "
                    f"{network.prefixlen + 1} and 29, not {size!r}")
            return UNSET
        return (str(network), int(size))

    def show(self, value: Any) -> str:
        return f"{value[0]}:{value[1]}" if value else "off"


@dataclass(frozen=True)
class Url(Kind):
    """An http(s) URL. Its token-like parts are secrets too when the setting is one."""

    def parse(self, key: str, text: str, p: Problems) -> Any:
        if not re.match(r"^https?://", text):
            p.error(f"{key}: must start with http:// or https://")  # the value may be a secret
            return UNSET
        return text

    def secret_extras(self, value: Any) -> list[str]:
        return url_secret_parts(value)


class NotifyUrls(Kind):
    """Apprise URLs (scheme://...), separated by spaces, commas or newlines. Every URL, and its
    token-like parts, are secrets when the setting is one."""

    type = tuple

    def parse(self, key: str, text: str, p: Problems) -> Any:
        urls = split_urls(text)
        bad = [i + 1 for i, u in enumerate(urls) if not URL_RE.match(u)]
        if bad:  # never echo the value: it carries tokens
            p.error(f"{key}: URL number {', '.join(map(str, bad))} is not scheme://... "
                    "(Apprise URLs, e.g. ntfys://ntfy.sh/topic; separate several with spaces)")
            return UNSET
        return tuple(urls)

    def show(self, value: Any) -> str:
        return " ".join(value or ())

    def secret_extras(self, value: Any) -> list[str]:
        return [part for url in value or () for part in (url, *url_secret_parts(url))]


@dataclass(frozen=True)
class Dataset(Kind):
    """A ZFS filesystem name; with `pool_ok=False` it must lie inside a pool, not be one."""

    pool_ok: bool = True

    def parse(self, key: str, text: str, p: Problems) -> Any:
        why = validate_dataset_name(text)
        if why:
            p.error(f"{key}: {text!r} {why}")
            return UNSET
        if not self.pool_ok and "/" not in text:
            p.error(f"{key}: {text!r} is a pool; use a dataset inside it (e.g. {text}/services)")
            return UNSET
        return text


@dataclass(frozen=True)
class BorgRepo(Kind):
    """A local absolute path or ssh://user@host[:port]/path."""

    def parse(self, key: str, text: str, p: Problems) -> Any:
        if not (text.startswith("/") or text.startswith("ssh://")):
            p.error(f"{key}: {text!r} must be an absolute path or ssh://user@host[:port]/path")
            return UNSET
        if text.startswith("ssh://") and not re.match(r"^ssh://[^/@\s]+@[^/\s]+(/.*)$", text):
            p.error(f"{key}: {text!r} must look like ssh://user@host[:port]/path")
            return UNSET
        return text


@dataclass(frozen=True)
class Retention(Kind):
    """daily=7,weekly=4,... (borg prune's --keep-* options); with `off`, the word off (or an
    empty value) keeps nothing (an empty policy)."""

    type = dict[str, str]
    hashable = False
    off: bool = False

    @property
    def blank_is_value(self) -> bool:
        return self.off

    def parse(self, key: str, text: str, p: Problems) -> Any:
        if self.off and text.lower() in ("", "off"):
            return {}
        return parse_retention(text, key, p) or UNSET

    def show(self, value: Any) -> str:
        return show_retention(value) if value else "off"


@dataclass(frozen=True)
class Lines(Kind):
    """A multi-line value that a cross-check parses (it needs other settings to do so).
    The text is kept as written: line numbers in messages count from the opening quote."""

    type: Any = str
    strip = False
    hashable: bool = True
    render: Callable[[Any], str] | None = None

    def show(self, value: Any) -> str:
        return self.render(value) if self.render else super().show(value)


@dataclass(frozen=True)
class Derived:
    """A default computed from other settings' values (after their own checks): `compute`
    gets the values of `sources`; when one of them is missing or wrong, the default is None
    (loading fails anyway). `text` says what it is, for the documentation."""

    text: str
    sources: tuple[str, ...]
    compute: Callable[..., Any]

    def value(self, parsed: dict[str, Any]) -> Any:
        args = [parsed.get(key) for key in self.sources]
        return None if any(a is None for a in args) else self.compute(*args)


@dataclass(frozen=True)
class Setting:
    """One setting, declared once."""

    key: str  # as written in the .env; for a family of keys, a readable name (REMAPPED_*_UID)
    kind: Kind
    doc: str  # one line, shown by `config show --doc`
    default: Any = None  # a value, or Derived(...); None: none (a family always gives a dict)
    required: bool = False
    secret: bool = False  # never printed; handed to the runner, which masks it everywhere
    attr: str = ""  # the Settings attribute (default: the key in lower case)
    family: re.Pattern[str] | None = None  # a family of keys: the value is {key: parsed value}
    # How .env.example shows it (render_env_example):
    section: str = ""  # its heading there; given by _section(), never by hand
    example: str | dict[str, str] | None = None  # written set (KEY=example); a family: {key: value}
    sample: str | None = None  # written commented out (#KEY=sample) when there is no default to show
    note: str = ""  # guidance that follows the doc line in the file's comment (not repeating it)

    @property
    def name(self) -> str:
        return self.attr or self.key.lower()

    @property
    def default_text(self) -> str:
        """The default as the documentation says it: a Derived one's text; '' for none worth saying."""
        if isinstance(self.default, Derived):
            return self.default.text
        return "" if self.default is None else self.kind.show(self.default)

    @property
    def bounds(self) -> str:
        """'low..high' for a number, else ''."""
        return f"{self.kind.low}..{self.kind.high}" if isinstance(self.kind, Int) else ""

    @property
    def default_phrase(self) -> str:
        """'Default: X.' (with a number's bounds), or '' when there is no default worth saying."""
        shown, bounds = self.default_text, self.bounds
        if shown and bounds:
            return f"Default: {shown}, within {bounds}."
        return f"Default: {shown}." if shown else ""

    @property
    def described(self) -> str:
        """The doc line, with the default when there is one worth saying."""
        return f"{self.doc} {self.default_phrase}" if self.default_phrase else self.doc

    def default_value(self, parsed: dict[str, Any]) -> Any:
        if isinstance(self.default, Derived):
            return self.default.value(parsed)
        return copy.deepcopy(self.default)

    def matches(self, key: str) -> bool:
        return bool(self.family.match(key)) if self.family else key == self.key

    def read(self, values: dict[str, str | None], p: Problems) -> Any:
        """This setting's value from the .env, after its own checks; UNSET means the default."""
        if self.family:
            found: dict[str, Any] = {}
            for key, raw in values.items():
                if self.family.match(key):
                    value = self.kind.parse(key, (raw or "").strip(), p)
                    if value is not UNSET:
                        found[key] = value
            return found
        raw = values.get(self.key) or ""
        if not raw.strip():
            if self.kind.blank_is_value and self.key in values:
                return self.kind.parse(self.key, "", p)
            if self.required:
                p.error(f"{self.key}: required but missing or empty")
                return None
            return UNSET
        return self.kind.parse(self.key, raw.strip() if self.kind.strip else raw, p)



def show_retention(keep: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in keep.items())



# ---------------------------------------------------------------------------------------
# Checks of single values that cross-checks and other modules share
# ---------------------------------------------------------------------------------------


def url_secret_parts(url: str) -> list[str]:
    """Path segments and query values of a push URL that look like tokens."""
    parts = re.split(r"[/?&=#@:]", url)
    return [p for p in parts if len(p) >= 8 and not re.fullmatch(r"[A-Za-z.-]+", p)]


def validate_dataset_name(name: str) -> str | None:
    """Why ZFS would reject this filesystem name, or None if it is fine."""
    if not name:
        return "is empty"
    if len(name) > 255:
        return "is longer than 255 characters"
    if name.startswith("/") or name.endswith("/"):
        return "must not start or end with '/'"
    if "@" in name or "#" in name:
        return "must not contain '@' or '#' (those name snapshots and bookmarks)"
    parts = name.split("/")
    if any(p == "" for p in parts):
        return "has an empty component ('//')"
    pool = parts[0]
    if not POOL_NAME_RE.match(pool) or pool in RESERVED_POOL_NAMES or re.match(r"^c[0-9]", pool):
        return f"has an invalid pool name {pool!r} (must start with a letter; letters, digits, _ . : - only)"
    for part in parts[1:]:
        if part in (".", ".."):
            return f"has a component {part!r}"
        if not DATASET_COMPONENT_RE.match(part):
            return f"has an invalid component {part!r} (letters, digits, _ . : - only)"
    return None


def check_relative_path(rel: str) -> str | None:
    if not rel:
        return "path is empty"
    if rel.startswith("/"):
        return f"path {rel!r} is absolute; it must be relative to ZFS_BASE_MOUNTPOINT"
    parts = PurePosixPath(rel).parts
    if ".." in rel.split("/"):
        return f"path {rel!r} escapes ZFS_BASE_MOUNTPOINT with '..'"
    if any(p in ("", ".") for p in rel.split("/")):
        return f"path {rel!r} has an empty or '.' component"
    service = parts[0]
    if not SERVICE_NAME_RE.match(service):
        return (
            f"service name {service!r} (first path component) is not allowed: "
            "letters, digits, '_', '.', '-', starting with a letter or digit, at most 64"
        )
    for part in parts[1:]:
        if not PATH_COMPONENT_RE.match(part):
            return f"path component {part!r} contains characters that are not allowed"
    return None


def parse_retention(spec: str, where: str, p: Problems) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in filter(None, (s.strip() for s in re.split(r"[,\s]+", spec))):
        key, sep, value = item.partition("=")
        key = key.strip().lower().removeprefix("keep-").removeprefix("keep_")
        if not sep or key not in RETENTION_KEYS:
            p.error(f"{where}: {item!r} is not one of {', '.join(k + '=N' for k in RETENTION_KEYS)}")
            continue
        value = value.strip()
        if key == "within":
            if not WITHIN_RE.match(value):
                p.error(f"{where}: within={value!r} must look like 30d, 12H, 4w, 6m or 1y")
                continue
        elif not re.fullmatch(r"-?\d+", value) or int(value) < -1:
            p.error(f"{where}: {key}={value!r} must be a whole number (-1 keeps all)")
            continue
        out[key] = value
    return out
