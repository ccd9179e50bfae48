"""Compose files and the Caddyfile, read for what the tool needs. Pure: no commands run here.

- `find_stacks(services_dir)`: every folder holding compose.yaml / compose.yml /
  docker-compose.yaml / docker-compose.yml is a stack named after its folder.
- `parse_stack(...)`: external networks, bind-mount sources (short and long syntax,
  `${VAR:-default}` interpolated like compose does), published ports, healthchecks,
  container names, networks per service.
- `caddy_upstreams(text)`: every `reverse_proxy` upstream with its line.
- `check_stacks(...)`: the hub-and-spoke rules, one `Violation` per problem with its file.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import yaml

from .errors import ValidationError

COMPOSE_FILES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")
PROJECT_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")  # what compose accepts as a project name
NETWORK_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")  # never read as an option by docker
_VAR_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)|\$\$")


@dataclass(frozen=True)
class Bind:
    service: str
    source: Path
    target: str


@dataclass
class Stack:
    name: str
    dir: Path
    file: Path
    services: dict[str, dict] = field(default_factory=dict)
    container_names: dict[str, str] = field(default_factory=dict)  # service -> container name
    networks: dict[str, str] = field(default_factory=dict)  # key in file -> real name
    external_networks: set[str] = field(default_factory=set)  # real names
    service_networks: dict[str, set[str]] = field(default_factory=dict)  # service -> real names
    binds: list[Bind] = field(default_factory=list)
    ports: dict[str, list] = field(default_factory=dict)  # service -> published ports
    healthchecks: set[str] = field(default_factory=set)

    def hosts(self) -> set[str]:
        """Names other containers on a shared network can reach: service and container names."""
        return set(self.services) | set(self.container_names.values())


def find_stacks(services_dir: Path) -> list[tuple[str, Path]]:
    """(name, compose file) for each stack folder, sorted by name."""
    if not services_dir.is_dir():
        raise ValidationError(f"SERVICES_DIR {services_dir} does not exist or is not a directory")
    found = []
    for d in sorted(p for p in services_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for candidate in COMPOSE_FILES:
            if (d / candidate).is_file():
                found.append((d.name, d / candidate))
                break
    return found


def read_dotenv(path: Path) -> dict[str, str]:
    from dotenv import dotenv_values

    return {k: v for k, v in dotenv_values(path).items() if v is not None} if path.is_file() else {}


def interpolate(text: str, env: dict[str, str]) -> str:
    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1) or m.group(4)
        op, arg = m.group(2), m.group(3)
        value = env.get(name)
        if op in (":-",):
            return value if value else arg
        if op == "-":
            return value if value is not None else arg
        return value or ""

    return _VAR_RE.sub(sub, text)


def _walk(node, env: dict[str, str]):
    """Interpolate every string value, as compose does after parsing."""
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [_walk(x, env) for x in node]
    if isinstance(node, dict):
        return {k: _walk(x, env) for k, x in node.items()}
    return node


def load_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ValidationError(f"{path}:{where}: invalid YAML: {problem}") from None
    except OSError as exc:
        raise ValidationError(f"{path}: cannot be read: {exc.strerror}") from None
    if not isinstance(data, dict) or not isinstance(data.get("services"), dict):
        raise ValidationError(f"{path}: not a compose file (no 'services:' mapping)")
    return data


def parse_stack(name: str, file: Path, env: dict[str, str] | None = None) -> Stack:
    """Read one compose file. `env` is what compose interpolates with (the process env the tool
    passes, overridden by nothing); the stack folder's own .env fills in what is missing."""
    merged = {**read_dotenv(file.parent / ".env"), **(env or {})}
    data = _walk(load_yaml(file), merged)
    stack = Stack(name, file.parent, file)
    for key, spec in (data.get("networks") or {}).items():
        spec = spec or {}
        real = spec.get("name") or key
        stack.networks[key] = real
        if spec.get("external"):
            ext = spec["external"]
            if isinstance(ext, dict) and ext.get("name"):  # old syntax: external: {name: x}
                real = ext["name"]
                stack.networks[key] = real
            stack.external_networks.add(real)
    for svc, spec in data["services"].items():
        spec = spec or {}
        stack.services[svc] = spec
        if spec.get("container_name"):
            stack.container_names[svc] = str(spec["container_name"])
        nets = spec.get("networks")
        keys = list(nets) if isinstance(nets, (list, dict)) else ["default"]
        stack.service_networks[svc] = {stack.networks.get(k, k) for k in keys}
        if spec.get("ports"):
            stack.ports[svc] = list(spec["ports"])
        hc = spec.get("healthcheck")
        if hc and not hc.get("disable") and hc.get("test") not in (["NONE"], "NONE"):
            stack.healthchecks.add(svc)
        for vol in spec.get("volumes") or []:
            bind = _bind(svc, vol, file.parent)
            if bind:
                stack.binds.append(bind)
    return stack


def _bind(service: str, vol, base: Path) -> Bind | None:
    if isinstance(vol, dict):
        if vol.get("type") != "bind" or not vol.get("source"):
            return None
        source, target = str(vol["source"]), str(vol.get("target", ""))
    else:
        parts = str(vol).split(":")
        if len(parts) < 2:
            return None
        source, target = parts[0], parts[1]
        if not source.startswith(("/", ".", "~")):
            return None  # a named volume
    path = Path(os.path.expanduser(source))
    if not path.is_absolute():
        path = base / path
    return Bind(service, Path(os.path.normpath(path)), target)


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


def check_stacks(stacks: list[Stack], hub: str, base: Path, listed: list[str]) -> list[Violation]:
    """The hub-and-spoke rules (docs/services.md):
    1. only the hub publishes ports;
    2. every other stack sits on its own external network;
    3. the hub joins every spoke network;
    4. every reverse_proxy upstream in the hub's Caddyfile is a container on a network the hub shares;
    5. every bind mount under ZFS_BASE_MOUNTPOINT belongs to a listed service path.
    """
    v: list[Violation] = []
    by_name = {s.name: s for s in stacks}
    hub_stack = by_name.get(hub)
    if hub_stack is None:
        v.append(Violation(base, f"no hub stack {hub!r} (HUB_SERVICE) in SERVICES_DIR"))
    hub_nets = set().union(*hub_stack.service_networks.values()) if hub_stack else set()
    owners: dict[str, list[str]] = {}
    for s in stacks:
        if s.name == hub:
            continue
        for svc, ports in s.ports.items():
            v.append(Violation(s.file, f"service {svc!r} publishes ports {ports}: only the hub ({hub}) may"))
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
        caddyfile = next((b.source for b in hub_stack.binds if b.target.startswith("/etc/caddy/Caddyfile")),
                         hub_stack.dir / "Caddyfile")
        reachable = set(hub_stack.hosts())
        for s in stacks:
            if s.name != hub:
                for svc, nets in s.service_networks.items():
                    if nets & hub_nets:
                        reachable.add(svc)
                        if svc in s.container_names:
                            reachable.add(s.container_names[svc])
        if caddyfile.is_file():
            for line, host in caddy_upstreams(caddyfile.read_text()):
                if host not in reachable and host not in ("localhost", "127.0.0.1"):
                    v.append(Violation(Path(f"{caddyfile}:{line}"), f"reverse_proxy upstream {host!r} is not a "
                                                                   "container on a network the hub shares"))
        else:
            v.append(Violation(caddyfile, "the hub has no Caddyfile"))
    allowed = [PurePosixPath(p) for p in listed]
    for s in stacks:
        for b in s.binds:
            rel = under(b.source, base)
            if rel is None:
                continue
            if not any(rel == a or a in rel.parents for a in allowed):
                v.append(Violation(s.file, f"service {b.service!r} bind-mounts {b.source}, which is under "
                                           "ZFS_BASE_MOUNTPOINT but not listed in SERVICE_VOLUME_PATHS_AND_OWNERS"))
    return v
