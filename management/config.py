"""Settings: the .env file read into one frozen object, every problem reported at once.

`load_settings(path)` reads the file with `dotenv_values` (os.environ is never touched),
checks everything, and either returns `(Settings, warnings)` or raises `ConfigError`
listing every problem with its key and, for multi-line values, the line.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from .errors import ConfigError

REQUIRED_KEYS = (
    "ADMIN_USER",
    "MANAGEMENT_DIR",
    "VENV_DIR",
    "SERVICES_DIR",
    "ZFS_PARENT_DATASET",
    "ZFS_BASE_MOUNTPOINT",
    "BORG_REPO_BASE_PATH",
    "SERVICE_VOLUME_PATHS_AND_OWNERS",
)
PASSPHRASE_KEYS = ("BORG_PASSPHRASE", "BORG_PASSCOMMAND", "BORG_PASSPHRASE_FILE")
SECRET_KEYS = ("BORG_PASSPHRASE", "PUSH_URL", "UPDATE_PUSH_URL")
UID_KEY_RE = re.compile(r"^REMAPPED_[A-Z0-9_]+_UID$")
# A service name becomes a ZFS dataset component, a borg repository directory, an archive
# prefix and a compose folder name. Stricter than ZFS on purpose: no spaces, no shell
# metacharacters, no ':' (archive names), no leading dot or dash.
SERVICE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
PATH_COMPONENT_RE = re.compile(r"^[A-Za-z0-9_.@+-][A-Za-z0-9_.@+ -]*$")
DATASET_COMPONENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
POOL_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.:-]*$")
RESERVED_POOL_NAMES = {"mirror", "raidz", "raidz1", "raidz2", "raidz3", "spare", "log", "cache"}
SNAPSHOT_PREFIX_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,31}$")
RETENTION_KEYS = ("within", "hourly", "daily", "weekly", "monthly", "yearly")
DEFAULT_RETENTION = {"daily": "7", "weekly": "4", "monthly": "6"}
WITHIN_RE = re.compile(r"^\d+[HdwmyS]$")
COMPOSE_COMMANDS = ("auto", "v2", "v1")
INT_KEYS = {
    # key: (default, minimum, maximum)
    "BORG_PARALLEL": (1, 1, 16),
    "COMPOSE_PARALLEL": (8, 1, 64),
    "HEALTH_TIMEOUT": (120, 0, 3600),
    "STOP_TIMEOUT": (120, 1, 3600),
    "COMMAND_TIMEOUT": (600, 10, 7 * 24 * 3600),
    "BORG_TIMEOUT": (6 * 3600, 60, 7 * 24 * 3600),
    "BORG_COMPACT_EVERY_DAYS": (7, 0, 365),
    "HOOK_TIMEOUT": (60, 1, 3600),
    "KEEP_LAST_SNAPSHOT": (1, 0, 1),
    "SKIP_UNCHANGED": (1, 0, 1),
    "UPDATE_SNAPSHOTS_KEEP": (3, 1, 100),
    "UPDATE_SETTLE_SECONDS": (10, 0, 600),
    "SUBID_START": (100000, 1, 4294967294),
    "SUBID_COUNT": (65536, 1, 4294967294),
    "STALE_AFTER": (36, 1, 8760),  # hours: a last backup older than this is stale (status, doctor)
}


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


@dataclass(frozen=True)
class Settings:
    env_file: Path
    admin_user: str
    management_dir: Path
    venv_dir: Path
    services_dir: Path
    zfs_parent_dataset: str
    zfs_base_mountpoint: Path
    borg_repo_base_path: str
    volume_paths: tuple[VolumePath, ...]
    remapped_uids: dict[str, int] = field(hash=False)
    borg_passphrase: str | None = field(default=None, repr=False)
    borg_passcommand: str | None = None
    borg_passphrase_file: Path | None = None
    borg_rsh: str | None = None
    borg_base_dir: Path | None = None
    borg_keys_dir: Path | None = None
    borg_excludes_file: Path | None = None
    borg_compression: str = "zstd,3"
    borg_parallel: int = 1
    borg_timeout: int = 6 * 3600
    borg_compact_every_days: int = 7
    retention_default: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_RETENTION), hash=False)
    retention_overrides: dict[str, dict[str, str]] = field(default_factory=dict, hash=False)
    hub_service: str = "reverseproxy"
    compose_parallel: int = 8
    health_timeout: int = 120
    stop_timeout: int = 120
    compose_command: str = "auto"  # auto | v2 (docker compose) | v1 (docker-compose)
    hook_timeout: int = 60
    keep_last_snapshot: int = 1
    skip_unchanged: int = 1
    update_snapshots_keep: int = 3
    update_settle_seconds: int = 10
    update_schedule: str = ""  # cron fields for a scheduled `update`; empty: none
    drill_schedule: str = "0 5 * * 0"  # cron fields for the restore drill; empty: none
    drill_dir: Path | None = None  # scratch for drills; None: a temporary dataset beside the views
    command_timeout: int = 600
    snapshot_prefix: str = "orchestrator"
    view_dataset: str = ""
    view_mountpoint: Path = Path("/run/orchestrator/views")
    lock_file: Path = Path("/run/lock/orchestrator.lock")
    state_dir: Path = Path("/var/lib/orchestrator")
    push_url: str | None = field(default=None, repr=False)
    update_push_url: str | None = field(default=None, repr=False)
    prometheus_textfile: Path | None = None
    docker_remap_user: str = "dockeruser"
    subid_start: int = 100000
    subid_count: int = 65536
    docker_daemon_json: Path = Path("/etc/docker/daemon.json")
    subuid_file: Path = Path("/etc/subuid")
    subgid_file: Path = Path("/etc/subgid")
    docker_restart_command: str = ""  # empty: systemctl/service, whichever the host has
    stale_after: int = 36  # hours since a service's last good backup before status/doctor call it stale

    @property
    def services(self) -> tuple[str, ...]:
        """Service (= child dataset) names in the order they first appear in the .env."""
        seen: dict[str, None] = {}
        for vp in self.volume_paths:
            seen.setdefault(vp.service, None)
        return tuple(seen)

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
        out = [s for s in (self.borg_passphrase, self.push_url, self.update_push_url) if s]
        for url in (self.push_url, self.update_push_url):
            if url:
                out.extend(_url_secret_parts(url))
        return tuple(out)

    def masked(self) -> dict[str, str]:
        """Every setting as text, secrets replaced, for `config show`."""
        rows: dict[str, str] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if name in ("borg_passphrase", "push_url", "update_push_url"):
                value = "***" if value else ""
            elif name == "volume_paths":
                value = "; ".join(f"{v.relative} -> {v.uid}:{v.gid} ({v.uid_key})" for v in value)
            elif value is None:
                value = ""
            rows[name.upper()] = str(value)
        return rows


def _url_secret_parts(url: str) -> list[str]:
    """Path segments and query values of a push URL that look like tokens."""
    parts = re.split(r"[/?&=#@:]", url)
    return [p for p in parts if len(p) >= 8 and not re.fullmatch(r"[A-Za-z.-]+", p)]


# ---------------------------------------------------------------------------------------
# Loading and validation
# ---------------------------------------------------------------------------------------


class _Problems:
    def __init__(self) -> None:
        self.errors: list[str] = []
        self.warnings: list[str] = []

    def error(self, msg: str) -> None:
        self.errors.append(msg)

    def warn(self, msg: str) -> None:
        self.warnings.append(msg)


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


def _int(values: dict[str, str | None], key: str, p: _Problems) -> int:
    default, low, high = INT_KEYS[key]
    raw = (values.get(key) or "").strip()
    if not raw:
        return default
    if not re.fullmatch(r"\d+", raw):
        p.error(f"{key}: {raw!r} is not a whole number")
        return default
    number = int(raw)
    if not low <= number <= high:
        p.error(f"{key}: {number} is outside {low}..{high}")
        return default
    return number


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


def _parse_volume_paths(
    raw: str, uids: dict[str, int], broken_keys: set[str], base_line: int | None, p: _Problems
) -> tuple[VolumePath, ...]:
    out: list[VolumePath] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(raw.split("\n"), start=1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        where = f"SERVICE_VOLUME_PATHS_AND_OWNERS line {number}"
        if base_line:
            where += f" (.env line {base_line + number - 1})"
        fields = entry.split(":")
        if len(fields) not in (2, 3):
            p.error(f"{where}: {entry!r} is not 'relative/path:UID_KEY' (or 'path:UID_KEY:GID_KEY')")
            continue
        rel = fields[0].strip().rstrip("/")
        keys = [f.strip() for f in fields[1:]]
        bad = False
        reason = _check_relative_path(rel)
        if reason:
            p.error(f"{where}: {reason}")
            bad = True
        for key in keys:
            if key in broken_keys:
                bad = True  # already reported as not a number
            elif key not in uids:
                known = ", ".join(sorted(uids)) or "none defined"
                p.error(f"{where}: unknown UID key {key!r} (defined: {known})")
                bad = True
        if rel in seen and not bad:
            p.error(f"{where}: duplicate entry {rel!r} (first on line {seen[rel]})")
            bad = True
        if bad:
            continue
        seen[rel] = number
        uid = uids[keys[0]]
        gid = uids[keys[1]] if len(keys) == 2 else uid
        out.append(VolumePath(rel, keys[0], uid, gid, number))
    if not out and not p.errors:
        p.error("SERVICE_VOLUME_PATHS_AND_OWNERS: no entries (one 'service/path:UID_KEY' per line)")
    return tuple(out)


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


def load_settings(env_file: str | os.PathLike[str]) -> tuple[Settings, list[str]]:
    """Read and validate `env_file`. Returns (settings, warnings) or raises ConfigError."""
    path = Path(env_file)
    p = _Problems()
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
        raw = raw_bytes.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([f"not UTF-8 text (byte {exc.start})"], str(path)) from None

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

    import io

    from dotenv import dotenv_values  # lazily: `--help` does not read a .env

    values = dotenv_values(stream=io.StringIO(raw), interpolate=True)

    def get(key: str) -> str:
        return (values.get(key) or "").strip()

    for key in REQUIRED_KEYS:
        if not get(key):
            p.error(f"{key}: required but missing or empty")

    present_pass = [k for k in PASSPHRASE_KEYS if get(k)]
    if not present_pass:
        p.error("BORG_PASSPHRASE: required (or BORG_PASSCOMMAND / BORG_PASSPHRASE_FILE instead)")
    elif len(present_pass) > 1:
        p.error(f"{' and '.join(present_pass)}: set only one way to give the passphrase")
    passphrase = values.get("BORG_PASSPHRASE") or None
    if passphrase is not None and len(passphrase) < 8:
        p.error("BORG_PASSPHRASE: shorter than 8 characters")

    # UIDs first: volume paths refer to them.
    uids: dict[str, int] = {}
    broken_uid_keys: list[str] = []
    for key, value in values.items():
        if UID_KEY_RE.match(key):
            text = (value or "").strip()
            if not re.fullmatch(r"\d+", text):
                p.error(f"{key}: {text!r} is not a number")
                broken_uid_keys.append(key)
                continue
            number = int(text)
            if number > 4294967294:
                p.error(f"{key}: {number} is larger than the largest UID (4294967294)")
                broken_uid_keys.append(key)
                continue
            uids[key] = number

    for key in ("MANAGEMENT_DIR", "VENV_DIR", "SERVICES_DIR", "ZFS_BASE_MOUNTPOINT"):
        v = get(key)
        if v and not v.startswith("/"):
            p.error(f"{key}: {v!r} must be an absolute path")
        elif v and ".." in v.split("/"):
            p.error(f"{key}: {v!r} must not contain '..'")

    parent = get("ZFS_PARENT_DATASET")
    if parent:
        why = validate_dataset_name(parent)
        if why:
            p.error(f"ZFS_PARENT_DATASET: {parent!r} {why}")
        elif "/" not in parent:
            p.error(f"ZFS_PARENT_DATASET: {parent!r} is a pool; use a dataset inside it (e.g. {parent}/services)")

    volume_paths: tuple[VolumePath, ...] = ()
    if get("SERVICE_VOLUME_PATHS_AND_OWNERS"):
        start = key_lines.get("SERVICE_VOLUME_PATHS_AND_OWNERS", [None])[0]
        # The value usually starts on the line after `KEY="`; dotenv keeps the leading newline.
        volume_paths = _parse_volume_paths(
            values["SERVICE_VOLUME_PATHS_AND_OWNERS"] or "", uids, set(broken_uid_keys), start, p
        )

    subid_start = _int(values, "SUBID_START", p)
    subid_count = _int(values, "SUBID_COUNT", p)
    for vp in volume_paths:
        for kind, number in (("UID", vp.uid), ("GID", vp.gid)):
            if not subid_start <= number < subid_start + subid_count:
                p.warn(
                    f"SERVICE_VOLUME_PATHS_AND_OWNERS line {vp.line}: {kind} {number} is outside the "
                    f"userns-remap range {subid_start}..{subid_start + subid_count - 1}; containers will not own it"
                )

    services = list(dict.fromkeys(vp.service for vp in volume_paths))
    hub = get("HUB_SERVICE") or "reverseproxy"
    if not SERVICE_NAME_RE.match(hub):
        p.error(f"HUB_SERVICE: {hub!r} is not a valid service folder name")

    retention_default = dict(DEFAULT_RETENTION)
    if get("BORG_RETENTION"):
        retention_default = _parse_retention(get("BORG_RETENTION"), "BORG_RETENTION", p) or retention_default
    overrides: dict[str, dict[str, str]] = {}
    raw_over = values.get("BORG_RETENTION_OVERRIDES") or ""
    for number, line in enumerate(raw_over.split("\n"), start=1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        where = f"BORG_RETENTION_OVERRIDES line {number}"
        service, sep, spec = entry.partition(":")
        service = service.strip()
        if not sep:
            p.error(f"{where}: {entry!r} is not 'service:daily=N,weekly=N,...'")
            continue
        if services and service not in services:
            p.error(f"{where}: unknown service {service!r} (known: {', '.join(services)})")
            continue
        if service in overrides:
            p.error(f"{where}: duplicate entry for {service!r}")
            continue
        overrides[service] = _parse_retention(spec, where, p)

    compose_command = get("COMPOSE_COMMAND") or "auto"
    if compose_command not in COMPOSE_COMMANDS:
        p.error(f"COMPOSE_COMMAND: {compose_command!r} must be one of {', '.join(COMPOSE_COMMANDS)}")

    update_schedule = get("UPDATE_SCHEDULE").strip() if get("UPDATE_SCHEDULE") else ""
    from .schedule import SCHEDULE_RE

    if update_schedule and not SCHEDULE_RE.match(update_schedule):
        p.error(f"UPDATE_SCHEDULE: {update_schedule!r} is not five cron fields (e.g. '0 5 * * 0') or @weekly")

    drill_schedule = (get("DRILL_SCHEDULE") if "DRILL_SCHEDULE" in values else "0 5 * * 0").strip()
    if drill_schedule.lower() == "off":
        drill_schedule = ""
    if drill_schedule and not SCHEDULE_RE.match(drill_schedule):
        p.error(f"DRILL_SCHEDULE: {drill_schedule!r} is not five cron fields (e.g. '0 5 * * 0'), @weekly or off")

    prefix = get("SNAPSHOT_PREFIX") or "orchestrator"
    if not SNAPSHOT_PREFIX_RE.match(prefix):
        p.error(f"SNAPSHOT_PREFIX: {prefix!r} must be a letter followed by letters, digits, '_' or '-' (max 32)")

    pool = parent.split("/", 1)[0] if parent else ""
    view_dataset = get("VIEW_DATASET") or (f"{pool}/orchestrator-views" if pool else "")
    if view_dataset:
        why = validate_dataset_name(view_dataset)
        if why:
            p.error(f"VIEW_DATASET: {view_dataset!r} {why}")
        elif parent and (view_dataset == parent or view_dataset.startswith(parent + "/")):
            p.error(
                f"VIEW_DATASET: {view_dataset!r} lies inside ZFS_PARENT_DATASET; it would be included "
                "in the recursive snapshot. Put it beside it (e.g. POOL/orchestrator-views)"
            )

    repo_base = get("BORG_REPO_BASE_PATH")
    if repo_base and not (repo_base.startswith("/") or repo_base.startswith("ssh://")):
        p.error(
            f"BORG_REPO_BASE_PATH: {repo_base!r} must be an absolute path or ssh://user@host[:port]/path"
        )
    if repo_base.startswith("ssh://") and not re.match(r"^ssh://[^/@\s]+@[^/\s]+(/.*)$", repo_base):
        p.error(f"BORG_REPO_BASE_PATH: {repo_base!r} must look like ssh://user@host[:port]/path")

    push_url = get("PUSH_URL") or None
    update_push_url = get("UPDATE_PUSH_URL") or None
    for key, url in (("PUSH_URL", push_url), ("UPDATE_PUSH_URL", update_push_url)):
        if url and not re.match(r"^https?://", url):
            p.error(f"{key}: must start with http:// or https://")

    def opt_path(key: str, default: Path | None) -> Path | None:
        v = get(key)
        if not v:
            return default
        if not v.startswith("/"):
            p.error(f"{key}: {v!r} must be an absolute path")
            return default
        return Path(v)

    mgmt = Path(get("MANAGEMENT_DIR") or "/nonexistent")
    passphrase_file = opt_path("BORG_PASSPHRASE_FILE", None)

    # Warnings: readable secrets.
    try:
        mode = path.stat().st_mode
        if passphrase and mode & (stat.S_IROTH | stat.S_IRGRP):
            who = "everyone" if mode & stat.S_IROTH else "its group"
            p.warn(f"{path} holds BORG_PASSPHRASE and is readable by {who}: run `chmod 600 {path}`")
    except OSError:
        pass
    if passphrase_file:
        try:
            if passphrase_file.stat().st_mode & (stat.S_IROTH | stat.S_IRGRP):
                p.warn(
                    f"BORG_PASSPHRASE_FILE {passphrase_file} is readable by others: "
                    f"run `chmod 600 {passphrase_file}`"
                )
        except OSError:
            p.error(f"BORG_PASSPHRASE_FILE: {passphrase_file} does not exist or cannot be read")

    known = set(REQUIRED_KEYS) | set(PASSPHRASE_KEYS) | set(INT_KEYS) | {
        "BORG_RSH", "BORG_BASE_DIR", "BORG_KEYS_DIR", "BORG_EXCLUDES_FILE", "BORG_COMPRESSION",
        "BORG_RETENTION", "BORG_RETENTION_OVERRIDES", "HUB_SERVICE", "SNAPSHOT_PREFIX",
        "VIEW_DATASET", "VIEW_MOUNTPOINT", "LOCK_FILE", "STATE_DIR", "PUSH_URL", "UPDATE_PUSH_URL",
        "PROMETHEUS_TEXTFILE", "DOCKER_REMAP_USER", "DOCKER_DAEMON_JSON", "SUBUID_FILE", "SUBGID_FILE",
        "DOCKER_RESTART_COMMAND", "COMPOSE_COMMAND", "UPDATE_SCHEDULE",
        "DRILL_SCHEDULE", "DRILL_DIR",
    }
    for key in values:
        if key not in known and not UID_KEY_RE.match(key):
            p.warn(f"{key}: unknown key, ignored (typo?)")

    kwargs = dict(
        env_file=path,
        admin_user=get("ADMIN_USER"),
        management_dir=mgmt,
        venv_dir=Path(get("VENV_DIR")),
        services_dir=Path(get("SERVICES_DIR")),
        zfs_parent_dataset=parent,
        zfs_base_mountpoint=Path(get("ZFS_BASE_MOUNTPOINT")),
        borg_repo_base_path=repo_base,
        volume_paths=volume_paths,
        remapped_uids=uids,
        borg_passphrase=passphrase,
        borg_passcommand=get("BORG_PASSCOMMAND") or None,
        borg_passphrase_file=passphrase_file,
        borg_rsh=get("BORG_RSH") or None,
        borg_base_dir=opt_path("BORG_BASE_DIR", mgmt / ".borg"),
        borg_keys_dir=opt_path("BORG_KEYS_DIR", mgmt / "borg_keys"),
        borg_excludes_file=opt_path("BORG_EXCLUDES_FILE", mgmt / "borg_excludes.txt"),
        borg_compression=get("BORG_COMPRESSION") or "zstd,3",
        borg_parallel=_int(values, "BORG_PARALLEL", p),
        borg_timeout=_int(values, "BORG_TIMEOUT", p),
        borg_compact_every_days=_int(values, "BORG_COMPACT_EVERY_DAYS", p),
        retention_default=retention_default,
        retention_overrides=overrides,
        hub_service=hub,
        compose_parallel=_int(values, "COMPOSE_PARALLEL", p),
        health_timeout=_int(values, "HEALTH_TIMEOUT", p),
        stop_timeout=_int(values, "STOP_TIMEOUT", p),
        compose_command=compose_command,
        hook_timeout=_int(values, "HOOK_TIMEOUT", p),
        keep_last_snapshot=_int(values, "KEEP_LAST_SNAPSHOT", p),
        skip_unchanged=_int(values, "SKIP_UNCHANGED", p),
        update_snapshots_keep=_int(values, "UPDATE_SNAPSHOTS_KEEP", p),
        update_settle_seconds=_int(values, "UPDATE_SETTLE_SECONDS", p),
        update_schedule=update_schedule,
        drill_schedule=drill_schedule,
        drill_dir=opt_path("DRILL_DIR", None),
        command_timeout=_int(values, "COMMAND_TIMEOUT", p),
        snapshot_prefix=prefix,
        view_dataset=view_dataset,
        view_mountpoint=opt_path("VIEW_MOUNTPOINT", Path("/run/orchestrator/views")),
        lock_file=opt_path("LOCK_FILE", Path("/run/lock/orchestrator.lock")),
        state_dir=opt_path("STATE_DIR", Path("/var/lib/orchestrator")),
        push_url=push_url,
        update_push_url=update_push_url,
        prometheus_textfile=opt_path("PROMETHEUS_TEXTFILE", None),
        docker_remap_user=get("DOCKER_REMAP_USER") or "dockeruser",
        subid_start=subid_start,
        subid_count=subid_count,
        docker_daemon_json=opt_path("DOCKER_DAEMON_JSON", Path("/etc/docker/daemon.json")),
        subuid_file=opt_path("SUBUID_FILE", Path("/etc/subuid")),
        subgid_file=opt_path("SUBGID_FILE", Path("/etc/subgid")),
        docker_restart_command=get("DOCKER_RESTART_COMMAND"),
        stale_after=_int(values, "STALE_AFTER", p),
    )
    if p.errors:
        raise ConfigError(p.errors, str(path), p.warnings)
    settings = Settings(**kwargs)
    return settings, p.warnings
