"""Where every mount of every service keeps its bytes, and whether the nightly backup reaches
them. Pure: it reads the stacks compose resolved (compose_file.Stack) and the settings' paths.

Each mount gets one verdict:

- covered: on the stack's own dataset (ZFS_BASE_MOUNTPOINT/<stack>/...); backed up,
  snapshot-consistent;
- config: read-only, in the stack folder; backed up by the stack folder's copy;
- ephemeral: declared in the stack's `x-orchestrator: {ephemeral: {...}}` with a reason; not
  backed up, on purpose;
- not data: the Docker socket, /etc/localtime, /dev, /proc, /sys, /run, tmpfs, a read-only
  host path; nothing to back up;
- uncovered: a named or anonymous docker volume (the OS disk), a writable bind in the stack
  folder (the OS disk, never snapshotted), a writable bind anywhere else on the host; NOT
  backed up;
- foreign: on another service's dataset (restoring that service would swap data under this
  one); NOT backed up with this stack, and a rule violation.

A stack with an uncovered or foreign mount is not fully backed up: check-stacks, status,
doctor and every backup say so, each with the fix (`make adopt`, `:ro`, or an `ephemeral`
declaration).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath

from management.tools.compose_file import POLICY_KEY, Mount, Stack

COVERED, CONFIG, EPHEMERAL, NOT_DATA, UNCOVERED, FOREIGN = (
    "covered", "config", "ephemeral", "not data", "uncovered", "foreign")
PROBLEMS = (UNCOVERED, FOREIGN)
EPHEMERAL_KEY = "ephemeral"

# Host paths that are not data a stack keeps: sockets, clocks, kernel and device trees.
SYSTEM_PATHS = tuple(PurePosixPath(p) for p in (
    "/var/run/docker.sock", "/run/docker.sock", "/etc/localtime", "/etc/timezone", "/usr/share/zoneinfo",
    "/etc/hosts", "/etc/hostname", "/etc/resolv.conf", "/etc/machine-id", "/dev", "/proc", "/sys", "/run",
    "/var/run", "/lib/modules", "/usr/lib/modules"))


@dataclass(frozen=True)
class Coverage:
    """One mount's verdict: where its bytes are, and what to do about it when it is a problem."""

    stack: str
    service: str
    source: str  # a host path, or `volume <name>` / `anonymous volume`
    target: str
    verdict: str
    where: str
    fix: str = ""

    @property
    def problem(self) -> bool:
        return self.verdict in PROBLEMS

    def line(self) -> str:
        head = f"{self.stack}: service {self.service!r} {self.source} -> {self.target}: {self.verdict} ({self.where})"
        return f"{head}; fix: {self.fix}" if self.fix else head

    def to_dict(self) -> dict:
        return asdict(self) | {"problem": self.problem}


def declared_ephemeral(stack: Stack) -> dict[str, str]:
    """`x-orchestrator: {ephemeral: {<volume, ./path, /abs/path or /container/target>: reason}}`."""
    raw = (stack.extensions.get(POLICY_KEY) or {})
    raw = raw.get(EPHEMERAL_KEY) if isinstance(raw, dict) else None
    return {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}


def ephemeral_problems(stack: Stack) -> list[str]:
    """Each declaration must give a reason and name a mount of the stack."""
    raw = (stack.extensions.get(POLICY_KEY) or {})
    raw = raw.get(EPHEMERAL_KEY) if isinstance(raw, dict) else None
    if raw is None:
        return []
    where = f"{POLICY_KEY}.{EPHEMERAL_KEY}"
    if not isinstance(raw, dict):
        return [f"{where} must map a volume, a path or a container path to the reason it need not be backed up"]
    problems = []
    for key, reason in raw.items():
        if not isinstance(reason, str) or not reason.strip():
            problems.append(f"{where}.{key}: give the reason it need not be backed up (e.g. \"downloaded models, "
                            "fetched again on start\")")
        if not any(_names(stack, m, str(key)) for m in stack.mounts):
            problems.append(f"{where}.{key}: matches no mount of this stack (name a volume, ./path, /host/path or "
                            "the container path)")
    return problems


def _names(stack: Stack, mount: Mount, key: str) -> bool:
    if key == mount.target:
        return True
    if mount.kind == "volume":
        return key in (mount.source, mount.volume_name) and bool(key)
    if mount.kind == "bind":
        path = Path(key) if key.startswith("/") else stack.dir / key
        return os.path.normpath(path) == mount.source
    return False


def _under(path: PurePosixPath, base: PurePosixPath) -> PurePosixPath | None:
    try:
        return path.relative_to(base)
    except ValueError:
        return None


def _system(path: PurePosixPath) -> bool:
    return any(path == p or p in path.parents for p in SYSTEM_PATHS)


def classify(stack: Stack, mount: Mount, base: Path, services: list[str]) -> Coverage:
    """The verdict for one mount. `base` is ZFS_BASE_MOUNTPOINT; `services` the datasets below it."""
    shown = mount.source if mount.kind == "bind" else (
        f"volume {mount.source}" if mount.source else "anonymous volume") if mount.kind == "volume" else mount.kind
    cov = dict(stack=stack.name, service=mount.service, source=shown, target=mount.target)
    reason = next((r for k, r in declared_ephemeral(stack).items() if _names(stack, mount, k)), None)
    if mount.kind == "tmpfs":
        return Coverage(**cov, verdict=NOT_DATA, where="tmpfs: memory")
    host = mount.source if mount.kind == "bind" else mount.device
    if host:
        path = PurePosixPath(host)
        rel = _under(path, PurePosixPath(base))
        if rel is not None and rel.parts:
            owner = rel.parts[0]
            if owner == stack.name:
                return Coverage(**cov, verdict=COVERED, where=f"dataset {owner}")
            if owner in services:
                return Coverage(**cov, verdict=FOREIGN, where=f"dataset {owner}, another service's",
                                fix=f"keep {stack.name}'s data below {base}/{stack.name}: restoring {owner} would "
                                    "replace it while this stack runs")
        if reason is not None:
            return Coverage(**cov, verdict=EPHEMERAL, where=reason)
        if _system(path):
            return Coverage(**cov, verdict=NOT_DATA, where="a host system path")
        in_folder = _under(path, PurePosixPath(stack.dir))
        if in_folder is not None:
            if mount.read_only:
                return Coverage(**cov, verdict=CONFIG, where="stack folder, read-only: in the stack folder's copy")
            adopt = f"make adopt SERVICE_NAME={stack.name} (moves it onto the dataset)"
            declare = f"declare it in {POLICY_KEY}.{EPHEMERAL_KEY} with a reason"
            fix = (f"mount it read-only (':ro') if it is configuration the container only reads, else {adopt}"
                   if Path(host).is_file() else f"{adopt}; or ':ro' if the container only reads it")
            return Coverage(**cov, verdict=UNCOVERED, where="stack folder on the OS disk, never snapshotted",
                            fix=f"{fix}, or {declare}")
        if mount.read_only:
            return Coverage(**cov, verdict=NOT_DATA, where="a read-only host path")
        # a bind shows its path as its source already; a volume's device is named here
        outside = f"host path {host} (its driver_opts.device), outside ZFS" if mount.kind == "volume" else \
            "a host path outside ZFS"
        return Coverage(**cov, verdict=UNCOVERED, where=outside,
                        fix=f"make adopt SERVICE_NAME={stack.name} (moves it onto the dataset), or declare it in "
                            f"{POLICY_KEY}.{EPHEMERAL_KEY} with a reason")
    if reason is not None:
        return Coverage(**cov, verdict=EPHEMERAL, where=reason)
    where = "docker volume on the OS disk" + (" (external)" if mount.external else "")
    if not mount.source:
        where = "anonymous docker volume on the OS disk"
    return Coverage(**cov, verdict=UNCOVERED, where=where,
                    fix=f"make adopt SERVICE_NAME={stack.name} (moves it onto the dataset), or declare it in "
                        f"{POLICY_KEY}.{EPHEMERAL_KEY} with a reason")


def stack_coverage(stack: Stack, base: Path, services: list[str]) -> list[Coverage]:
    """Every mount of a stack compose could read, in the file's order."""
    return [classify(stack, m, base, services) for m in stack.mounts]


def problems(coverage: list[Coverage]) -> list[Coverage]:
    return [c for c in coverage if c.problem]
