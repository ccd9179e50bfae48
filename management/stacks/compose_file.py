"""Stacks as compose itself resolves them, and the hub-and-spoke rules. Pure: no commands here.

Compose is the only parser. The manager runs `docker compose config --format json` (v2) or
`docker-compose config` (v1) in the stack's folder, with the environment `up` gets, and hands
the result to `stack_from_model`, which only *reads* it: no interpolation, no merging of
override files, `include:` or `extends:`, no `.env` parsing beyond what v1 lacks (its
`config` lists services of inactive profiles, so their profiles are filtered here).

- `find_stacks(services_dir)`: each folder with a compose file compose would pick up by
  itself (compose.yaml, compose.yml, docker-compose.yaml, docker-compose.yml, in that order),
  plus the folders that have none (check-stacks reports them).
- `stack_from_model(...)`: services, images, container names, networks with aliases, ports,
  `network_mode`, healthchecks, `stop_grace_period`, bind sources and named-volume device
  paths, top-level `x-` extensions.
- `policy_of(stack)` / `allowed(stack)`: the stack's `x-orchestrator` block: how it is made
  consistent for the snapshot, and the hub-and-spoke rules it is excused from, with reasons;
  `mass_change_limit(extensions)`: the mass-change guard's limit it declares, with its reason.

The rules themselves are in `rules.py`, where the bytes are in `coverage.py`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from management.config import COMPOSE_FILES
from management.errors import ValidationError

# COMPOSE_FILES (config): compose's own precedence; the override file beside the one it picks is merged
# by compose.
NETWORK_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")  # never read as an option by docker
DEFAULT_STOP_GRACE = 10.0  # compose's default stop_grace_period, seconds
STOP_MARGIN = 5.0  # what compose itself needs beyond the longest grace period, within STOP_TIMEOUT
_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|h|m|s)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass(frozen=True)
class StackDir:
    """A folder under SERVICES_DIR: the stack's name and the compose file compose will pick."""

    name: str
    dir: Path
    file: Path


@dataclass(frozen=True)
class Bind:
    service: str
    source: Path
    target: str


@dataclass(frozen=True)
class Mount:
    """One mount of one service, as compose resolved it. `kind` is compose's type (bind,
    volume, tmpfs, ...); `source` is the absolute host path of a bind, or the key of a named
    volume in the file ("" for an anonymous volume); `device` is the host path a named volume
    is bound to (driver_opts device), when it is; `volume_name` the volume's name in docker."""

    service: str
    kind: str
    source: str
    target: str
    read_only: bool = False
    device: str = ""
    volume_name: str = ""
    external: bool = False


@dataclass
class Service:
    name: str
    image: str = ""
    build: bool = False
    container_name: str = ""
    networks: dict[str, list[str]] = field(default_factory=dict)  # key in the file -> aliases
    ports: list = field(default_factory=list)
    network_mode: str = ""
    healthcheck: bool = False
    stop_grace: float = DEFAULT_STOP_GRACE
    profiles: list[str] = field(default_factory=list)


@dataclass
class Stack:
    """One stack as compose resolved it. `error` is set (and nothing else is) when compose
    refused to read it: that stack alone is refused, with compose's own words."""

    name: str
    dir: Path
    file: Path
    services: dict[str, Service] = field(default_factory=dict)
    networks: dict[str, str] = field(default_factory=dict)  # key in the file -> real name
    external_networks: set[str] = field(default_factory=set)  # real names
    binds: list[Bind] = field(default_factory=list)  # bind sources and named-volume device paths
    mounts: list[Mount] = field(default_factory=list)  # every mount of every service
    extensions: dict = field(default_factory=dict)  # top-level x-* keys
    error: str | None = None

    @property
    def container_names(self) -> dict[str, str]:
        return {n: s.container_name for n, s in self.services.items() if s.container_name}

    @property
    def healthchecks(self) -> set[str]:
        return {n for n, s in self.services.items() if s.healthcheck}

    @property
    def ports(self) -> dict[str, list]:
        return {n: s.ports for n, s in self.services.items() if s.ports}

    @property
    def max_stop_grace(self) -> float:
        return max((s.stop_grace for s in self.services.values()), default=DEFAULT_STOP_GRACE)

    def service_networks(self, service: str) -> set[str]:
        return {self.networks.get(k, k) for k in self.services[service].networks}

    def all_networks(self) -> set[str]:
        return set().union(*(self.service_networks(s) for s in self.services)) if self.services else set()

    def names_on(self, networks: set[str]) -> dict[str, str]:
        """Host names a container on one of `networks` can resolve to this stack: service
        names, container names and aliases on those networks -> the service answering."""
        out: dict[str, str] = {}
        for name, svc in self.services.items():
            shared = {k: a for k, a in svc.networks.items() if self.networks.get(k, k) in networks}
            if not shared:
                continue
            out[name] = name
            if svc.container_name:
                out[svc.container_name] = name
            for aliases in shared.values():
                for alias in aliases:
                    out[alias] = name
        return out


def dangling_links(services_dir: Path) -> list[Path]:
    """Entries of SERVICES_DIR that are symlinks to nothing (a stack folder on a disk not
    mounted, or moved): find_stacks cannot see them as folders, check-stacks names them."""
    try:
        return sorted(p for p in services_dir.iterdir() if p.is_symlink() and not p.exists()
                      and not p.name.startswith("."))
    except OSError:
        return []


def find_stacks(services_dir: Path) -> tuple[list[StackDir], list[Path]]:
    """(stacks sorted by name, folders holding no compose file)."""
    if not services_dir.is_dir():
        raise ValidationError(f"SERVICES_DIR {services_dir} does not exist or is not a directory")
    found, empty = [], []
    for d in sorted(p for p in services_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        file = next((d / c for c in COMPOSE_FILES if (d / c).is_file()), None)
        if file:
            found.append(StackDir(d.name, d, file))
        else:
            empty.append(d)
    return found, empty


def parse_duration(value, default: float = DEFAULT_STOP_GRACE) -> float:
    """A compose duration ('45s', '1m30s', '2m0s', '500ms', or plain seconds) in seconds."""
    if value is None or value == "":
        return default
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = _DURATION_RE.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValidationError(f"{value!r} is not a duration")
    return sum(float(n) * _UNITS[u] for n, u in parts)


def port_text(port) -> str:
    """A port as a user writes it ([ip:]published:target[/protocol]), from either model's shape;
    the protocol is shown when it is not tcp (v1's strings carry it already)."""
    if not isinstance(port, dict):
        return str(port)
    host = f"{port['host_ip']}:" if port.get("host_ip") else ""
    published = port.get("published") or ""
    proto = str(port.get("protocol") or "tcp")
    text = f"{host}{published}:{port.get('target')}" if published else str(port.get("target"))
    return text if proto == "tcp" else f"{text}/{proto}"


def ports_text(ports: list) -> str:
    """Every port of a service, a tcp one marked /tcp when the same mapping is also udp."""
    texts = [port_text(p) for p in ports]
    udp = {t.removesuffix("/udp") for t in texts if t.endswith("/udp")}
    return ", ".join(f"{t}/tcp" if t in udp else t for t in texts)


def _active(profiles: list[str], active: set[str]) -> bool:
    return not profiles or "*" in active or bool(set(profiles) & active)


def _volume_entry(entry) -> dict:
    """v2 gives the long syntax; v1's `config` prints 'source:target[:mode]' strings."""
    if isinstance(entry, dict):
        return entry
    parts = str(entry).split(":")
    if len(parts) == 1:
        return {"type": "volume", "source": "", "target": parts[0]}
    source, target = parts[0], parts[1]
    kind = "bind" if source.startswith(("/", ".", "~")) else "volume"
    modes = set(parts[2].split(",")) if len(parts) > 2 else set()
    return {"type": kind, "source": source, "target": target, "read_only": "ro" in modes}


def _tmpfs_targets(spec: dict) -> list[str]:
    """`tmpfs:` as a string or a list ('/run', '/tmp:size=64m')."""
    raw = spec.get("tmpfs") or []
    return [str(t).split(":", 1)[0] for t in ([raw] if isinstance(raw, str) else raw)]


def _unescape(node):
    """v2's `config` writes a literal `$` as `$$` (so its output reads back the same)."""
    if isinstance(node, str):
        return node.replace("$$", "$")
    if isinstance(node, list):
        return [_unescape(x) for x in node]
    if isinstance(node, dict):
        return {k: _unescape(v) for k, v in node.items()}
    return node


def stack_from_model(stack: StackDir, model: dict, active_profiles: set[str] | None = None) -> Stack:
    """Read compose's resolved model (JSON from v2, YAML from v1) into a Stack.

    `active_profiles` is given for v1 only, whose `config` keeps services of inactive
    profiles; v2 already leaves them out. v1's `config` also drops top-level `x-` keys, so
    an `x-orchestrator` block is seen on v2 only (docs/backup.md)."""
    if not isinstance(model, dict) or not isinstance(model.get("services", {}), dict):
        raise ValidationError(f"{stack.file}: compose printed no services mapping")
    out = Stack(stack.name, stack.dir, stack.file)
    out.extensions = {k: _unescape(v) for k, v in model.items() if str(k).startswith("x-")}
    for key, spec in (model.get("networks") or {}).items():
        spec = spec or {}
        ext = spec.get("external")
        real = spec.get("name") or (ext.get("name") if isinstance(ext, dict) else None)
        if not real:
            real = key if ext else f"{stack.name}_{key}"
        out.networks[key] = real
        if ext:
            out.external_networks.add(real)
    out.networks.setdefault("default", f"{stack.name}_default")
    devices, volume_names, external_volumes = {}, {}, set()
    for key, spec in (model.get("volumes") or {}).items():
        spec = spec or {}
        device = (spec.get("driver_opts") or {}).get("device")
        if device and str(device).startswith("/"):
            devices[key] = device
        ext = spec.get("external")
        volume_names[key] = str(spec.get("name") or (ext.get("name") if isinstance(ext, dict) else "")
                                or (key if ext else f"{stack.name}_{key}"))
        if ext:
            external_volumes.add(key)
    for name, spec in (model.get("services") or {}).items():
        spec = spec or {}
        profiles = [str(p) for p in spec.get("profiles") or []]
        if active_profiles is not None and not _active(profiles, active_profiles):
            continue
        nets = spec.get("networks")
        mode = str(spec.get("network_mode") or "")
        if isinstance(nets, dict):
            networks = {k: list((v or {}).get("aliases") or []) for k, v in nets.items()}
        elif isinstance(nets, list):
            networks = {k: [] for k in nets}
        else:
            networks = {} if mode else {"default": []}
        hc = spec.get("healthcheck") or {}
        test = hc.get("test")
        try:
            grace = parse_duration(spec.get("stop_grace_period"))
        except ValidationError as exc:
            raise ValidationError(f"{stack.file}: service {name!r}: stop_grace_period {exc}") from None
        out.services[name] = Service(
            name=name,
            image=str(spec.get("image") or ""),
            build=bool(spec.get("build")),
            container_name=str(spec.get("container_name") or ""),
            networks=networks,
            ports=list(spec.get("ports") or []),
            network_mode=mode,
            healthcheck=bool(test) and not hc.get("disable") and test not in (["NONE"], "NONE"),
            stop_grace=grace,
            profiles=profiles,
        )
        for entry in spec.get("volumes") or []:
            vol = _volume_entry(entry)
            source = str(vol.get("source") or "")
            kind, target, read_only = str(vol.get("type") or "volume"), str(vol.get("target", "")), \
                bool(vol.get("read_only"))
            if kind == "bind" and source:
                path = Path(os.path.expanduser(source))
                host = Path(os.path.normpath(path if path.is_absolute() else stack.dir / path))
                out.binds.append(Bind(name, host, target))
                out.mounts.append(Mount(name, kind, str(host), target, read_only))
                continue
            if kind == "volume" and source in devices:
                out.binds.append(Bind(name, Path(os.path.normpath(devices[source])), target))
            device = str(Path(os.path.normpath(devices[source]))) if source in devices else ""
            out.mounts.append(Mount(name, kind, source, target, read_only, device,
                                    volume_names.get(source, ""), source in external_volumes))
        out.mounts += [Mount(name, "tmpfs", "", t) for t in _tmpfs_targets(spec)]
    return out


# --- x-orchestrator: how a stack is made consistent for the nightly snapshot ----------------

STOP, LIVE = "stop", "live"
POLICY_KEY = "x-orchestrator"
POLICY_KEYS = {"consistency", "before-snapshot", "ephemeral", "allow", "drill", "mass-change"}
ALLOW_KEYS = {"publish", "host-network"}  # hub-and-spoke rules a stack may opt out of, with a reason
HOOK_KEYS = {"service", "command"}


@dataclass(frozen=True)
class Hook:
    """A command run in a running service right before the snapshot (`compose exec -T`)."""

    service: str
    command: tuple[str, ...]


@dataclass(frozen=True)
class Policy:
    consistency: str = STOP
    before_snapshot: tuple[Hook, ...] = ()


def drill_probe(extensions: dict) -> tuple[Hook | None, list[str]]:
    """`x-orchestrator: {drill: {service: db, command: [...]}}`: the boot drill's own check, run
    in the restored stack once it is healthy (e.g. a SQL count). None when there is none."""
    raw = extensions.get(POLICY_KEY)
    raw = raw.get("drill") if isinstance(raw, dict) else None
    if raw is None:
        return None, []
    where = f"{POLICY_KEY}.drill"
    if not isinstance(raw, dict) or set(raw) - HOOK_KEYS or not isinstance(raw.get("service"), str):
        return None, [f"{where} must be a mapping with service and command"]
    command = raw.get("command")
    if isinstance(command, str) and command.strip():
        command = ["sh", "-c", command]
    if not (isinstance(command, list) and command and all(isinstance(c, str) for c in command)):
        return None, [f"{where}: command must be a list of strings (exec form) or a string (run by sh -c)"]
    return Hook(raw["service"], tuple(command)), []


MASS_CHANGE_KEY = "mass-change"
OFF = "off"


@dataclass(frozen=True)
class ChangeLimit:
    """`x-orchestrator: {mass-change: {limit: 90, reason: ...}}`: the percent of its files a night
    may modify or delete before the mass-change guard holds it (CHANGE_GUARD_PERCENT otherwise);
    `limit: off`: the guard never holds this stack. `reason` is what check-stacks shows."""

    percent: int | None  # None: off
    reason: str

    def text(self) -> str:
        return "mass-change guard off" if self.percent is None else \
            f"mass-change guard at {self.percent}% of its files"


def mass_change_limit(extensions: dict) -> tuple[ChangeLimit | None, list[str]]:
    """The stack's declared mass-change limit (None when it declares none) and every problem with
    the declaration; with a problem the default limit applies (the safe way)."""
    raw = extensions.get(POLICY_KEY)
    raw = raw.get(MASS_CHANGE_KEY) if isinstance(raw, dict) else None
    if raw is None:
        return None, []
    where = f"{POLICY_KEY}.{MASS_CHANGE_KEY}"
    if not isinstance(raw, dict):
        return None, [f"{where} must be a mapping: {{limit: <1..100 percent, or off>, reason: <why>}}"]
    problems = [f"{where}: unknown key {k!r} (known: limit, reason)" for k in raw if k not in ("limit", "reason")]
    limit, reason = raw.get("limit"), raw.get("reason")
    if limit is False or (isinstance(limit, str) and limit.strip().lower() == OFF):
        percent = None
    elif isinstance(limit, int) and not isinstance(limit, bool) and 1 <= limit <= 100:
        percent = limit
    elif isinstance(limit, str) and limit.strip().isdigit() and 1 <= int(limit) <= 100:
        percent = int(limit)
    else:
        problems.append(f"{where}.limit: {limit!r} must be a percent of the files (1..100) or off")
        percent = None
    if not (isinstance(reason, str) and reason.strip()):
        problems.append(f"{where}: give the reason this stack rewrites its files (e.g. \"re-encodes the whole "
                        "library every night\")")
    if problems:
        return None, problems
    return ChangeLimit(percent, str(reason).strip()), []


def allowed(stack: Stack) -> tuple[dict[str, str], list[str]]:
    """`x-orchestrator: {allow: {publish: <reason>, host-network: <reason>}}`: the hub-and-spoke
    rules this stack is excused from, each with the reason a reader of check-stacks sees."""
    raw = stack.extensions.get(POLICY_KEY)
    raw = raw.get("allow") if isinstance(raw, dict) else None
    if raw is None:
        return {}, []
    if not isinstance(raw, dict):
        return {}, [f"{POLICY_KEY}.allow must map publish / host-network to the reason the stack needs it"]
    problems = [f"{POLICY_KEY}.allow: unknown key {k!r} (known: {', '.join(sorted(ALLOW_KEYS))})"
                for k in raw if k not in ALLOW_KEYS]
    problems += [f"{POLICY_KEY}.allow.{k}: give the reason this stack needs it (e.g. \"DNS for the LAN on 53\")"
                 for k, v in raw.items() if k in ALLOW_KEYS and not (isinstance(v, str) and v.strip())]
    if problems:
        return {}, problems
    return {str(k): str(v) for k, v in raw.items()}, []


def policy_of(stack: Stack) -> tuple[Policy, list[str]]:
    """The stack's `x-orchestrator` block, read from compose's model (so it may come from an
    override or an include), and every problem with it. With a problem the stack is treated
    as `stop`: the safe way."""
    raw = stack.extensions.get(POLICY_KEY)
    if raw is None:
        return Policy(), []
    if not isinstance(raw, dict):
        return Policy(), [f"{POLICY_KEY} must be a mapping (consistency, before-snapshot)"]
    problems = [f"{POLICY_KEY}: unknown key {k!r} (known: {', '.join(sorted(POLICY_KEYS))})"
                for k in raw if k not in POLICY_KEYS]
    consistency = raw.get("consistency", STOP)
    if consistency not in (STOP, LIVE):
        problems.append(f"{POLICY_KEY}.consistency: {consistency!r} must be {STOP!r} or {LIVE!r}")
    hooks = []
    entries = raw.get("before-snapshot") or []
    if not isinstance(entries, list):
        problems.append(f"{POLICY_KEY}.before-snapshot must be a list of {{service, command}}")
        entries = []
    for n, entry in enumerate(entries, 1):
        where = f"{POLICY_KEY}.before-snapshot[{n}]"
        if not isinstance(entry, dict):
            problems.append(f"{where} must be a mapping with service and command")
            continue
        problems += [f"{where}: unknown key {k!r}" for k in entry if k not in HOOK_KEYS]
        service, command = entry.get("service"), entry.get("command")
        if service not in stack.services:
            problems.append(f"{where}: service {service!r} is not a service of this stack "
                            f"(services: {', '.join(stack.services)})")
        if isinstance(command, str) and command.strip():
            command = ["sh", "-c", command]
        if not (isinstance(command, list) and command and all(isinstance(c, str) for c in command)):
            problems.append(f"{where}: command must be a list of strings (exec form) or a string (run by sh -c)")
            continue
        hooks.append(Hook(str(service), tuple(command)))
    if problems:
        return Policy(), problems
    return Policy(consistency, tuple(hooks)), []
