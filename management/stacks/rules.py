"""The hub-and-spoke rules (docs/services.md), checked on the stacks compose resolved, and the
hub's Caddyfile upstreams. Pure: it reads the models and the Caddyfile(s), runs nothing.

- `check_stacks(...)`: one `Violation` per problem, with its file, each said once;
- `accepted(...)`: what a stack is excused from (`x-orchestrator.allow`), declared not worth
  backing up (`x-orchestrator.ephemeral`) or declared to rewrite on purpose
  (`x-orchestrator.mass-change`), with its reason;
- `caddy_upstreams(text)` / `caddy_files(path)`: every reverse_proxy upstream (inline and in
  `to` lines) of the Caddyfile and the files it imports.
"""

from __future__ import annotations

import os
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from management.config import PROJECT_RE
from management.stacks.compose_file import (
    NETWORK_RE,
    POLICY_KEY,
    STOP_MARGIN,
    Stack,
    allowed,
    drill_probe,
    mass_change_limit,
    policy_of,
    port_text,
    ports_text,
)
from management.stacks.coverage import declared_ephemeral, ephemeral_problems, problems, stack_coverage

_UPSTREAM_SKIP = re.compile(r"^(@|/|\*|\{)")


def _host_of(token: str) -> str:
    hostport = re.sub(r"^[a-z+]+://", "", token).split("/", 1)[0]
    return hostport.rsplit(":", 1)[0] if not hostport.startswith("[") else hostport.split("]", 1)[0] + "]"


def _port_of(token: str) -> str:
    hostport = re.sub(r"^[a-z+]+://", "", token).split("/", 1)[0]
    host = _host_of(token)
    return hostport[len(host) + 1:] if hostport.startswith(host + ":") else ""


def caddy_upstream_tokens(text: str) -> list[tuple[int, str, str]]:
    """(line, host, port) of each `reverse_proxy` upstream: on its own line (matchers and
    options skipped) and in its block's `to` subdirectives; port "" when none is written."""
    out = []
    depth, block = 0, None  # block: the depth inside a reverse_proxy { ... }
    for number, line in enumerate(text.splitlines(), 1):
        tokens = line.split("#", 1)[0].split()
        if tokens and tokens[0] == "reverse_proxy":
            for token in tokens[1:]:
                if token == "{":
                    break
                if not _UPSTREAM_SKIP.match(token) and _host_of(token):
                    out.append((number, _host_of(token), _port_of(token)))
            if tokens[-1] == "{":
                block = depth + 1
        elif tokens and tokens[0] == "to" and block is not None and depth == block:
            out += [(number, _host_of(t), _port_of(t)) for t in tokens[1:] if _host_of(t)]
        depth += tokens.count("{") - tokens.count("}")
        if block is not None and depth < block:
            block = None
    return out


def caddy_upstreams(text: str) -> list[tuple[int, str]]:
    """(line, host) of each `reverse_proxy` upstream (caddy_upstream_tokens without the port)."""
    return [(line, host) for line, host, _port in caddy_upstream_tokens(text)]


CADDYFILE_IN_HUB = "/etc/caddy/Caddyfile"  # where Caddy's image reads it (`caddy run --config ...`)
_SNIPPET_RE = re.compile(r"^\(([^()\s]+)\)$")


def _host_path(inside: str, mounts: dict[str, Path]) -> Path | None:
    """The host path behind a path in the hub container, through its longest bind; None when
    no bind reaches it (the container does not see anything of the host there)."""
    for target, source in sorted(mounts.items(), key=lambda m: -len(m[0])):
        target = target.rstrip("/") or "/"
        if inside == target:
            return Path(source)
        if inside.startswith(target.rstrip("/") + "/"):
            return Path(str(source) + inside[len(target.rstrip("/")):])
    return None


@dataclass(frozen=True)
class CaddyImport:
    """An `import` Caddy cannot satisfy: `line` of `file` (a host path) imports `pattern`, which
    is `inside` in the hub container; `beside` is the host file it reads on the host, if any."""

    file: Path
    line: int
    pattern: str
    inside: str
    glob: bool
    beside: Path | None = None


def caddy_tree(caddyfile: Path, mounts: dict[str, Path] | None = None,
               inside: str | None = CADDYFILE_IN_HUB) -> tuple[list[Path], list[CaddyImport]]:
    """(the Caddyfile and every file it imports, recursively, each once; the imports that reach
    nothing). Imports are resolved as Caddy resolves them in the hub: relative to the importing
    file's folder in the container, then mapped to the host through the hub's binds (`mounts`:
    container path -> host path). A file beside the Caddyfile on the host that no bind puts in
    the container is not there for Caddy. `inside` None: the Caddyfile is not bound (baked into
    an image): imports are read on the host. Snippet names are left alone."""
    mounts = mounts or {}
    seen: list[Path] = []
    pending: list[CaddyImport] = []
    snippets: set[str] = set()
    todo: list[tuple[Path, str | None]] = [(caddyfile, inside)]
    while todo:
        path, where = todo.pop(0)
        if path in seen or not path.is_file():
            continue
        seen.append(path)
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            tokens = line.split("#", 1)[0].split()
            if tokens and _SNIPPET_RE.match(tokens[0]):
                snippets.add(_SNIPPET_RE.match(tokens[0]).group(1))
            if len(tokens) < 2 or tokens[0] != "import":
                continue
            pattern = tokens[1]
            glob = any(c in pattern for c in "*?[")
            beside = path.parent / pattern if not pattern.startswith("/") else None
            if where is None:
                inner, host = None, (Path(pattern) if pattern.startswith("/") else path.parent / pattern)
            else:
                inner = posixpath.normpath(pattern if pattern.startswith("/") else
                                           posixpath.join(posixpath.dirname(where), pattern))
                host = _host_path(inner, mounts)
            found = [] if host is None else (sorted(host.parent.glob(host.name)) if glob else
                                             [host] if host.is_file() else [])
            if not found:
                pending.append(CaddyImport(path, number, pattern, inner or str(host), glob,
                                           beside if beside is not None and (beside.exists() or glob) else None))
            for f in found:
                todo.append((f, inner if inner is None or not glob else posixpath.join(posixpath.dirname(inner),
                                                                                        f.name)))
    return seen, [i for i in pending if i.glob or i.pattern not in snippets]


def caddy_files(caddyfile: Path, mounts: dict[str, Path] | None = None,
                inside: str | None = CADDYFILE_IN_HUB) -> list[Path]:
    """The Caddyfile and every file the hub's Caddy imports with it (caddy_tree)."""
    return caddy_tree(caddyfile, mounts, inside)[0]


@dataclass(frozen=True)
class Violation:
    """A rule broken, with its file. A `warning` is said but fails nothing: what it describes
    runs, it just does not do what the file seems to ask (e.g. an import matching no file)."""

    file: Path
    message: str
    warning: bool = False

    def __str__(self) -> str:
        return f"{'warning: ' if self.warning else ''}{self.file}: {self.message}"


def under(path: Path, base: Path) -> PurePosixPath | None:
    try:
        return PurePosixPath(path.relative_to(base))
    except ValueError:
        return None


def check_stacks(stacks: list[Stack], hub: str, base: Path, listed: list[str], *,
                 empty_dirs: list[Path] = (), stop_timeout: float | None = None,
                 dangling: list[Path] = ()) -> list[Violation]:
    """The hub-and-spoke rules (docs/services.md), on the models compose resolved:

    0. compose can read every stack; every folder holds a compose file (a symlinked folder whose
       target is gone is named with its target); the folder name is a
       valid project name; every declared stop_grace_period fits in STOP_TIMEOUT;
    1. only the hub publishes ports, and no spoke uses `network_mode: host` (it publishes
       every port on the host); the hub does not either (it could not join spoke networks);
    2. every other stack sits on its own external network;
    3. the hub joins every spoke network (and a hub network no stack declares is a warning);
    4. every reverse_proxy upstream in the hub's Caddyfile is a service, container name or
       alias on a network the hub shares, answered by one stack only;
    5. every bind source or volume device under ZFS_BASE_MOUNTPOINT belongs to a listed path;
    6. no container name is used by two stacks;
    7. an `x-orchestrator` block is valid (keys, consistency, before-snapshot services).
    """
    v = _folder_problems(stacks, empty_dirs, dangling)
    readable = [s for s in stacks if not s.error]
    by_name = {s.name: s for s in readable}
    hub_stack = by_name.get(hub)
    if hub_stack is None and not any(s.name == hub for s in stacks):
        v.append(Violation(base, f"no hub stack {hub!r} (HUB_SERVICE) in SERVICES_DIR"))
    hub_nets = hub_stack.all_networks() if hub_stack else set()
    owners: dict[str, list[str]] = {}
    for s in readable:
        v += _service_problems(s, hub, stop_timeout)
        if s.name != hub:
            v += _spoke_problems(s, hub, hub_stack, hub_nets, owners)
    v += _network_owner_problems(hub_stack, owners, by_name, every_stack_read=len(readable) == len(stacks))
    if hub_stack:
        # an upstream no readable stack answers to may belong to one compose cannot read: undecided
        v += _check_upstreams(hub_stack, readable, hub_nets, report_unknown=len(readable) == len(stacks))
    v += _data_problems(stacks, readable, base, listed)
    v += _port_clashes(readable, hub)
    v += _container_name_problems(readable)
    return v


def _folder_problems(stacks: list[Stack], empty_dirs: list[Path], dangling: list[Path]) -> list[Violation]:
    """Rule 0 and 7: folders that are no stack, stacks compose cannot read or a bad folder name,
    and what each readable stack's own x-orchestrator block gets wrong."""
    v: list[Violation] = [Violation(d, "holds no compose file (compose.yaml, compose.yml, docker-compose.yaml "
                                       "or docker-compose.yml); it is not a stack") for d in empty_dirs]
    v += [Violation(link, f"a symlink to {os.readlink(link)}, which does not exist: this stack is neither checked, "
                          "started nor backed up; bring its target back (a disk not mounted?) or remove the link")
          for link in dangling]
    for s in stacks:
        if not s.error:
            v += [Violation(s.file, problem) for problem in policy_of(s)[1] + allowed(s)[1] + ephemeral_problems(s)
                  + _probe_problems(s) + mass_change_limit(s.extensions)[1]]
        if not PROJECT_RE.match(s.name):  # compose is not asked about such a folder: said once, here
            v.append(Violation(s.dir, f"folder name {s.name!r} is not a valid compose project name "
                                      "(lowercase letters, digits, '-' and '_', starting with a letter or digit)"))
        elif s.error:
            v.append(Violation(s.file, f"compose cannot read this stack: {s.error}"))
    return v


def _service_problems(s: Stack, hub: str, stop_timeout: float | None) -> list[Violation]:
    """Rules 0 and 1 per service: its stop_grace_period fits in STOP_TIMEOUT; no `network_mode: host`."""
    v: list[Violation] = []
    for svc in s.services.values():
        if stop_timeout is not None and svc.stop_grace + STOP_MARGIN > stop_timeout:
            v.append(Violation(s.file, f"service {svc.name!r} declares stop_grace_period {svc.stop_grace:g}s, "
                                       f"which does not fit in STOP_TIMEOUT={stop_timeout:g}s with "
                                       f"{STOP_MARGIN:g}s to spare: the tool would give up waiting before "
                                       "compose does; raise STOP_TIMEOUT"))
        if svc.network_mode == "host" and (s.name == hub or "host-network" not in allowed(s)[0]):
            who = "the hub cannot join spoke networks with it" if s.name == hub else \
                (f"it publishes every port on the host; only the hub ({hub}) may publish (or declare "
                 f"{POLICY_KEY}.allow.host-network with the reason this stack needs it)")
            v.append(Violation(s.file, f"service {svc.name!r} uses network_mode: host: {who}"))
    return v


def _spoke_problems(s: Stack, hub: str, hub_stack: Stack | None, hub_nets: set[str],
                    owners: dict[str, list[str]]) -> list[Violation]:
    """Rules 1 to 3 for a spoke: no published port, its own external network, joined by the hub.
    Each external network it declares is added to `owners`."""
    v: list[Violation] = []
    for svc, ports in s.ports.items():
        if "publish" not in allowed(s)[0]:
            v.append(Violation(s.file, f"service {svc!r} publishes ports {ports_text(ports)}: only the hub "
                                       f"({hub}) may: remove them (in its compose.override.yaml, service "
                                       f"{svc!r}: `ports: !reset []`), or declare {POLICY_KEY}.allow.publish "
                                       "with the reason"))
    bridged = [svc.name for svc in s.services.values() if svc.network_mode == "bridge"]
    if not s.external_networks and bridged:
        # compose refuses `networks:` beside `network_mode`: the hint says what to remove first
        v += [Violation(s.file, f"service {name!r} sets network_mode: bridge (docker's default bridge, which "
                                "the hub cannot join): remove the line `network_mode: bridge` (compose refuses "
                                f"`networks:` beside it), then give {name!r} `networks: [{s.name}_net]` and the "
                                f"file a top-level `networks: {{{s.name}_net: {{external: true}}}}`")
              for name in bridged]
    elif not s.external_networks and not _host_networked(s):
        v.append(Violation(s.file, "declares no external network: each spoke needs its own, "
                                   f"joined by the hub (e.g. {s.name}_net)"))
    for net in sorted(s.external_networks):
        if not NETWORK_RE.match(net):
            v.append(Violation(s.file, f"external network {net!r} is not a valid name "
                                       "(letters, digits, '_', '.', '-'; not starting with '-')"))
        owners.setdefault(net, []).append(s.name)
        if hub_stack and net not in hub_nets:
            v.append(Violation(hub_stack.file, f"the hub does not join {net!r}, the network of {s.name}"))
    return v


def _network_owner_problems(hub_stack: Stack | None, owners: dict[str, list[str]], by_name: dict[str, Stack], *,
                            every_stack_read: bool) -> list[Violation]:
    """Rules 2 and 3 across stacks: a hub network no stack declares (a warning), a network two spokes share."""
    v: list[Violation] = []
    if hub_stack and every_stack_read:  # an unreadable stack may be the one declaring it
        for net in sorted(hub_stack.external_networks - set(owners)):
            v.append(Violation(hub_stack.file, f"the hub joins {net!r}, which no stack declares: a spoke that "
                                               "should be on it lost its `networks:` entry, or the network is "
                                               "left over (remove it from the hub)", warning=True))
    for net, names in sorted(owners.items()):
        if len(names) > 1:
            for name in names:
                v.append(Violation(by_name[name].file, f"network {net!r} is shared by {', '.join(names)}: "
                                                       "each spoke needs its own"))
    return v


def _data_problems(stacks: list[Stack], readable: list[Stack], base: Path, listed: list[str]) -> list[Violation]:
    """Rule 5: every mount's data is backed up (coverage), and every bind under ZFS_BASE_MOUNTPOINT is listed."""
    v: list[Violation] = []
    listed_paths = [PurePosixPath(p) for p in listed]
    services = sorted({s.name for s in stacks} | {PurePosixPath(p).parts[0] for p in listed if p})
    for s in readable:
        v += [Violation(s.file, f"{c.line().split(': ', 1)[1]}") for c in problems(stack_coverage(s, base, services))]
        for b in s.binds:
            rel = under(b.source, base)
            if rel is None or (rel.parts and rel.parts[0] != s.name and rel.parts[0] in services):
                continue  # outside ZFS, or another service's dataset (a coverage problem, said above)
            if not any(rel == a or a in rel.parents for a in listed_paths):
                v.append(Violation(s.file, f"service {b.service!r} mounts {b.source}, which is under "
                                           "ZFS_BASE_MOUNTPOINT but not listed in SERVICE_VOLUME_PATHS_AND_OWNERS"))
    return v


def _container_name_problems(readable: list[Stack]) -> list[Violation]:
    """Rule 6: no container name is used by two stacks."""
    v: list[Violation] = []
    seen: dict[str, str] = {}
    for s in readable:
        for cname in sorted(set(s.container_names.values())):
            if cname in seen and seen[cname] != s.name:
                v.append(Violation(s.file, f"container_name {cname!r} is also used by stack {seen[cname]!r}: "
                                           "docker allows one container per name"))
            seen.setdefault(cname, s.name)
    return v


def _host_port(port) -> tuple[str, str, str] | None:
    """(host ip, published port, protocol) of a published port in either model's shape; None for
    a port that is only exposed (no host side)."""
    if isinstance(port, dict):
        if not port.get("published"):
            return None
        return str(port.get("host_ip") or ""), str(port["published"]), str(port.get("protocol") or "tcp")
    text, _, proto = str(port).partition("/")
    parts = text.rsplit(":", 2)
    if len(parts) < 2 or not parts[-2]:
        return None
    return (parts[0] if len(parts) == 3 else ""), parts[-2], proto or "tcp"


def _same_address(a: str, b: str) -> bool:
    """Two host addresses a port is published on overlap (an empty one or a wildcard is every one)."""
    wild = ("", "0.0.0.0", "::", "[::]")
    return a == b or a in wild or b in wild


def _port_clashes(stacks: list[Stack], hub: str) -> list[Violation]:
    """A host port published by two services: docker binds it once, so the second would not start
    (an exception declared with allow.publish for a stack that also publishes the hub's 80/443,
    as Pi-hole's file does). Said on each stack but the hub, with the ports that would stay."""
    # only stacks that may publish: another spoke's ports are a violation of their own already
    stacks = [s for s in stacks if s.name == hub or "publish" in allowed(s)[0]]
    users: dict[tuple[str, str], list[tuple[Stack, str, str]]] = {}
    for s in stacks:
        for svc, ports in s.ports.items():
            for port in ports:
                key = _host_port(port)
                if key:
                    users.setdefault((key[1], key[2]), []).append((s, svc, key[0]))
    v = []
    for s in stacks:
        if s.name == hub:
            continue
        for svc, ports in s.ports.items():
            clash = {}
            for port in ports:
                key = _host_port(port)
                others = [o for o, other, ip in users.get((key[1], key[2]), [])
                          if (o.name, other) != (s.name, svc) and _same_address(ip, key[0])] if key else []
                if others:
                    clash[port_text(port)] = sorted({"the hub" if o.name == hub else f"stack {o.name}"
                                                    for o in others})
            if not clash:
                continue
            stay = [port_text(p) for p in ports if port_text(p) not in clash]
            with_whom = "; ".join(f"{p} by {', '.join(who)}" for p, who in clash.items())
            fix = (f"publish only the others: in its compose.override.yaml, service {svc!r} `ports: !override "
                   f"[{', '.join(repr(p) for p in stay)}]`" if stay else
                   f"remove its `ports:` (in its compose.override.yaml, service {svc!r}: `ports: !reset []`)")
            v.append(Violation(s.file, f"service {svc!r} publishes host ports that are published again ({with_whom}):"
                                       f" docker binds a host port once, so one of them would not start; {fix}"))
    return v


def _probe_problems(stack: Stack) -> list[str]:
    probe, problems = drill_probe(stack.extensions)
    if probe and probe.service not in stack.services:
        problems.append(f"{POLICY_KEY}.drill: service {probe.service!r} is not a service of this stack "
                        f"(services: {', '.join(stack.services)})")
    return problems


def _host_networked(stack: Stack) -> bool:
    """Every service shares the host's network (or another container's): no network to join."""
    return bool(stack.services) and all(svc.network_mode and svc.network_mode != "bridge"
                                        for svc in stack.services.values())


def accepted(stacks: list[Stack], hub: str) -> list[str]:
    """What check-stacks allows because a stack declared why: exceptions to the hub-and-spoke
    rules (`allow`) and data that need not be backed up (`ephemeral`), each with its reason."""
    notes = []
    for s in stacks:
        if s.error or s.name == hub:
            continue
        reasons, _problems = allowed(s)
        for svc in s.services.values():
            if svc.ports and "publish" in reasons:
                notes.append(f"{s.name}: service {svc.name!r} publishes {ports_text(svc.ports)}: allowed "
                             f"({reasons['publish']})")
            if svc.network_mode == "host" and "host-network" in reasons:
                notes.append(f"{s.name}: service {svc.name!r} uses network_mode: host: allowed "
                             f"({reasons['host-network']})")
        for key, reason in declared_ephemeral(s).items():
            notes.append(f"{s.name}: {key} is not backed up: declared ephemeral ({reason})")
        limit, _problems = mass_change_limit(s.extensions)
        if limit:
            notes.append(f"{s.name}: {limit.text()}: declared ({limit.reason})")
    return notes


def hub_caddyfile(hub_stack: Stack) -> Path:
    """Where the hub's Caddyfile is: bound to /etc/caddy/Caddyfile, or inside a folder bound to
    /etc/caddy (Caddy's image layout), else beside the compose file."""
    return _hub_caddyfile(hub_stack)[0]


def _hub_caddyfile(hub_stack: Stack) -> tuple[Path, str | None]:
    """(host path of the hub's Caddyfile, its path in the container; None when no bind puts it
    there: then it is read as it is on the host, as an image that copies the folder would)."""
    for b in hub_stack.binds:
        if b.target.rstrip("/") == CADDYFILE_IN_HUB:
            return b.source, CADDYFILE_IN_HUB
    for b in hub_stack.binds:
        if b.target.rstrip("/") == "/etc/caddy":
            return b.source / "Caddyfile", CADDYFILE_IN_HUB
    return hub_stack.dir / "Caddyfile", None


_LOOPBACK = ("localhost", "127.0.0.1", "[::1]", "::1")


def _publisher(stacks: list[Stack], port: str) -> tuple[Stack, str, str] | None:
    """(stack, service, container port) of the service that publishes `port` on the host."""
    for s in stacks:
        for svc in s.services.values():
            for p in svc.ports:
                published = str(p.get("published") or "") if isinstance(p, dict) else \
                    (str(p).split("/")[0].split(":")[-2] if str(p).count(":") >= 1 else "")
                target = str(p.get("target")) if isinstance(p, dict) else str(p).split("/")[0].split(":")[-1]
                if published and published == port:
                    return s, svc.name, target
    return None


def _loopback_upstream(path: Path, line: int, host: str, port: str, hub_stack: Stack,
                       stacks: list[Stack]) -> Violation:
    where = Path(f"{path}:{line}")
    address = f"{host}:{port}" if port else host
    head = (f"reverse_proxy upstream {address} is the hub itself: Caddy runs in the hub's container, on its "
            "own network, where 127.0.0.1 and localhost are that container, not the host nor a spoke")
    found = _publisher([s for s in stacks if s.name != hub_stack.name], port) if port else None
    if found:
        spoke, service, target = found
        name = spoke.services[service].container_name or service  # unique across stacks, a service name may not be
        return Violation(where, f"{head}; {spoke.name}'s service {service!r} publishes {port}: write "
                                f"`reverse_proxy {name}:{target}` (its name and container port on "
                                f"{spoke.name}'s external network, which the hub joins) and drop that published "
                                "port")
    return Violation(where, f"{head}; write the spoke's service name and its container port on the network it "
                            f"shares with the hub: `reverse_proxy <service>:<port>`")


def _import_problem(imp: CaddyImport, hub_stack: Stack) -> Violation:
    where = Path(f"{imp.file}:{imp.line}")
    if imp.beside is not None:
        try:
            shown = f"./{imp.beside.relative_to(hub_stack.dir)}"
        except ValueError:
            shown = str(imp.beside)
        bind = f"; it is on the host ({imp.beside}), but no bind puts it in the hub: add `- {shown}:{imp.inside}:ro` " \
               "to the hub service's volumes"
        if imp.glob:
            bind = f"; bind the folder it is in, e.g. `- {shown.rsplit('/', 1)[0]}:{posixpath.dirname(imp.inside)}:ro`"
    else:
        bind = ""
    if imp.glob:
        return Violation(where, f"import {imp.pattern} matches no file in the hub container ({imp.inside}): it "
                                f"serves nothing{bind}", warning=True)
    return Violation(where, f"import {imp.pattern}: the hub container has no {imp.inside}, and Caddy does not "
                            f"start without it{bind}")


def _check_upstreams(hub_stack: Stack, stacks: list[Stack], hub_nets: set[str], *,
                     report_unknown: bool = True) -> list[Violation]:
    caddyfile, inside = _hub_caddyfile(hub_stack)
    if not caddyfile.is_file():
        return [Violation(caddyfile, "the hub has no Caddyfile (bound to /etc/caddy/Caddyfile, in a folder bound to "
                                     "/etc/caddy, or beside its compose file)")]
    answering: dict[str, set[str]] = {}  # host name -> stacks answering to it on hub networks
    elsewhere: dict[str, set[str]] = {}  # host name -> stacks that have it, on networks the hub does not join
    for s in stacks:
        for host in s.names_on(hub_nets):
            answering.setdefault(host, set()).add(s.name)
        for host in s.names_on(s.all_networks()):
            elsewhere.setdefault(host, set()).add(s.name)
    mounts = {b.target: b.source for b in hub_stack.binds}
    files, unmet = caddy_tree(caddyfile, mounts, inside)
    v = [_import_problem(imp, hub_stack) for imp in unmet]
    for path in files:
        for line, host, port in caddy_upstream_tokens(path.read_text(errors="replace")):
            if "{" in host:  # a placeholder is decided at run time
                continue
            if host in _LOOPBACK:
                if port != "2019":  # Caddy's own admin endpoint is in the hub indeed
                    v.append(_loopback_upstream(path, line, host, port, hub_stack, stacks))
                continue
            who = answering.get(host, set())
            if not who and report_unknown and elsewhere.get(host):
                owner = sorted(elsewhere[host])[0]
                v.append(Violation(Path(f"{path}:{line}"), f"reverse_proxy upstream {host!r} is in stack {owner}, on "
                                                           "no network the hub shares: put it on that stack's "
                                                           f"external network (e.g. {owner}_net) and the hub too"))
            elif not who and report_unknown:
                v.append(Violation(Path(f"{path}:{line}"), f"reverse_proxy upstream {host!r} is not a service, "
                                                           "container name or alias on a network the hub shares"))
            elif len(who) > 1:
                v.append(Violation(Path(f"{path}:{line}"), f"reverse_proxy upstream {host!r} is ambiguous: "
                                                           f"stacks {', '.join(sorted(who))} all answer to it on "
                                                           "networks the hub joins; use a container_name or alias"))
    return v
