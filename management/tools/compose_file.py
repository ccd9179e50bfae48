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
- `caddy_upstreams(text)`: every `reverse_proxy` upstream with its line.
- `check_stacks(...)`: the hub-and-spoke rules, one `Violation` per problem with its file.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from management.errors import ValidationError

# compose's own precedence; the override file beside the one it picks is merged by compose.
COMPOSE_FILES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")
PROJECT_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")  # what compose accepts as a project name
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
    """A port as a user writes it ([ip:]published:target), from either model's shape."""
    if not isinstance(port, dict):
        return str(port)
    host = f"{port['host_ip']}:" if port.get("host_ip") else ""
    published = port.get("published") or ""
    return f"{host}{published}:{port.get('target')}" if published else str(port.get("target"))


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
    return {"type": kind, "source": source, "target": target}


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
    devices = {}
    for key, spec in (model.get("volumes") or {}).items():
        device = ((spec or {}).get("driver_opts") or {}).get("device")
        if device and str(device).startswith("/"):
            devices[key] = device
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
            if vol.get("type") == "bind" and source:
                path = Path(os.path.expanduser(source))
                out.binds.append(Bind(name, Path(os.path.normpath(path if path.is_absolute() else stack.dir / path)),
                                      str(vol.get("target", ""))))
            elif vol.get("type") == "volume" and source in devices:
                out.binds.append(Bind(name, Path(os.path.normpath(devices[source])), str(vol.get("target", ""))))
    return out


# --- x-orchestrator: how a stack is made consistent for the nightly snapshot ----------------

STOP, LIVE = "stop", "live"
POLICY_KEY = "x-orchestrator"
POLICY_KEYS = {"consistency", "before-snapshot"}
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


_UPSTREAM_SKIP = re.compile(r"^(@|/|\*|\{)")


def caddy_upstreams(text: str) -> list[tuple[int, str]]:
    """(line, host) of each `reverse_proxy` upstream (matchers and options skipped)."""
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        tokens = line.split("#", 1)[0].split()
        if not tokens or tokens[0] != "reverse_proxy":
            continue
        for token in tokens[1:]:
            if token == "{":
                break
            if _UPSTREAM_SKIP.match(token):
                continue
            hostport = re.sub(r"^[a-z+]+://", "", token).split("/", 1)[0]
            host = hostport.rsplit(":", 1)[0] if not hostport.startswith("[") else hostport
            if host:
                out.append((number, host))
    return out


@dataclass(frozen=True)
class Violation:
    file: Path
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.message}"


def under(path: Path, base: Path) -> PurePosixPath | None:
    try:
        return PurePosixPath(path.relative_to(base))
    except ValueError:
        return None


def check_stacks(stacks: list[Stack], hub: str, base: Path, listed: list[str], *,
                 empty_dirs: list[Path] = (), stop_timeout: float | None = None) -> list[Violation]:
    """The hub-and-spoke rules (docs/services.md), on the models compose resolved:

    0. compose can read every stack; every folder holds a compose file; the folder name is a
       valid project name; every declared stop_grace_period fits in STOP_TIMEOUT;
    1. only the hub publishes ports, and no spoke uses `network_mode: host` (it publishes
       every port on the host); the hub does not either (it could not join spoke networks);
    2. every other stack sits on its own external network;
    3. the hub joins every spoke network;
    4. every reverse_proxy upstream in the hub's Caddyfile is a service, container name or
       alias on a network the hub shares, answered by one stack only;
    5. every bind source or volume device under ZFS_BASE_MOUNTPOINT belongs to a listed path;
    6. no container name is used by two stacks;
    7. an `x-orchestrator` block is valid (keys, consistency, before-snapshot services).
    """
    v: list[Violation] = [Violation(d, "holds no compose file (compose.yaml, compose.yml, docker-compose.yaml "
                                       "or docker-compose.yml); it is not a stack") for d in empty_dirs]
    for s in stacks:
        if not s.error:
            v += [Violation(s.file, problem) for problem in policy_of(s)[1]]
        if not PROJECT_RE.match(s.name):
            v.append(Violation(s.dir, f"folder name {s.name!r} is not a valid compose project name "
                                      "(lowercase letters, digits, '-' and '_', starting with a letter or digit)"))
        if s.error:
            v.append(Violation(s.file, f"compose cannot read this stack: {s.error}"))
    readable = [s for s in stacks if not s.error]
    by_name = {s.name: s for s in readable}
    hub_stack = by_name.get(hub)
    if hub_stack is None and not any(s.name == hub for s in stacks):
        v.append(Violation(base, f"no hub stack {hub!r} (HUB_SERVICE) in SERVICES_DIR"))
    hub_nets = hub_stack.all_networks() if hub_stack else set()
    owners: dict[str, list[str]] = {}
    for s in readable:
        for svc in s.services.values():
            if stop_timeout is not None and svc.stop_grace + STOP_MARGIN > stop_timeout:
                v.append(Violation(s.file, f"service {svc.name!r} declares stop_grace_period {svc.stop_grace:g}s, "
                                           f"which does not fit in STOP_TIMEOUT={stop_timeout:g}s with "
                                           f"{STOP_MARGIN:g}s to spare: the tool would give up waiting before "
                                           "compose does; raise STOP_TIMEOUT"))
            if svc.network_mode == "host":
                who = "the hub cannot join spoke networks with it" if s.name == hub else \
                    f"it publishes every port on the host; only the hub ({hub}) may publish"
                v.append(Violation(s.file, f"service {svc.name!r} uses network_mode: host: {who}"))
        if s.name == hub:
            continue
        for svc, ports in s.ports.items():
            shown = ", ".join(port_text(p) for p in ports)
            v.append(Violation(s.file, f"service {svc!r} publishes ports {shown}: only the hub ({hub}) may"))
        if not s.external_networks:
            v.append(Violation(s.file, "declares no external network: each spoke needs its own, "
                                       f"joined by the hub (e.g. {s.name}_net)"))
        for net in sorted(s.external_networks):
            if not NETWORK_RE.match(net):
                v.append(Violation(s.file, f"external network {net!r} is not a valid name "
                                           "(letters, digits, '_', '.', '-'; not starting with '-')"))
            owners.setdefault(net, []).append(s.name)
            if hub_stack and net not in hub_nets:
                v.append(Violation(hub_stack.file, f"the hub does not join {net!r}, the network of {s.name}"))
    for net, names in sorted(owners.items()):
        if len(names) > 1:
            for name in names:
                v.append(Violation(by_name[name].file, f"network {net!r} is shared by {', '.join(names)}: "
                                                       "each spoke needs its own"))
    if hub_stack:
        # an upstream no readable stack answers to may belong to one compose cannot read: undecided
        v += _check_upstreams(hub_stack, readable, hub_nets, report_unknown=len(readable) == len(stacks))
    allowed = [PurePosixPath(p) for p in listed]
    for s in readable:
        for b in s.binds:
            rel = under(b.source, base)
            if rel is None:
                continue
            if not any(rel == a or a in rel.parents for a in allowed):
                v.append(Violation(s.file, f"service {b.service!r} mounts {b.source}, which is under "
                                           "ZFS_BASE_MOUNTPOINT but not listed in SERVICE_VOLUME_PATHS_AND_OWNERS"))
    seen: dict[str, str] = {}
    for s in readable:
        for cname in sorted(set(s.container_names.values())):
            if cname in seen and seen[cname] != s.name:
                v.append(Violation(s.file, f"container_name {cname!r} is also used by stack {seen[cname]!r}: "
                                           "docker allows one container per name"))
            seen.setdefault(cname, s.name)
    return v


def _check_upstreams(hub_stack: Stack, stacks: list[Stack], hub_nets: set[str], *,
                     report_unknown: bool = True) -> list[Violation]:
    caddyfile = next((b.source for b in hub_stack.binds if b.target.startswith("/etc/caddy/Caddyfile")),
                     hub_stack.dir / "Caddyfile")
    if not caddyfile.is_file():
        return [Violation(caddyfile, "the hub has no Caddyfile")]
    answering: dict[str, set[str]] = {}  # host name -> stacks answering to it on hub networks
    for s in stacks:
        for host in s.names_on(hub_nets):
            answering.setdefault(host, set()).add(s.name)
    v = []
    for line, host in caddy_upstreams(caddyfile.read_text(errors="replace")):
        if host in ("localhost", "127.0.0.1"):
            continue
        who = answering.get(host, set())
        if not who and report_unknown:
            v.append(Violation(Path(f"{caddyfile}:{line}"), f"reverse_proxy upstream {host!r} is not a service, "
                                                            "container name or alias on a network the hub shares"))
        elif len(who) > 1:
            v.append(Violation(Path(f"{caddyfile}:{line}"), f"reverse_proxy upstream {host!r} is ambiguous: "
                                                            f"stacks {', '.join(sorted(who))} all answer to it on "
                                                            "networks the hub joins; use a container_name or alias"))
    return v
