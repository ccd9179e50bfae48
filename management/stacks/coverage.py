"""Where every mount of every service keeps its bytes, and whether the nightly backup reaches
them. Pure: it reads the stacks compose resolved (compose_file.Stack) and the settings' paths.

Each mount gets one verdict:

- covered: on the stack's own dataset (ZFS_BASE_MOUNTPOINT/<stack>/...); backed up,
  snapshot-consistent;
- config: read-only, in the stack folder; backed up by the stack folder's copy;
- copied: writable, in the stack folder (its real path too: no symlink out of it), of a stack
  the night stops: the stack folder's copy, taken while the stack is stopped, holds it whole
  (consistent); outside the ZFS snapshot, so local history does not see it (`make adopt`
  moves it onto the dataset for that);
- ephemeral: declared in the stack's `x-orchestrator: {ephemeral: {...}}` with a reason; not
  backed up, on purpose;
- not data: the Docker socket, /etc/localtime, /dev, /proc, /sys, /run, tmpfs, a read-only
  host path; nothing to back up;
- uncovered: a named or anonymous docker volume (the OS disk), a writable bind in the folder of
  a `consistency: live` stack (copied while it runs: a database there may be torn), a writable
  bind anywhere else on the host; NOT backed up (consistently);
- foreign: on another service's dataset (restoring that service would swap data under this
  one); NOT backed up with this stack, and a rule violation.

A bind through a symlink in the stack folder that leads out of it gets the verdict of where it
leads: the folder's copy keeps the link, not the data.

A stack with an uncovered or foreign mount is not fully backed up: check-stacks, status,
doctor and every backup say so, each with the fix (`make adopt`, `:ro`, or an `ephemeral`
declaration).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path, PurePosixPath

from management.stacks.compose_file import LIVE, POLICY_KEY, Mount, Stack, policy_of

COVERED, CONFIG, COPIED, EPHEMERAL, NOT_DATA, UNCOVERED, FOREIGN = (
    "covered", "config", "copied", "ephemeral", "not data", "uncovered", "foreign")
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

    def note(self) -> str:
        """The mount and where its bytes are, without the verdict (for a line that names it)."""
        return f"{self.stack}: service {self.service!r} {self.source} -> {self.target}: {self.where}"

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


def _out_of_folder(host: str, folder: Path) -> str | None:
    """The real path a bind in the stack folder leads to when a symlink takes it out of the
    folder (the folder's copy keeps the link, not the data), else None. A symlinked stack folder
    is followed, as compose and the copy follow it."""
    real = os.path.realpath(host)
    return None if _under(PurePosixPath(real), PurePosixPath(os.path.realpath(folder))) is not None else real


def classify(stack: Stack, mount: Mount, base: Path, services: list[str]) -> Coverage:
    """The verdict for one mount. `base` is ZFS_BASE_MOUNTPOINT; `services` the datasets below it."""
    shown = mount.source if mount.kind == "bind" else (
        f"volume {mount.source}" if mount.source else "anonymous volume") if mount.kind == "volume" else mount.kind
    cov = dict(stack=stack.name, service=mount.service, source=shown, target=mount.target)
    reason = next((r for k, r in declared_ephemeral(stack).items() if _names(stack, mount, k)), None)
    if mount.kind == "tmpfs":
        return Coverage(**cov, verdict=NOT_DATA, where="tmpfs: memory")
    host = mount.source if mount.kind == "bind" else mount.device
    if host and mount.kind == "bind":
        lexical = _under(PurePosixPath(host), PurePosixPath(stack.dir)) is not None
        real = _out_of_folder(host, stack.dir)
        if lexical and real is not None:
            out = _host(stack, mount, real, cov, reason, base, services)
            return replace(out, where=f"{out.where}; {_relative(stack, host)} is a symlink to {real}: the stack "
                                      "folder's copy keeps the link, not the data")
        if real is None:  # in the folder by its real path (a symlinked stack folder too)
            return _in_folder(stack, mount, host, cov, reason, base, services)
    if host:
        return _host(stack, mount, host, cov, reason, base, services)
    if reason is not None:
        return Coverage(**cov, verdict=EPHEMERAL, where=reason)
    where = "docker volume on the OS disk" + (" (external)" if mount.external else "")
    if not mount.source:
        where = "anonymous docker volume on the OS disk"
    return Coverage(**cov, verdict=UNCOVERED, where=where,
                    fix=f"make adopt SERVICE_NAME={stack.name} (moves it onto the dataset), or declare it in "
                        f"{POLICY_KEY}.{EPHEMERAL_KEY} with a reason")


def _relative(stack: Stack, host: str) -> str:
    return "./" + os.path.relpath(host, stack.dir)


def _dataset(stack: Stack, path: PurePosixPath, cov: dict, base: Path, services: list[str]) -> Coverage | None:
    rel = _under(path, PurePosixPath(base))
    if rel is not None and rel.parts:
        owner = rel.parts[0]
        if owner == stack.name:
            return Coverage(**cov, verdict=COVERED, where=f"dataset {owner}")
        if owner in services:
            return Coverage(**cov, verdict=FOREIGN, where=f"dataset {owner}, another service's",
                            fix=f"keep {stack.name}'s data below {base}/{stack.name}: restoring {owner} would "
                                "replace it while this stack runs")
    return None


def _in_folder(stack: Stack, mount: Mount, host: str, cov: dict, reason: str | None, base: Path,
               services: list[str]) -> Coverage:
    """A bind in the stack folder (its real path there too). The night copies the folder into
    the archive: while the stack is stopped (stop mode), or right before the snapshot while it
    runs (`consistency: live`), when a database there may be copied torn."""
    found = _dataset(stack, PurePosixPath(host), cov, base, services)  # a stack folder below the datasets
    if found is not None:
        return found
    if reason is not None:
        return Coverage(**cov, verdict=EPHEMERAL, where=reason)
    if mount.read_only:
        return Coverage(**cov, verdict=CONFIG, where="stack folder, read-only: in the stack folder's copy")
    adopt = f"make adopt SERVICE_NAME={stack.name}"
    declare = f"declare it in {POLICY_KEY}.{EPHEMERAL_KEY} with a reason"
    if policy_of(stack)[0].consistency != LIVE:  # stop mode, the default (a policy with a problem too)
        return Coverage(**cov, verdict=COPIED, where=(
            "in the stack folder; the night copies it into the archive while the stack is stopped (consistent); "
            f"outside the ZFS snapshot, so make versions and local history do not see it ({adopt} moves it "
            "onto the dataset for that)" if not Path(host).is_file() else
            "in the stack folder; the night copies it into the archive while the stack is stopped (consistent); "
            "outside the ZFS snapshot, so make versions and local history do not see it"))
    where = ("in the stack folder, copied while the stack runs (consistency: live): a database there may be torn")
    stop = f"or remove consistency: live from {POLICY_KEY} (the night then stops the stack and copies it whole)"
    if Path(host).is_file():  # adopt moves directories only
        fix = f"mount it read-only (':ro') if the container only reads it; {stop}; or {declare}"
    else:
        fix = f"move it onto the dataset with {adopt}; {stop}; or {declare}"
    return Coverage(**cov, verdict=UNCOVERED, where=where, fix=fix)


def _host(stack: Stack, mount: Mount, host: str, cov: dict, reason: str | None, base: Path,
          services: list[str]) -> Coverage:
    """A bind or a volume's device anywhere on the host but in the stack folder."""
    path = PurePosixPath(host)
    found = _dataset(stack, path, cov, base, services)
    if found is not None:
        return found
    if reason is not None:
        return Coverage(**cov, verdict=EPHEMERAL, where=reason)
    if _system(path):
        return Coverage(**cov, verdict=NOT_DATA, where="a host system path")
    declare = f"declare it in {POLICY_KEY}.{EPHEMERAL_KEY} with a reason"
    if _under(path, PurePosixPath(stack.dir)) is not None:  # a volume's device in the stack folder
        if mount.read_only:
            return Coverage(**cov, verdict=CONFIG, where="stack folder, read-only: in the stack folder's copy")
        return Coverage(**cov, verdict=UNCOVERED, where="stack folder on the OS disk, never snapshotted",
                        fix=f"make adopt SERVICE_NAME={stack.name} (moves it onto the dataset); or ':ro' if "
                            f"the container only reads it, or {declare}")
    if mount.read_only:
        return Coverage(**cov, verdict=NOT_DATA, where="a read-only host path")
    # a bind shows its path as its source already; a volume's device is named here
    outside = f"host path {host} (its driver_opts.device), outside ZFS" if mount.kind == "volume" else \
        "a host path outside ZFS"
    if Path(host).is_file():  # adopt moves directories only
        fix = (f"mount it read-only (':ro') if the container only reads it; else keep it in a directory bound "
               f"instead, then make adopt SERVICE_NAME={stack.name}; or {declare}")
    else:
        fix = f"make adopt SERVICE_NAME={stack.name} (moves it onto the dataset), or {declare}"
    return Coverage(**cov, verdict=UNCOVERED, where=outside, fix=fix)


def stack_coverage(stack: Stack, base: Path, services: list[str]) -> list[Coverage]:
    """Every mount of a stack compose could read, in the file's order."""
    return [classify(stack, m, base, services) for m in stack.mounts]


def problems(coverage: list[Coverage]) -> list[Coverage]:
    return [c for c in coverage if c.problem]
