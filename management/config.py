"""Settings: the .env file read into one frozen object, every problem reported at once.

Every setting is declared once, in `SETTINGS` below: its key, its kind (how the text becomes
a value and what makes it wrong), its default (a value, or `Derived` from other settings),
whether it is required or a secret, and one line of documentation. From that table come the
per-key checks, the `Settings` class and its values, `config show`, the unknown-key warning
and the list of secrets the runner masks. Rules that span several keys (the volume list and
its REMAPPED_*_UID keys, per-service retention, where VIEW_DATASET may live, how the
passphrase is given) are the functions in `CROSS_CHECKS`, run after every key was parsed.

Adding a setting: one `Setting(...)` line here, inside the `_section` it belongs to, then
`make env-example`: .env.example is rendered from this table (`render_env_example`: headings,
each setting's doc line and note, its example or its default commented out), and a unit test
checks that the committed file is that rendering.

`load_settings(path)` reads the file with `dotenv_values` (os.environ is never touched),
checks everything, and either returns `(Settings, warnings)` or raises `ConfigError`
listing every problem with its key and, for multi-line values, the line.
"""

from __future__ import annotations

import copy
import dataclasses
import io
import ipaddress
import os
import re
import stat
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from management.errors import ConfigError

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


class _Problems:
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

    def parse(self, key: str, text: str, p: _Problems) -> Any:
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

    def parse(self, key: str, text: str, p: _Problems) -> Any:
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

    def parse(self, key: str, text: str, p: _Problems) -> Any:
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

    def parse(self, key: str, text: str, p: _Problems) -> Any:
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

    def parse(self, key: str, text: str, p: _Problems) -> Any:
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

    def parse(self, key: str, text: str, p: _Problems) -> Any:
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

    def parse(self, key: str, text: str, p: _Problems) -> Any:
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

    def parse(self, key: str, text: str, p: _Problems) -> Any:
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

    def parse(self, key: str, text: str, p: _Problems) -> Any:
        if not re.match(r"^https?://", text):
            p.error(f"{key}: must start with http:// or https://")  # the value may be a secret
            return UNSET
        return text

    def secret_extras(self, value: Any) -> list[str]:
        return _url_secret_parts(value)


class NotifyUrls(Kind):
    """Apprise URLs (scheme://...), separated by spaces, commas or newlines. Every URL, and its
    token-like parts, are secrets when the setting is one."""

    type = tuple

    def parse(self, key: str, text: str, p: _Problems) -> Any:
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
        return [part for url in value or () for part in (url, *_url_secret_parts(url))]


@dataclass(frozen=True)
class Dataset(Kind):
    """A ZFS filesystem name; with `pool_ok=False` it must lie inside a pool, not be one."""

    pool_ok: bool = True

    def parse(self, key: str, text: str, p: _Problems) -> Any:
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

    def parse(self, key: str, text: str, p: _Problems) -> Any:
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

    def parse(self, key: str, text: str, p: _Problems) -> Any:
        if self.off and text.lower() in ("", "off"):
            return {}
        return _parse_retention(text, key, p) or UNSET

    def show(self, value: Any) -> str:
        return _show_retention(value) if value else "off"


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

    def read(self, values: dict[str, str | None], p: _Problems) -> Any:
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


def _below(key: str, name: str) -> Derived:
    """The default `<key's path>/<name>`."""
    return Derived(f"{key}/{name}", (key,), lambda directory: directory / name)


def _show_retention(keep: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in keep.items())


def _show_retention_overrides(overrides: dict[str, dict[str, str]]) -> str:
    return "; ".join(f"{service}:{_show_retention(keep)}" for service, keep in overrides.items())


def _show_volume_paths(paths: tuple[VolumePath, ...]) -> str:
    return "; ".join(f"{v.relative} -> {v.uid}:{v.gid} ({v.uid_key})" for v in paths)


# ---------------------------------------------------------------------------------------
# The declaration: every setting once, in sections, in the order of .env.example
# ---------------------------------------------------------------------------------------


def _section(title: str, *settings: Setting) -> tuple[Setting, ...]:
    """The settings under one heading of .env.example, each told its heading."""
    return tuple(dataclasses.replace(s, section=title) for s in settings)


SETTINGS: tuple[Setting, ...] = (
    *_section(
        "General",
        Setting("ADMIN_USER", Text(), "Your main non-root user.", required=True, example="runner",
                note="Paths below usually live in its home."),
        Setting("MANAGEMENT_DIR", AbsPath(strict=True), "Where this project (Makefile, management/) lives.",
                required=True, example="/home/runner/management",
                note="On the VM; borg_keys/ and borg_excludes.txt are kept there too."),
        Setting("VENV_DIR", AbsPath(strict=True), "The virtualenv `make install` creates and uses.", required=True,
                example="/home/runner/management/.venv", note="The Makefile runs the tool with its python."),
        Setting("SERVICES_DIR", AbsPath(strict=True), "One folder per Docker Compose stack.", required=True,
                example="/home/runner/services", note="Each holds its compose.yaml (or docker-compose.yml)."),
        Setting("HUB_SERVICE", Text(SERVICE_NAME_RE, "is not a valid service folder name"),
                "The reverse-proxy stack: started first, stopped last.", default="reverseproxy",
                note="Its folder name in SERVICES_DIR (in the examples: the Caddy reverse proxy)."),
    ),
    *_section(
        "Storage (ZFS)",
        Setting("ZFS_PARENT_DATASET", Dataset(pool_ok=False), "Parent dataset; one child dataset per service.",
                required=True, example="datapool/services", note="For example datapool/services/git."),
        Setting("ZFS_BASE_MOUNTPOINT", AbsPath(strict=True), "Where the parent dataset is mounted.", required=True,
                example="/datapool/services", note="Service data lives in ZFS_BASE_MOUNTPOINT/<service>."),
        Setting("SNAPSHOT_PREFIX",
                Text(SNAPSHOT_PREFIX_RE, "must be a letter followed by letters, digits, '_' or '-' (max 32)"),
                "Snapshots the tool takes (and the only ones it destroys) are <prefix>-<timestamp>.",
                default="orchestrator"),
        Setting("VIEW_DATASET", Dataset(), "Read-only clones borg reads from; must be outside ZFS_PARENT_DATASET.",
                default=Derived("<pool>/orchestrator-views", ("ZFS_PARENT_DATASET",),
                                lambda parent: parent.split("/", 1)[0] + "/orchestrator-views"),
                note="Each is a clone of a snapshot, mounted at a stable path (VIEW_MOUNTPOINT) so that borg's "
                     "files cache works."),
        Setting("VIEW_MOUNTPOINT", AbsPath(), "Where the views are mounted (stable, for borg's files cache).",
                default=Path("/run/orchestrator/views")),
    ),
    *_section(
        "Storage & permissions (userns-remap)",
        Setting("DOCKER_REMAP_USER", Text(), "Host user docker maps container users to.", default="dockeruser"),
        Setting("SUBID_START", Int(1, LARGEST_ID), "First host id of that user's subordinate range.",
                default=100000),
        Setting("SUBID_COUNT", Int(1, LARGEST_ID), "Size of that user's subordinate id range.", default=65536),
        Setting("DOCKER_DAEMON_JSON", AbsPath(), "The daemon.json setup-storage merges userns-remap into.",
                default=Path("/etc/docker/daemon.json")),
        Setting("DOCKER_ADDRESS_POOL", AddressPool(),
                "Where docker takes each stack's network from (daemon.json default-address-pools).",
                default=("172.16.0.0/12", 24),
                note="BASE/PREFIX:SIZE. Docker's own pools hold about 31 networks, and every stack "
                     "needs one: the 32nd stack would not start. This one holds 4096. Pick a range "
                     "your LAN does not use; `off` leaves Docker's pools. setup-storage sets it only "
                     "when daemon.json has no default-address-pools of its own."),
        Setting("SUBUID_FILE", AbsPath(), "Where setup-storage adds the subordinate uid range.",
                default=Path("/etc/subuid")),
        Setting("SUBGID_FILE", AbsPath(), "Where setup-storage adds the subordinate gid range.",
                default=Path("/etc/subgid")),
        Setting("DOCKER_RESTART_COMMAND", Text(),
                "Restarts docker after daemon.json changed; empty: systemctl or service.", default="",
                sample="systemctl restart docker",
                note="That is `systemctl restart docker`, or `service docker restart` without systemd."),
        Setting("REMAPPED_*_UID", Uid(), "Host ids (container id + SUBID_START) the volume list names.",
                family=UID_KEY_RE, attr="remapped_uids",
                example={"REMAPPED_ROOT_UID": "100000", "REMAPPED_POSTGRES_UID": "100999",
                         "REMAPPED_NODE_UID": "101000", "REMAPPED_GITEA_UID": "101000",
                         "REMAPPED_REDIS_UID": "100999"},
                note="One key REMAPPED_<NAME>_UID per owner: e.g. postgres (999) inside the container is 100999 "
                     "on the host."),
        Setting("SERVICE_VOLUME_PATHS_AND_OWNERS", Lines(tuple[VolumePath, ...], render=_show_volume_paths),
                "One service/path:UID_KEY[:GID_KEY] per line; the first component is the service.",
                required=True, attr="volume_paths",
                example="\n".join(("reverseproxy/caddy_data:REMAPPED_ROOT_UID",
                                   "reverseproxy/caddy_config:REMAPPED_ROOT_UID",
                                   "git/gitea-data:REMAPPED_GITEA_UID",
                                   "git/gitea-config:REMAPPED_GITEA_UID",
                                   "git/gitea-postgres:REMAPPED_POSTGRES_UID",
                                   "photo/immich-library:REMAPPED_NODE_UID",
                                   "photo/immich-postgres:REMAPPED_POSTGRES_UID",
                                   "photo/immich-model-cache:REMAPPED_NODE_UID",
                                   "status/data:REMAPPED_ROOT_UID")),
                note="One line per persistent directory, its path relative to ZFS_BASE_MOUNTPOINT. The service "
                     "becomes the dataset ZFS_PARENT_DATASET/<service>, the borg repository "
                     "BORG_REPO_BASE_PATH/<service> and must match its folder in SERVICES_DIR. Without GID_KEY "
                     "the group id equals the user id. Lines starting with # are ignored."),
    ),
    *_section(
        "Backups (Borg)",
        Setting("BORG_REPO_BASE_PATH", BorgRepo(), "One repository per service below this: a path or ssh://.",
                required=True, example="ssh://borg@backup.homelab.lan:22/./repos",
                note="A path is local; a remote one looks like ssh://user@host:port/path."),
        Setting("BORG_PASSPHRASE", Text(strip=False), "The repositories' passphrase (or one of the next two).",
                secret=True, example="change-me-to-a-long-random-passphrase",
                note="Give exactly one of BORG_PASSPHRASE, BORG_PASSCOMMAND and BORG_PASSPHRASE_FILE. It reaches "
                     "borg through the environment only, never the command line. Keep this file chmod 600."),
        Setting("BORG_PASSCOMMAND", Text(), "A command that prints the passphrase.",
                sample="cat /root/.borg-passphrase"),
        Setting("BORG_PASSPHRASE_FILE", AbsPath(), "A file that holds the passphrase (chmod 600).",
                sample="/root/.borg-passphrase"),
        Setting("BORG_RSH", Text(), "ssh command borg uses for ssh:// repositories.",
                example="ssh -i /home/runner/.ssh/id_borg -o BatchMode=yes", note="Its key must be readable by root."),
        Setting("BORG_BASE_DIR", AbsPath(), "Borg's cache, config and security dirs.",
                default=_below("MANAGEMENT_DIR", ".borg"),
                note="Kept out of a user's home, so that sudo leaves no root-owned files there."),
        Setting("BORG_KEYS_DIR", AbsPath(), "Exported repository keys, written 0600 on init.",
                default=_below("MANAGEMENT_DIR", "borg_keys")),
        Setting("BORG_EXCLUDES_FILE", AbsPath(), "Patterns borg skips.",
                default=_below("MANAGEMENT_DIR", "borg_excludes.txt")),
        Setting("BORG_COMPRESSION", Text(), "borg create --compression.", default="zstd,3"),
        Setting("BORG_PARALLEL", Int(1, 16), "Datasets borg backs up at once.", default=1,
                note="1: one after another."),
        Setting("BORG_RETENTION", Retention(), "Retention for every service (daily=N,weekly=N,...).",
                default=DEFAULT_RETENTION, attr="retention_default"),
        Setting("BORG_RETENTION_OVERRIDES",
                Lines(dict[str, dict[str, str]], hashable=False, render=_show_retention_overrides),
                "Per-service retention, one service:daily=N,... per line.", default={}, attr="retention_overrides",
                example="git:daily=365,weekly=52,monthly=24\nphoto:daily=90",
                note="What a line leaves out comes from BORG_RETENTION."),
        Setting("PRUNE_GUARD_SHRINK", Int(0, 99), "Hold a service's prune when its new archive has this many "
                "percent fewer bytes or files than the one before (or is empty after a non-empty one, or is "
                "older than its newest archive: a wrong clock); 0: off.", default=50,
                note="A dataset emptied by a mistake, ransomware or a bad migration is still backed up, but no "
                     "archive is pruned until `make release-prune SERVICE_NAME=...` says the change was meant."),
        Setting("CHANGE_GUARD_PERCENT", Int(0, 100), "Hold a service's prune, and keep the local snapshot from "
                "before, when a night modified or deleted more than this many percent of its files; 0: this rule "
                "off.", default=50,
                note="Ransomware and runaway apps rewrite files in place (same count, same size): the prune guard "
                     "does not see that, this does. A stack that rewrites everything on purpose says so in its "
                     "compose file (x-orchestrator: {mass-change: {limit: 90, reason: ...}}, docs/backup.md)."),
        Setting("CHANGE_GUARD_FACTOR", Int(0, 1000), "Also hold when a night modified or deleted more than this "
                "many times the most of its last 30 nights (at least CHANGE_GUARD_MIN_FILES); 0: this rule off.",
                default=10),
        Setting("CHANGE_GUARD_MIN_FILES", Int(1, 100_000_000), "Fewer modified or deleted files than this never "
                "trip the mass-change guard.", default=100,
                note="Keeps a small service (a few config files rewritten at once) from tripping it."),
        Setting("KEEP_LAST_SNAPSHOT", SWITCH, "Keep each dataset's last backed-up snapshot until the next backup.",
                default=1,
                note="1: on, 0: off. A local restore point and cheap change detection, for the space of blocks "
                     "changed since."),
        Setting("SKIP_UNCHANGED", SWITCH, "No borg run for a dataset with nothing written since its last backup.",
                default=1,
                note="Such a dataset is reported `unchanged` with the archive that holds it. Needs "
                     "KEEP_LAST_SNAPSHOT."),
        Setting("BORG_COMPACT_EVERY_DAYS", Int(0, 365),
                "borg compact at most every N days per repository (0: every run).", default=7),
        Setting("BORG_APPEND_ONLY", SWITCH, "This machine's key is append-only on the backup server "
                "(`make authorized-keys`): its nightly run never prunes or compacts.", default=0,
                note="1: a trusted machine holding the full-access key runs `make prune-trusted` instead, so a "
                     "compromised VM cannot delete the history (docs/security.md). 0: the night prunes and "
                     "compacts itself."),
    ),
    *_section(
        "Compose",
        Setting("COMPOSE_PARALLEL", Int(1, 64), "Stacks handled at once by docker-up/stop/start/down.", default=32,
                note="Keep it at least the number of stacks: the backup window is one wave of stops and one of "
                     "starts, a second wave doubles it. Each stack at work is one compose process (~45 MB, "
                     "mostly waiting for its containers); lower it only on a host short of memory."),
        Setting("HEALTH_TIMEOUT", Int(0, 3600), "Seconds to wait for healthchecks after up/start.", default=120,
                note="Only containers with a healthcheck are waited for."),
        Setting("STORAGE_WAIT", Int(0, 3600), "Seconds docker waits at boot for the pool and every dataset below "
                "ZFS_PARENT_DATASET to be mounted (a disk that appears late is imported by scanning); past that, "
                "docker is held back. 0: docker is only ordered after the ZFS mounts (make install-autostart).",
                default=300,
                note="Holding docker back keeps containers off empty mountpoints. Takes effect with "
                     "`make install-autostart`."),
        Setting("STOP_TIMEOUT", Int(1, 3600), "Upper bound, in seconds, on stopping one whole stack.", default=120,
                note="Each service gets its own declared stop_grace_period (compose's default: 10 s) before it is "
                     "killed; the tool never shortens it. Past this bound the tool stops waiting and reports the "
                     "stack; check-stacks flags a stop_grace_period that would not fit."),
        Setting("HOOK_TIMEOUT", Int(1, 3600), "Seconds a stack's before-snapshot command may take.", default=60,
                note="The x-orchestrator before-snapshot command (docs/backup.md); past it that stack is stopped "
                     "for the snapshot instead."),
        Setting("COMPOSE_COMMAND", Choice(("auto", "v2", "v1")), "Which compose runs the stacks: auto, v2 or v1.",
                default="auto", note="auto: `docker compose` when installed, else `docker-compose`, as v1 or v2 "
                                     "by its version (Debian 13's docker-compose is v2)."),
    ),
    *_section(
        "Image updates (make outdated / update / rollback; docs/updates.md)",
        Setting("UPDATE_SNAPSHOTS_KEEP", Int(1, 100), "Pre-update snapshots kept per stack.", default=3,
                note="With the old images, for `make rollback`."),
        Setting("UPDATE_SETTLE_SECONDS", Int(0, 600),
                "Seconds a service without healthcheck must stay up after update.", default=10,
                note="Up without a restart, for the update to count as healthy."),
        Setting("UPDATE_SCHEDULE", Schedule(), "Cron fields for a scheduled `update --yes`; empty: none.",
                default="", sample="0 5 * * 0", note="Installed by `make install-cron`."),
        Setting("UPDATE_PUSH_URL", Url(), "Push URL for update runs (start / success / fail).", secret=True,
                sample="https://hc-ping.com/your-other-uuid", note="Like PUSH_URL for backups. A secret."),
    ),
    *_section(
        "Local history and one file back (make versions / restore-path / mount; docs/restore.md)",
        Setting("SNAPSHOT_RETENTION", Retention(off=True), "Which nightly snapshots stay on the pool as local "
                "history (daily=N,weekly=N,..., as BORG_RETENTION); off: none but the last backed-up one.",
                default={"daily": "7"},
                note="`make versions` and `make restore-path` read them in seconds, with the service running. "
                     "Only snapshots this tool made are thinned; the one SKIP_UNCHANGED relies on always stays."),
        Setting("SNAPSHOT_SCHEDULE", Schedule(off=True), "Cron fields for snapshots between nights (nothing is "
                "stopped: crash-consistent); empty or off: none.", default="", sample="0 9-21/3 * * *",
                note="Installed by `make install-cron`; thinned by SNAPSHOT_RETENTION with the nightly ones."),
        Setting("SNAPSHOT_SPACE_WARN", Int(1, 100), "doctor warns when the local history holds more than this "
                "percent of the pool.", default=20,
                note="When the pool itself is nearly full (90%), the night removes the oldest history "
                     "snapshots first and says so."),
        Setting("MOUNT_DIR", AbsPath(), "Where `make mount` mounts a service's repository (MOUNT_DIR/<service>).",
                default=Path("/mnt/orchestrator"),
                note="Read-only. borg holds the repository's lock while it is mounted: the night fails that "
                     "service, naming the mount, until `make umount`."),
    ),
    *_section(
        "Restore drills (make drill; docs/restore.md)",
        Setting("DRILL_SCHEDULE", Schedule(off=True), "Cron fields for the restore drill; empty or off: none.",
                default="0 5 * * 0",
                note="Installed by `make install-cron`: each service's latest archive is extracted to scratch space "
                     "and compared with the snapshot it was made from."),
        Setting("DRILL_BOOT", SWITCH, "The drill also boots each restored stack, isolated, and waits for its "
                "healthchecks (make drill BOOT=1 does it once).", default=0,
                note="A throwaway stack from the archived stack folder: its own project and network (internal, "
                     "no ports), binds re-pointed to the restored copy, local images only. docs/restore.md."),
        Setting("CHECK_SCHEDULE", Schedule(off=True), "Cron fields for the repository check; empty or off: none.",
                default="0 4 1 * *",
                note="Installed by `make install-cron`: `borg check --repository-only` of every repository "
                     "(on the server for ssh:// ones), monthly by default; damage a drill of the latest archive "
                     "cannot see fails it, naming the service."),
        Setting("CHECK_VERIFY_DATA", SWITCH, "The scheduled check also reads and verifies every chunk "
                "(--verify-data): slow, all data crosses the network.", default=0),
        Setting("DRILL_DIR", AbsPath(), "Where drills extract to; empty: a temporary dataset beside the views.",
                sample="/var/tmp/orchestrator-drill",
                note="Never inside a service dataset. The temporary dataset is removed afterwards."),
    ),
    *_section(
        "Running",
        Setting("COMMAND_TIMEOUT", Int(10, 7 * 24 * 3600), "Seconds any single zfs/docker command may take.",
                default=600),
        Setting("BORG_TIMEOUT", Int(60, 7 * 24 * 3600), "Seconds any single borg command may take.",
                default=6 * 3600),
        Setting("PROGRESS_INTERVAL", Int(1, 24 * 3600), "Seconds between progress lines of borg work when not on a "
                "terminal (cron, --json).", default=300, note="On a terminal the progress is live."),
        Setting("LOCK_FILE", AbsPath(), "Keeps two runs from overlapping.",
                default=Path("/run/lock/orchestrator.lock")),
        Setting("STATE_DIR", AbsPath(), "Where run state is kept.", default=Path("/var/lib/orchestrator")),
    ),
    *_section(
        "Monitoring (optional)",
        Setting("PUSH_URL", Url(), "Push URL for backup runs; /start and /fail are appended.", secret=True,
                sample="https://hc-ping.com/your-uuid",
                note="Uptime Kuma / healthchecks.io style. A secret: never printed."),
        Setting("PROMETHEUS_TEXTFILE", AbsPath(), "node_exporter textfile collector output.",
                sample="/var/lib/node_exporter/textfile_collector/orchestrator.prom"),
        Setting("STATUS_PAGE_DIR", AbsPath(), "Folder every run writes index.html into: the static status page.",
                sample="/srv/status-page",
                note="One self-contained HTML file (verdict per service, the last 30 nights charted); the hub "
                     "serves it read-only (docs/monitoring.md). Empty: no page."),
        Setting("NOTIFY_URLS", NotifyUrls(), "Apprise URLs notified after backup, update and drill runs.",
                secret=True, default=(), sample="ntfys://ntfy.sh/your-topic tgram://your-bot-token/your-chat-id",
                note="ntfy, Gotify, Telegram, mailto, Discord, json://...; several separated by spaces. Secrets: "
                     "never printed. See docs/monitoring.md."),
        Setting("NOTIFY_ON", Choice(("failure", "always")), "When to notify: failure (default) or always.",
                default="failure", note="failure: only after a run that failed."),
        Setting("STALE_AFTER", Int(1, 8760), "Hours after a service's last good backup before status and doctor "
                "call it stale.", default=36,
                note="With the nightly backup, 36 h makes one missed or failed night show by the next afternoon."),
    ),
)


# ---------------------------------------------------------------------------------------
# The Settings object, built from the declaration
# ---------------------------------------------------------------------------------------


def stack_folders(services_dir: Path) -> list[str]:
    """Folders of SERVICES_DIR holding a compose file compose picks up by itself, whose name is a
    valid project name (check-stacks names the others). Symlinked folders are followed."""
    try:
        entries = sorted(services_dir.iterdir())
    except OSError:
        return []
    return [d.name for d in entries if not d.name.startswith(".") and PROJECT_RE.match(d.name)
            and SERVICE_NAME_RE.match(d.name) and any((d / c).is_file() for c in COMPOSE_FILES)]


def _compose_file_problem(path: Path) -> str | None:
    """'<file>: <why>' when the file cannot be read, or is not YAML (line and column, as PyYAML
    says); None otherwise. Only the syntax: tags like compose's `!reset` are not constructed."""
    import yaml

    try:
        yaml.compose(path.read_text(), Loader=yaml.SafeLoader)
    except OSError as exc:
        return f"{path}: {exc.strerror}"
    except UnicodeDecodeError as exc:
        return f"{path}: not UTF-8 text (byte {exc.start})"
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        return f"{path}:{where}: {getattr(exc, 'problem', None) or exc}"
    return None


class _SettingsMethods:
    """What every Settings object can answer besides its values (the attributes)."""

    env_file: Path
    volume_paths: tuple[VolumePath, ...]

    @property
    def listed_services(self) -> tuple[str, ...]:
        """The services SERVICE_VOLUME_PATHS_AND_OWNERS names, in the order they first appear."""
        seen: dict[str, None] = {}
        for vp in self.volume_paths:
            seen.setdefault(vp.service, None)
        return tuple(seen)

    @property
    def services(self) -> tuple[str, ...]:
        """Every service (= child dataset, borg repository): the listed ones, then every stack
        folder in SERVICES_DIR that none of them names, by name. A stack folder is backed up
        (its folder at least) whether or not a path of it is listed."""
        listed = self.listed_services
        return listed + tuple(n for n in stack_folders(self.services_dir) if n not in listed)

    def stack_problems(self) -> list[str]:
        """What `config check` says of SERVICES_DIR against SERVICE_VOLUME_PATHS_AND_OWNERS, per
        service: a listed service with no stack folder (or one without a compose file), a compose
        file that cannot be read as YAML (syntax only: what it means is compose's answer, in
        check-stacks), and a stack no line lists (only its folder is backed up, no directory of
        it is made or owned). Warnings: the settings themselves are valid."""
        folders = stack_folders(self.services_dir)
        listed = self.listed_services
        out = []
        for service in listed:
            folder = self.services_dir / service
            if service in folders:
                continue
            if folder.is_symlink() and not folder.exists():
                out.append(f"{service}: listed in SERVICE_VOLUME_PATHS_AND_OWNERS, but {folder} is a symlink to "
                           f"{os.readlink(folder)}, which does not exist: nothing of it can start")
            elif not folder.is_dir():
                out.append(f"{service}: listed in SERVICE_VOLUME_PATHS_AND_OWNERS, but {folder} does not exist: its "
                           "dataset is made and backed up, and no stack uses it (a typo, or the stack folder is "
                           "still to come?)")
            else:
                out.append(f"{service}: listed in SERVICE_VOLUME_PATHS_AND_OWNERS, but {folder} holds no compose "
                           f"file ({', '.join(COMPOSE_FILES)}): it is not a stack")
        for service in folders:
            problem = _compose_file_problem(next(self.services_dir / service / c for c in COMPOSE_FILES
                                                 if (self.services_dir / service / c).is_file()))
            if problem:
                out.append(f"{service}: compose cannot read {problem}")
            if service not in listed:
                out.append(f"{service}: no line in SERVICE_VOLUME_PATHS_AND_OWNERS: only its stack folder is backed "
                           f"up, and no directory of its dataset is made or owned; add one per data directory "
                           f"('{service}/data:REMAPPED_ROOT_UID'), or `make adopt SERVICE_NAME={service}` once the "
                           "stack has run (it moves its volumes onto the dataset and writes the lines)")
        return out

    def dataset(self, service: str) -> str:
        return f"{self.zfs_parent_dataset}/{service}"

    def mountpoint(self, service: str) -> Path:
        return self.zfs_base_mountpoint / service

    def repo(self, service: str) -> str:
        return f"{self.borg_repo_base_path.rstrip('/')}/{service}"

    def retention(self, service: str) -> dict[str, str]:
        merged = dict(self.retention_default)
        merged.update(self.retention_overrides.get(service, {}))
        return merged

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values that must never appear in output (masked by the runner and the CLI)."""
        set_secrets = [(s, getattr(self, s.name)) for s in SETTINGS if s.secret]
        out = [value for _, value in set_secrets if value and isinstance(value, str)]
        for s, value in set_secrets:
            if value:
                out.extend(s.kind.secret_extras(value))
        return tuple(out)

    def rows(self) -> list[tuple[str, str, str]]:
        """(key, value as text with secrets replaced, documentation) of every setting, in the
        order of the declaration, for `config show`. A family of keys gives one row per key."""
        out = [("ENV_FILE", str(self.env_file), "The settings file read (--env-file).")]
        for s in SETTINGS:
            value = getattr(self, s.name)
            if s.family:
                out.extend((key, s.kind.show(v), s.described) for key, v in value.items())
            else:
                out.append((s.key, ("***" if value else "") if s.secret else s.kind.show(value), s.described))
        return out

    def masked(self) -> dict[str, str]:
        """Every setting as text, secrets replaced: {key: value}."""
        return {key: value for key, value, _ in self.rows()}


def _field(s: Setting) -> tuple[str, Any, dataclasses.Field]:
    typ, hashable = s.kind.type, s.kind.hashable
    if s.family:
        typ, hashable = dict[str, typ], False
    elif not s.required and s.default is None:
        typ = typ | None
    return s.name, typ, dataclasses.field(repr=not s.secret, hash=None if hashable else False)


Settings = dataclasses.make_dataclass(
    "Settings",
    [("env_file", Path), *(_field(s) for s in SETTINGS)],
    bases=(_SettingsMethods,),
    frozen=True,
)
Settings.__module__ = __name__
Settings.__doc__ = "Every setting's value (attributes named after the keys, in lower case); see SETTINGS."


# ---------------------------------------------------------------------------------------
# Checks of single values that cross-checks and other modules share
# ---------------------------------------------------------------------------------------


def _url_secret_parts(url: str) -> list[str]:
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


def _check_relative_path(rel: str) -> str | None:
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


def _parse_retention(spec: str, where: str, p: _Problems) -> dict[str, str]:
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


# ---------------------------------------------------------------------------------------
# Cross-checks: rules that span several settings, run after every key was parsed
# ---------------------------------------------------------------------------------------


@dataclass
class _Loading:
    """What the cross-checks see: the file, its raw values, and every setting's parsed value
    by key (a setting whose own check failed holds its default, or None)."""

    path: Path
    values: dict[str, str | None]
    key_lines: dict[str, list[int]]
    parsed: dict[str, Any]
    p: _Problems


def check_one_passphrase_source(ld: _Loading) -> None:
    """Exactly one of BORG_PASSPHRASE / BORG_PASSCOMMAND / BORG_PASSPHRASE_FILE; a passphrase
    of at least 8 characters."""
    present = [k for k in PASSPHRASE_KEYS if (ld.values.get(k) or "").strip()]
    if not present:
        ld.p.error("BORG_PASSPHRASE: required (or BORG_PASSCOMMAND / BORG_PASSPHRASE_FILE instead)")
    elif len(present) > 1:
        ld.p.error(f"{' and '.join(present)}: set only one way to give the passphrase")
    passphrase = ld.parsed["BORG_PASSPHRASE"]
    if passphrase is not None and len(passphrase) < 8:
        ld.p.error("BORG_PASSPHRASE: shorter than 8 characters")


def parse_volume_paths(ld: _Loading) -> None:
    """SERVICE_VOLUME_PATHS_AND_OWNERS, line by line, against the REMAPPED_*_UID keys."""
    key = "SERVICE_VOLUME_PATHS_AND_OWNERS"
    raw = ld.parsed[key]
    if not isinstance(raw, str):  # missing: already reported as required
        ld.parsed[key] = ()
        return
    uids = ld.parsed["REMAPPED_*_UID"]
    broken = {k for k in ld.values if UID_KEY_RE.match(k)} - set(uids)  # reported as not a number
    # The value usually starts on the line after `KEY="`; dotenv keeps the leading newline.
    base_line = ld.key_lines.get(key, [None])[0]
    p = ld.p
    out: list[VolumePath] = []
    seen: dict[str, int] = {}
    bad_lines = 0
    for number, line in enumerate(raw.split("\n"), start=1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        where = f"{key} line {number}"
        if base_line:
            where += f" (.env line {base_line + number - 1})"
        fields = entry.split(":")
        if len(fields) not in (2, 3):
            p.error(f"{where}: {entry!r} is not 'relative/path:UID_KEY' (or 'path:UID_KEY:GID_KEY')")
            bad_lines += 1
            continue
        rel = fields[0].strip().rstrip("/")
        keys = [f.strip() for f in fields[1:]]
        bad = False
        reason = _check_relative_path(rel)
        if reason:
            p.error(f"{where}: {reason}")
            bad = True
        for uid_key in keys:
            if uid_key in broken:
                bad = True  # already reported as not a number
            elif uid_key not in uids:
                known = ", ".join(sorted(uids)) or "none defined"
                p.error(f"{where}: unknown UID key {uid_key!r} (defined: {known})")
                bad = True
        if rel in seen and not bad:
            p.error(f"{where}: duplicate entry {rel!r} (first on line {seen[rel]})")
            bad = True
        if bad:
            bad_lines += 1
            continue
        seen[rel] = number
        uid = uids[keys[0]]
        gid = uids[keys[1]] if len(keys) == 2 else uid
        out.append(VolumePath(rel, keys[0], uid, gid, number))
    if not out and not bad_lines:
        p.error(f"{key}: no entries (one 'service/path:UID_KEY' per line)")
    ld.parsed[key] = tuple(out)


def warn_ids_outside_subid_range(ld: _Loading) -> None:
    """A volume owner outside the remap user's subordinate range: no container will own it."""
    start, count = ld.parsed["SUBID_START"], ld.parsed["SUBID_COUNT"]
    for vp in ld.parsed["SERVICE_VOLUME_PATHS_AND_OWNERS"]:
        for kind, number in (("UID", vp.uid), ("GID", vp.gid)):
            if not start <= number < start + count:
                ld.p.warn(
                    f"SERVICE_VOLUME_PATHS_AND_OWNERS line {vp.line}: {kind} {number} is outside the "
                    f"userns-remap range {start}..{start + count - 1}; containers will not own it"
                )


def parse_retention_overrides(ld: _Loading) -> None:
    """BORG_RETENTION_OVERRIDES: one `service:daily=N,...` per line, for a known service."""
    key = "BORG_RETENTION_OVERRIDES"
    raw = ld.parsed[key]
    overrides: dict[str, dict[str, str]] = {}
    services = list(dict.fromkeys(vp.service for vp in ld.parsed["SERVICE_VOLUME_PATHS_AND_OWNERS"]))
    for number, line in enumerate(raw.split("\n") if isinstance(raw, str) else [], start=1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        where = f"{key} line {number}"
        service, sep, spec = entry.partition(":")
        service = service.strip()
        if not sep:
            ld.p.error(f"{where}: {entry!r} is not 'service:daily=N,weekly=N,...'")
            continue
        if services and service not in services:
            ld.p.error(f"{where}: unknown service {service!r} (known: {', '.join(services)})")
            continue
        if service in overrides:
            ld.p.error(f"{where}: duplicate entry for {service!r}")
            continue
        overrides[service] = _parse_retention(spec, where, ld.p)
    ld.parsed[key] = overrides


def check_view_dataset_outside_parent(ld: _Loading) -> None:
    """The views must not lie inside ZFS_PARENT_DATASET: the recursive snapshot would take them."""
    view, parent = ld.parsed["VIEW_DATASET"], ld.parsed["ZFS_PARENT_DATASET"]
    if view and parent and (view == parent or view.startswith(parent + "/")):
        ld.p.error(
            f"VIEW_DATASET: {view!r} lies inside ZFS_PARENT_DATASET; it would be included "
            "in the recursive snapshot. Put it beside it (e.g. POOL/orchestrator-views)"
        )


def warn_readable_passphrase(ld: _Loading) -> None:
    """The .env holding BORG_PASSPHRASE, or BORG_PASSPHRASE_FILE, readable by others."""
    try:
        mode = ld.path.stat().st_mode
        if ld.parsed["BORG_PASSPHRASE"] and mode & (stat.S_IROTH | stat.S_IRGRP):
            who = "everyone" if mode & stat.S_IROTH else "its group"
            ld.p.warn(f"{ld.path} holds BORG_PASSPHRASE and is readable by {who}: run `chmod 600 {ld.path}`")
    except OSError:
        pass
    passphrase_file = ld.parsed["BORG_PASSPHRASE_FILE"]
    if passphrase_file:
        try:
            if passphrase_file.stat().st_mode & (stat.S_IROTH | stat.S_IRGRP):
                ld.p.warn(
                    f"BORG_PASSPHRASE_FILE {passphrase_file} is readable by others: "
                    f"run `chmod 600 {passphrase_file}`"
                )
        except OSError:
            ld.p.error(f"BORG_PASSPHRASE_FILE: {passphrase_file} does not exist or cannot be read")


def warn_unknown_keys(ld: _Loading) -> None:
    for key in ld.values:
        if not any(s.matches(key) for s in SETTINGS):
            ld.p.warn(f"{key}: unknown key, ignored (typo?)")


CROSS_CHECKS: tuple[Callable[[_Loading], None], ...] = (
    check_one_passphrase_source,
    parse_volume_paths,
    warn_ids_outside_subid_range,
    parse_retention_overrides,
    check_view_dataset_outside_parent,
    warn_readable_passphrase,
    warn_unknown_keys,
)


# ---------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------


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
    p = _Problems()
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
    loading = _Loading(path, values, key_lines, parsed, p)
    for check in CROSS_CHECKS:
        check(loading)

    if p.errors:
        raise ConfigError(p.errors, str(path), p.warnings)
    settings = Settings(env_file=path, **{s.name: parsed[s.key] for s in SETTINGS})
    return settings, p.warnings


# ---------------------------------------------------------------------------------------
# .env.example, rendered from the declaration (`make env-example` writes it)
# ---------------------------------------------------------------------------------------

ENV_EXAMPLE_HEADER = (
    "# Orchestrator settings: copy to .env (chmod 600 .env) and edit.",
    "# Read with python-dotenv; values may be quoted, multi-line values need double quotes.",
    "# `orchestrator config check` (make config-check) validates this file and lists every problem.",
    "# Generated from SETTINGS in management/config.py by `make env-example`: edit that, not this file.",
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
    p = _Problems()
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
