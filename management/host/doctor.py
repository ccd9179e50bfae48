"""`doctor`: a read-only audit of the host against the design (spec 004 and docs/).

Each check is a small function of a `Host` (the settings, the Runner, and the paths it reads)
returning one `Check`: ok / warn / fail, a name, what it found, and for anything not ok the fix
(a command to run or a file to edit). The CLI prints them and exits 1 when any check fails.

What fails and what warns:
- fail: the host departs from the design in a way that puts data or access at risk: no
  userns-remap, unbounded container logs, the pool or a dataset not there, a disk of the pool not
  ONLINE or with read/write/checksum errors, a scrub that found errors, under 5 % free,
  password logins over ssh, no default-deny firewall, a readable .env or borg key, no
  nightly backup scheduled, a last good backup older than STALE_AFTER;
- warn: departs from the design without that risk (ssh on port 22, root login by key, the
  cache import at boot, under 20 % free, compose v1 only, no boot unit, a key not exported, a
  pool without redundancy, no scrub within 35 days or none scheduled),
  or the check cannot tell (a tool is missing, systemd is not running): it names what is missing.

Nothing here writes: every command is a query (`mutating=False`), every file is only read.
"""

from __future__ import annotations

import glob
import json
import re
import shlex
import shutil
import stat
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from management.config import Settings
from management.errors import CommandError, OrchestratorError
from management.host import autostart, schedule, zed
from management.host.storage import merge_subid, parse_daemon_json
from management.runner import Result, Runner
from management.state import StateStore
from management.text import age, human_size
from management.tools.compose import is_v1_version
from management.tools.zfs import (
    PoolStatus,
    parse_pool_status,
    parse_props,
    parse_space,
    pool_status_argv,
    props_argv,
    space_argv,
)

OK, WARN, FAIL = "ok", "warn", "fail"
QUERY_TIMEOUT = 30.0
FREE_WARN = 0.20  # ZFS slows down past 80 % full; the kept snapshots grow with every change
FREE_FAIL = 0.05  # a night's snapshot and borg's cache may not fit any more
SCRUB_MAX_AGE_DAYS = 35  # Debian's zfsutils-linux scrubs monthly (second Sunday), plus a few days
DEBIAN_SCRUB_CRON = "zfsutils-linux"  # /etc/cron.d/zfsutils-linux: monthly scrub and trim
NO_REDUNDANCY = "no redundancy: ZFS can detect but not repair corruption; see make attach-mirror"


@dataclass(frozen=True)
class Check:
    status: str  # ok | warn | fail
    name: str
    detail: str
    fix: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Host:
    """What the checks look at. Tests point the paths at a temp dir and the runner at a fake."""

    settings: Settings
    runner: Runner
    cron_dir: Path = Path("/etc/cron.d")
    zed_dir: Path = zed.ZED_DIR
    unit_dir: Path = autostart.SYSTEM_UNIT_DIR
    sshd_config: Path = Path("/etc/ssh/sshd_config")
    systemd: bool | None = None  # None: systemd is PID 1 when /run/systemd/system exists (sd_booted)
    clock: Callable[[], float] = time.time
    which: Callable[[str], str | None] = shutil.which  # where a program is on PATH (borg's interpreter)
    mounts_file: Path = Path("/proc/self/mounts")  # what is mounted (borg mounts under MOUNT_DIR)
    _memo: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.systemd is None:
            self.systemd = Path("/run/systemd/system").is_dir()

    def query(self, argv: list[str], ok_codes=(0,), timeout: float = QUERY_TIMEOUT) -> Result:
        """A read-only command; raises CommandError (program not found, exit code, timeout)."""
        return self.runner.run(argv, mutating=False, ok_codes=ok_codes, timeout=timeout)

    def once(self, key: str, compute: Callable[[], object]):
        """One answer per doctor run for what several checks need (docker info, sshd -T)."""
        if key not in self._memo:
            try:
                self._memo[key] = compute()
            except OrchestratorError as exc:
                self._memo[key] = exc
        return self._memo[key]

    @property
    def pool(self) -> str:
        return self.settings.zfs_parent_dataset.split("/", 1)[0]


def missing(exc: OrchestratorError) -> str | None:
    """The program's name when the command failed because it is not installed."""
    if isinstance(exc, CommandError) and exc.reason.startswith("program not found: "):
        return exc.reason.removeprefix("program not found: ")
    return None


def why(exc: OrchestratorError) -> str:
    """One line: the tool's own last word on stderr, else the error's first line."""
    if isinstance(exc, CommandError):
        lines = [ln.strip() for ln in exc.stderr_tail.splitlines() if ln.strip()]
        return lines[-1] if lines else f"{exc.command}: {exc.reason}"
    return str(exc).splitlines()[0]


def cannot(name: str, exc: OrchestratorError, what: str) -> Check:
    """A check that could not run: a warn naming what is missing."""
    program = missing(exc)
    if program:
        return Check(WARN, name, f"cannot tell: {program} is not installed (or not on PATH)",
                     f"install {program} to check {what}")
    command = f"`{exc.command}`" if isinstance(exc, CommandError) else "it"
    return Check(WARN, name, f"cannot tell: {why(exc)}", f"make {command} work (as root) to check {what}")


# --- docker ---------------------------------------------------------------------------------


def docker_info(host: Host) -> dict | OrchestratorError:
    def compute() -> dict:
        out = host.query(["docker", "info", "--format", "{{json .}}"]).stdout
        try:
            return json.loads(out)
        except ValueError:
            raise OrchestratorError(f"docker info printed no JSON: {out.strip()[:200]}") from None
    return host.once("docker info", compute)


def daemon_json(host: Host) -> dict | OrchestratorError:
    path = host.settings.docker_daemon_json
    return host.once("daemon.json", lambda: parse_daemon_json(path) if path.exists() else None)


def check_userns(host: Host) -> Check:
    name, s = "userns-remap", host.settings
    info = docker_info(host)
    if isinstance(info, OrchestratorError):
        return cannot(name, info, "that dockerd runs with userns-remap")
    options = info.get("SecurityOptions") or []
    if not any("name=userns" in str(o) for o in options):
        return Check(FAIL, name, "dockerd runs without userns-remap: root in a container is root on the host",
                     f"make setup-storage (sets \"userns-remap\": \"{s.docker_remap_user}\" in "
                     f"{s.docker_daemon_json} and restarts docker)")
    detail = f"active (docker root {info.get('DockerRootDir', '?')})"
    conf = daemon_json(host)
    configured = conf.get("userns-remap") if isinstance(conf, dict) else None
    if configured and configured != s.docker_remap_user:
        return Check(WARN, name, f"{detail}, but {s.docker_daemon_json} maps to {configured!r} and the .env says "
                     f"DOCKER_REMAP_USER={s.docker_remap_user}: REMAPPED_*_UID may not match",
                     f"set DOCKER_REMAP_USER={configured} in {s.env_file}, or make setup-storage")
    return Check(OK, name, detail)


def check_subids(host: Host) -> Check:
    s = host.settings
    name, user = "subuid/subgid", s.docker_remap_user
    wanted = f"{user}:{s.subid_start}:{s.subid_count}"
    short = []
    for path in (s.subuid_file, s.subgid_file):
        try:
            text = path.read_text()
        except FileNotFoundError:
            short.append(f"{path} does not exist")
            continue
        except OSError as exc:
            return Check(WARN, name, f"cannot tell: cannot read {path}: {exc.strerror}", "run doctor as root")
        if merge_subid(text, user, s.subid_start, s.subid_count)[1]:
            last = s.subid_start + s.subid_count - 1
            short.append(f"{path} has no range for {user} covering {s.subid_start}..{last}")
    if short:
        return Check(FAIL, name, "; ".join(short), f"make setup-storage (adds {wanted} to both files)")
    return Check(OK, name, f"{wanted} in {s.subuid_file} and {s.subgid_file}")


def check_log_rotation(host: Host) -> Check:
    name, path = "docker log rotation", host.settings.docker_daemon_json
    conf = daemon_json(host)
    if isinstance(conf, OrchestratorError):
        return Check(FAIL, name, str(conf), f"fix the JSON in {path}, then make setup-storage")
    fix = f"make setup-storage (sets \"log-driver\": \"local\" with max-size 10m, max-file 3 in {path})"
    if conf is None:
        return Check(FAIL, name, f"{path} does not exist: docker's default json-file driver keeps logs forever", fix)
    driver = conf.get("log-driver", "json-file")
    opts = conf.get("log-opts") or {}
    size, files = opts.get("max-size"), opts.get("max-file")
    if driver == "local":
        detail = f"local, max-size {size or '20m (default)'}, max-file {files or '5 (default)'}"
    elif driver == "json-file" and size:
        detail = f"json-file, max-size {size}, max-file {files or '1 (default)'}"
    elif driver == "json-file":
        return Check(FAIL, name, f"{path}: json-file without max-size: container logs grow without bound", fix)
    else:
        return Check(WARN, name, f"{path}: log-driver {driver!r}: rotation is up to that system, not docker", fix)
    info = docker_info(host)
    running = info.get("LoggingDriver") if isinstance(info, dict) else None
    if running and running != driver:
        return Check(WARN, name, f"{path} says {driver} but dockerd runs {running}: the file is not applied yet",
                     "restart docker (systemctl restart docker)")
    return Check(OK, name, detail)


def check_compose(host: Host) -> Check:
    name = "compose v2"
    try:
        out = host.query(["docker", "compose", "version"]).stdout.strip()
        return Check(OK, name, out.splitlines()[0] if out else "docker compose answers")
    except CommandError as exc:
        v2_problem = exc
    install = ("install compose v2: apt-get install docker-compose on Debian 13 (trixie), "
               "docker-compose-plugin from Docker's repository on Debian 12")
    try:
        short = host.query(["docker-compose", "version", "--short"]).stdout.strip()
    except CommandError:
        return Check(FAIL, name, f"no compose: docker compose ({why(v2_problem)}) nor docker-compose", install)
    if not is_v1_version(short):  # Debian 13's docker-compose is v2; docker's CLI does not find it
        return Check(OK, name, f"docker-compose {short} (compose v2 on its own; docker compose: {why(v2_problem)})")
    return Check(WARN, name, f"only compose v1 ({short}): on v1 every stack is stop-mode (x-orchestrator is dropped)",
                 install)


# --- zfs ------------------------------------------------------------------------------------


def check_pool(host: Host) -> Check:
    name, pool = "zfs pool", host.pool
    try:
        r = host.query(["zpool", "list", "-H", "-o", "name,health", pool], ok_codes=(0, 1), timeout=60)
    except CommandError as exc:
        return cannot(name, exc, f"that pool {pool} is imported")
    fields = r.stdout.split()
    if r.returncode != 0 or not fields:
        return Check(FAIL, name, f"pool {pool} is not imported ({r.stderr.strip() or 'no such pool'})",
                     f"zpool import {pool}")
    health = fields[1] if len(fields) > 1 else "?"
    if health != "ONLINE":
        return Check(FAIL, name, f"pool {pool} is {health}", f"zpool status -v {pool}")
    return Check(OK, name, f"{pool} imported, ONLINE")


def pool_status(host: Host) -> PoolStatus | OrchestratorError:
    """`zpool status POOL`, once per doctor run (plain: zfs-fuse has no -p)."""
    def compute() -> PoolStatus:
        found = parse_pool_status(host.query(pool_status_argv(host.pool), timeout=60).stdout)
        if not found.pool:
            raise OrchestratorError(f"zpool status {host.pool} printed no pool")
        return found
    return host.once("zpool status", compute)


def _status_or_check(host: Host, name: str, what: str) -> PoolStatus | Check:
    st = pool_status(host)
    return cannot(name, st, what) if isinstance(st, OrchestratorError) else st


def check_pool_redundancy(host: Host) -> Check:
    """Spec 004: the data disk and the Backup Data Disk form a mirror. ZFS repairs a block a scrub
    or a read finds damaged only from a second copy."""
    name, pool = "pool redundancy", host.pool
    st = _status_or_check(host, name, f"the layout of {pool}")
    if isinstance(st, Check):
        return st
    if st.redundant is None:
        return Check(WARN, name, f"cannot tell: zpool status {pool} listed no data disk", f"zpool status {pool}")
    if not st.redundant:
        return Check(WARN, name, f"{pool} is {st.layout}: {NO_REDUNDANCY}",
                     "make attach-mirror DISK=/dev/disk/by-id/<the Backup Data Disk>")
    return Check(OK, name, f"{pool} is {st.layout}")


def check_pool_errors(host: Host) -> Check:
    """Disks not ONLINE and READ/WRITE/CKSUM counts: a DEGRADED mirror runs on one disk."""
    name, pool = "pool devices", host.pool
    st = _status_or_check(host, name, f"the devices of {pool}")
    if isinstance(st, Check):
        return st
    bad = [f"{v.name} {v.state}{f' ({v.note})' if v.note else ''}" for v in st.unhealthy]
    errs = [f"{v.name} read {v.read} write {v.write} cksum {v.cksum}" for v in st.with_errors]
    if bad or errs:
        detail = "; ".join(([f"{pool} is {st.state}: " + ", ".join(bad)] if bad else []) +
                           ([f"errors: {', '.join(errs)}"] if errs else []))
        fix = st.action or "zpool status -v " + pool
        return Check(FAIL, name, detail, f"{fix} (zpool status -v {pool}; after the cause is fixed: "
                                         f"zpool clear {pool})")
    leaves = [v for v in st.vdevs if v.depth >= 1 and not st.children(v)]
    return Check(OK, name, f"{len(leaves)} disk(s) ONLINE, no read/write/checksum errors")


def check_scrub(host: Host) -> Check:
    """The last scrub: when it finished and what it found (zpool status's scan line)."""
    name, pool = "last scrub", host.pool
    st = _status_or_check(host, name, f"when {pool} was last scrubbed")
    if isinstance(st, Check):
        return st
    scan, fix = st.scan, f"zpool scrub {pool} (and a monthly schedule: see the scrub schedule check)"
    if scan.kind == "scrub" and scan.state == "in_progress":
        return Check(OK, name, f"{pool}: {scan.text}")
    if scan.kind == "scrub" and scan.state in ("paused", "canceled"):
        return Check(WARN, name, f"{pool}: {scan.text}", f"zpool scrub {pool}")
    if scan.kind != "scrub" or scan.state != "finished":
        why = "never scrubbed" if scan.kind == "none" else f"no scrub result, the last scan: {scan.text}"
        return Check(WARN, name, f"{pool}: {why}", fix)
    when = age(host.clock() - scan.end) + " ago" if scan.end else "at an unreadable time"
    if scan.errors:
        return Check(FAIL, name, f"{pool}: the last scrub ({when}) found {scan.errors} error(s): {scan.text}",
                     f"zpool status -v {pool} names the damaged files; restore them from an archive")
    if scan.end is None or host.clock() - scan.end > SCRUB_MAX_AGE_DAYS * 86400:
        return Check(WARN, name, f"{pool}: the last scrub finished {when} (warn past {SCRUB_MAX_AGE_DAYS} days)",
                     fix)
    return Check(OK, name, f"{pool}: finished {when} with 0 errors")


def check_scrub_schedule(host: Host) -> Check:
    """Something scrubs the pool every month: Debian's zfsutils-linux cron file, or OpenZFS's
    systemd timer zfs-scrub-monthly@POOL.timer (or -weekly@)."""
    name, pool = "scrub schedule", host.pool
    cron = host.cron_dir / DEBIAN_SCRUB_CRON
    try:
        lines = [ln for ln in cron.read_text().splitlines() if "scrub" in ln and not ln.lstrip().startswith("#")]
    except FileNotFoundError:
        lines = []
    except OSError as exc:
        return Check(WARN, name, f"cannot tell: {cron}: {exc.strerror}", "run doctor as root")
    if lines:
        return Check(OK, name, f"{cron} scrubs every pool monthly ('{' '.join(lines[0].split()[:5])}')")
    timers = []
    if host.systemd:
        for every in ("monthly", "weekly"):
            unit = f"zfs-scrub-{every}@{pool}.timer"
            try:
                if unit_state(host, unit) == "enabled":
                    return Check(OK, name, f"{unit} enabled")
            except CommandError:
                pass
            timers.append(unit)
    return Check(WARN, name, f"nothing scrubs {pool} on a schedule (no {cron}"
                             f"{', no ' + ' or '.join(timers) + ' enabled' if timers else ''}): a disk's "
                             "silent damage stays unfound until it is read",
                 f"apt-get install zfsutils-linux (its {cron} scrubs monthly), or "
                 f"systemctl enable --now zfs-scrub-monthly@{pool}.timer")


def check_zed(host: Host) -> Check:
    """ZFS's event daemon runs and hands pool events to the tool (make install-zedlet), so a
    faulted mirror leg reaches the user through NOTIFY_URLS instead of running degraded unseen."""
    name, zedlet = "zed notifications", host.zed_dir / zed.ZEDLET
    if not host.zed_dir.is_dir():
        return Check(WARN, name, f"no {host.zed_dir}: nothing tells you when a disk fails (zfs-fuse has no zed)",
                     "apt-get install zfs-zed, then make install-zedlet")
    if not zedlet.is_file():
        return Check(WARN, name, f"zed does not hand pool events to the tool (no {zedlet}): a degraded mirror "
                                 "is seen only by doctor and status", "make install-zedlet")
    if not host.settings.notify_urls:
        return Check(WARN, name, f"{zedlet} is installed but NOTIFY_URLS is empty: a failing disk tells no one",
                     "set NOTIFY_URLS in the .env (an Apprise URL: ntfy, email, ...)")
    if host.systemd:
        try:
            state = host.query(["systemctl", "is-active", "zfs-zed"], ok_codes=(0, 3)).stdout.strip()
        except CommandError as exc:
            return Check(WARN, name, f"cannot tell whether zed runs: {exc.reason}", "systemctl status zfs-zed")
        if state != "active":
            return Check(FAIL, name, f"zfs-zed is {state or 'not running'}: no pool event reaches {zedlet}",
                         "systemctl enable --now zfs-zed")
    return Check(OK, name, f"zed hands pool events to {zedlet}, which notifies NOTIFY_URLS")


def check_datasets(host: Host) -> Check:
    s, name = host.settings, "service datasets"
    try:
        r = host.query(props_argv(s.zfs_parent_dataset, ("mountpoint", "mounted")), ok_codes=(0, 1), timeout=60)
    except CommandError as exc:
        return cannot(name, exc, "that every service dataset is mounted")
    if r.returncode != 0:
        return Check(FAIL, name, f"{s.zfs_parent_dataset} does not exist ({r.stderr.strip() or 'zfs get failed'})",
                     "make setup-storage")
    props = parse_props(r.stdout)
    bad = []
    for service in s.services:
        ds, want = s.dataset(service), str(s.mountpoint(service))
        p = props.get(ds)
        if p is None:
            bad.append(f"{ds} does not exist")
        elif p.get("mounted") != "yes":
            bad.append(f"{ds} is not mounted")
        elif p.get("mountpoint") != want:
            bad.append(f"{ds} is mounted at {p.get('mountpoint')}, not {want}")
    if bad:
        return Check(FAIL, name, "; ".join(bad), "make setup-storage (creates and mounts them)")
    return Check(OK, name, f"{len(s.services)} mounted under {s.zfs_base_mountpoint}")


def pool_space(host: Host) -> tuple[int, int] | OrchestratorError:
    """(used, available) bytes of the pool's root dataset, once per doctor run (free space, history)."""
    def compute() -> tuple[int, int]:
        out = host.query(space_argv(host.pool), timeout=60).stdout
        found = parse_space(out)
        if found is None:
            raise OrchestratorError(f"zfs get used,available {host.pool} printed {out.strip()[:100]!r}")
        return found
    return host.once("pool space", compute)


def check_free_space(host: Host) -> Check:
    name, pool = "pool free space", host.pool
    space = pool_space(host)
    if isinstance(space, OrchestratorError):
        return cannot(name, space, f"the free space in {pool}")
    used, avail = space

    share = avail / (used + avail) if used + avail else 0.0
    detail = f"{human_size(avail)} free of {human_size(used + avail)} ({share:.0%}) in {pool}"
    fix = (f"free space in {pool} (old snapshots: make list-snapshots-all), or grow it; "
           f"warn below {FREE_WARN:.0%} free, fail below {FREE_FAIL:.0%}")
    if share < FREE_FAIL:
        return Check(FAIL, name, detail, fix)
    if share < FREE_WARN:
        return Check(WARN, name, detail, fix)
    return Check(OK, name, detail + f" (warn below {FREE_WARN:.0%})")


def unit_state(host: Host, unit: str) -> str:
    """`systemctl is-enabled`: enabled, disabled, masked, static, ... or not-found."""
    r = host.query(["systemctl", "is-enabled", unit], ok_codes=(0, 1, 4))
    words = r.stdout.split()
    return words[0] if words else "not-found"


def check_zfs_import(host: Host) -> Check:
    """Spec 004 (ZFS, 'Fix Boot-Time Import Failure'): in a VM the cache-file import races the
    disks; the design disables zfs-import-cache and enables the scanning zfs-import-scan."""
    name = "zfs import at boot"
    fix = "systemctl disable zfs-import-cache.service && systemctl enable zfs-import-scan.service"
    if not host.systemd:
        return Check(WARN, name, "cannot tell: systemd is not running here (no /run/systemd/system)",
                     f"on the VM: {fix}")
    try:
        scan, cache = unit_state(host, "zfs-import-scan.service"), unit_state(host, "zfs-import-cache.service")
    except CommandError as exc:
        return cannot(name, exc, "which ZFS import unit is enabled")
    if scan == "not-found" and cache == "not-found":
        return Check(WARN, name, "no zfs-import-scan/-cache unit (zfs-fuse imports its pools itself; "
                     "OpenZFS needs one)", "apt-get install zfsutils-linux, then " + fix)
    if cache == "enabled":
        return Check(WARN, name, f"zfs-import-cache is enabled (scan: {scan}): the cache import can race the "
                     "VM's disks at boot; spec 004 uses the scan import", fix)
    if scan != "enabled":
        return Check(FAIL, name, f"neither import unit is enabled (scan: {scan}, cache: {cache}): the pool is not "
                     "imported at boot", "systemctl enable zfs-import-scan.service")
    return Check(OK, name, "zfs-import-scan enabled, zfs-import-cache not (spec 004)")


# --- ssh ------------------------------------------------------------------------------------

SSHD_DEFAULTS = {"port": ["22"], "permitrootlogin": ["prohibit-password"], "passwordauthentication": ["yes"],
                 "kbdinteractiveauthentication": ["yes"], "pubkeyauthentication": ["yes"]}


def parse_sshd_config(path: Path, seen: set | None = None) -> dict[str, list[str]]:
    """sshd_config as sshd reads it, for the keys doctor needs: the first value of a keyword wins
    (Port may repeat), `Include` is followed (relative to /etc/ssh), `Match` blocks are not
    applied (they are conditional)."""
    seen = set() if seen is None else seen
    out: dict[str, list[str]] = {}
    if path in seen:
        return out
    seen.add(path)
    in_match = False
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = re.split(r"\s*=\s*|\s+", line, maxsplit=1)
        key, value = parts[0].lower(), (parts[1].strip() if len(parts) > 1 else "")
        if key == "match":
            in_match = True
        if in_match:
            continue
        if key == "include":
            for pattern in shlex.split(value):
                full = pattern if pattern.startswith("/") else str(path.parent / pattern)
                for inc in sorted(glob.glob(full)):
                    for k, v in parse_sshd_config(Path(inc), seen).items():
                        if k == "port" and "port" in out:
                            out["port"] += v
                        else:
                            out.setdefault(k, v)
            continue
        if key == "port" and "port" in out:
            out["port"].append(value)
        elif key not in out:
            out[key] = [value.lower() if key != "port" else value]
    return out


def sshd_settings(host: Host) -> tuple[dict[str, list[str]], str] | OrchestratorError:
    """(effective settings, where they came from): `sshd -T` when it runs, else the config file."""
    def compute():
        first: CommandError | None = None
        try:
            out = host.query(["sshd", "-T"]).stdout
        except CommandError as exc:
            first, out = exc, ""
        found: dict[str, list[str]] = {}
        for line in out.splitlines():
            key, _, value = line.strip().partition(" ")
            found.setdefault(key.lower(), []).append(value.strip().lower())
        if found:
            return found, "sshd -T"
        path = host.sshd_config
        if not path.exists():
            if first is not None and missing(first):
                raise first
            raise OrchestratorError(f"sshd -T failed ({why(first) if first else 'no output'}) and {path} "
                                    "does not exist")
        return {**SSHD_DEFAULTS, **parse_sshd_config(path)}, str(path)
    return host.once("sshd", compute)


def _sshd(host: Host, name: str) -> tuple[dict, str] | Check:
    got = sshd_settings(host)
    if isinstance(got, OrchestratorError):
        return cannot(name, got, "the ssh server's settings")
    return got


def check_ssh_port(host: Host) -> Check:
    name = "ssh port"
    got = _sshd(host, name)
    if isinstance(got, Check):
        return got
    conf, source = got
    ports = [int(p) for p in conf.get("port", ["22"]) if p.isdigit()]
    low = [p for p in ports if p <= 1024]
    if low:
        return Check(WARN, name, f"port {', '.join(map(str, ports))} ({source}): spec 004 moves ssh above 1024 "
                     "to keep it out of the bots' way", f"set `Port 2222` (any free port above 1024) in "
                     f"{host.sshd_config}, allow it in the firewall first, then systemctl restart ssh")
    return Check(OK, name, f"port {', '.join(map(str, ports))} ({source})")


def check_ssh_root(host: Host) -> Check:
    name = "ssh root login"
    got = _sshd(host, name)
    if isinstance(got, Check):
        return got
    conf, source = got
    value = conf.get("permitrootlogin", ["prohibit-password"])[0]
    fix = f"set `PermitRootLogin no` in {host.sshd_config}, then systemctl restart ssh"
    if value == "no":
        return Check(OK, name, f"PermitRootLogin no ({source})")
    if value == "yes":
        return Check(FAIL, name, f"PermitRootLogin yes ({source}): root can log in, with a password too", fix)
    return Check(WARN, name, f"PermitRootLogin {value} ({source}): root can log in with a key; spec 004 says no "
                 "(log in as ADMIN_USER and sudo)", fix)


def check_ssh_password(host: Host) -> Check:
    name = "ssh password login"
    got = _sshd(host, name)
    if isinstance(got, Check):
        return got
    conf, source = got
    password = conf.get("passwordauthentication", ["yes"])[0]
    kbd = conf.get("kbdinteractiveauthentication", conf.get("challengeresponseauthentication", ["yes"]))[0]
    pubkey = conf.get("pubkeyauthentication", ["yes"])[0]
    fix = f"set `PasswordAuthentication no` in {host.sshd_config} (after your key works), then systemctl restart ssh"
    if password != "no":
        return Check(FAIL, name, f"PasswordAuthentication {password} ({source}): passwords can be guessed over ssh",
                     fix)
    if pubkey == "no":
        return Check(FAIL, name, f"PubkeyAuthentication no ({source}): no key login either",
                     f"set `PubkeyAuthentication yes` in {host.sshd_config}")
    if kbd != "no":
        return Check(WARN, name, f"PasswordAuthentication no, but KbdInteractiveAuthentication {kbd} ({source}): "
                     "PAM may still ask for a password", f"set `KbdInteractiveAuthentication no` in {host.sshd_config}")
    return Check(OK, name, f"keys only: PasswordAuthentication no, KbdInteractiveAuthentication no ({source})")


# --- firewall -------------------------------------------------------------------------------


def nft_input_denies(ruleset: str) -> bool:
    """Whether some base chain on the input hook drops by default: `policy drop`, or a last rule
    that drops or rejects whatever reaches it."""
    for chain in re.findall(r"chain\s+\S+\s*\{(.*?)\n\s*\}", ruleset, re.S):
        if not re.search(r"type\s+filter\s+hook\s+input\b", chain):
            continue
        if re.search(r"policy\s+drop\s*;", chain):
            return True
        rules = [ln.strip() for ln in chain.strip().splitlines() if ln.strip() and not ln.strip().startswith("type")]
        if rules and re.fullmatch(r"(counter( packets \d+ bytes \d+)? )?(drop|reject( with .*)?)", rules[-1]):
            return True
    return False


def iptables_input_denies(rules: str) -> bool:
    lines = [ln.strip() for ln in rules.splitlines() if ln.strip()]
    if any(re.fullmatch(r"-P INPUT (DROP|REJECT)", ln) for ln in lines):
        return True
    appended = [ln for ln in lines if ln.startswith("-A INPUT")]
    return bool(appended) and re.fullmatch(r"-A INPUT -j (DROP|REJECT)( .*)?", appended[-1]) is not None


def check_firewall(host: Host) -> Check:
    """Spec 004: ufw, default deny incoming, only the ssh port allowed. ufw when it is installed;
    otherwise the kernel's ruleset through nft, or iptables."""
    name = "firewall"
    got = sshd_settings(host)
    port = got[0].get("port", ["2222"])[0] if isinstance(got, tuple) else "2222"
    fix = (f"ufw default deny incoming && ufw default allow outgoing && ufw allow {port}/tcp && ufw enable "
           "(the ssh port first, or you lock yourself out)")
    notes = []
    try:
        out = host.query(["ufw", "status", "verbose"]).stdout
        if re.search(r"^Status:\s*active", out, re.M):
            default = re.search(r"^Default:\s*(\w+)\s*\(incoming\)", out, re.M)
            if default and default.group(1) in ("deny", "reject"):
                return Check(OK, name, f"ufw active, default {default.group(1)} incoming")
            return Check(FAIL, name, f"ufw active but default {default.group(1) if default else '?'} incoming", fix)
        notes.append("ufw is inactive")
    except CommandError as exc:
        if not missing(exc):
            return cannot(name, exc, "the firewall")
        notes.append("no ufw")
    for argv, judge, tool in ((["nft", "list", "ruleset"], nft_input_denies, "nft"),
                              (["iptables", "-S", "INPUT"], iptables_input_denies, "iptables")):
        try:
            out = host.query(argv).stdout
        except CommandError as exc:
            if missing(exc):
                notes.append(f"no {tool}")
                continue
            return cannot(name, exc, "the firewall")
        if judge(out):
            return Check(OK, name, f"{'; '.join(notes)}; {tool}: incoming dropped by default")
        return Check(FAIL, name, f"{'; '.join(notes)}; {tool}: incoming accepted by default (no input policy drop)",
                     fix)
    if "ufw is inactive" in notes:
        return Check(FAIL, name, f"{', '.join(notes)}: nothing filters incoming traffic", fix)
    return Check(WARN, name, f"cannot tell: {', '.join(notes)} (neither ufw nor nft nor iptables is installed)",
                 "apt-get install ufw, then " + fix)


# --- secrets --------------------------------------------------------------------------------


def check_env_mode(host: Host) -> Check:
    path, name = host.settings.env_file, ".env mode"
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError as exc:
        return Check(WARN, name, f"cannot tell: {path}: {exc.strerror}", "run doctor as root")
    if mode & 0o077:
        holds = "holds secrets" if host.settings.secrets or host.settings.borg_passcommand else "holds the settings"
        return Check(FAIL, name, f"{path} is mode {mode:04o}: it {holds} and others can read or change it",
                     f"chmod 600 {path}")
    return Check(OK, name, f"{path} is mode {mode:04o}")


def check_history_protection(host: Host) -> Check:
    """docs/security.md: the history survives this machine only when the backup server holds it
    and this machine's key can only append (a compromised VM then cannot delete it)."""
    s, name = host.settings, "history off this machine"
    if not s.borg_repo_base_path.startswith("ssh://"):
        return Check(WARN, name, f"the repositories are on this machine ({s.borg_repo_base_path}): a dead disk or a "
                                 "compromised VM takes the history with the data",
                     "BORG_REPO_BASE_PATH=ssh://... on a backup server (docs/security.md)")
    if not s.borg_append_only:
        return Check(WARN, name, "this machine's key can delete every archive (BORG_APPEND_ONLY=0): a compromised "
                                 "VM can take the history with it",
                     "make authorized-keys, then BORG_APPEND_ONLY=1 and make prune-trusted on a trusted machine "
                     "(docs/security.md)")
    return Check(OK, name, "on the backup server, and this machine's key only appends (prune runs elsewhere)")


def check_borg_keys(host: Host) -> Check:
    s, name = host.settings, "borg keys exported"
    keys = s.borg_keys_dir
    absent, open_ = [], []
    for service in s.services:
        path = keys / f"{service}.key"
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except FileNotFoundError:
            absent.append(service)
            continue
        except OSError as exc:
            return Check(WARN, name, f"cannot tell: {path}: {exc.strerror}", "run doctor as root")
        if mode & 0o077:
            open_.append(f"{path} ({mode:04o})")
    if open_:
        return Check(FAIL, name, f"readable by others: {', '.join(open_)}",
                     f"chmod 600 {' '.join(p.split(' ')[0] for p in open_)}")
    if absent:
        return Check(WARN, name, f"no exported key in {keys} for {', '.join(absent)}: a damaged repository "
                     "cannot be opened without it", "make init-repos exports the key of a repository it creates; "
                     f"for an existing one: borg key export <repo> {keys}/<service>.key && chmod 600 it; "
                     "keep a copy off this machine")
    return Check(OK, name, f"{len(s.services)} in {keys}, mode 0600 (keep a copy off this machine)")


# --- schedule -------------------------------------------------------------------------------


def _ours(path: Path, marker: str) -> bool | None:
    """True: ours; False: someone else's file; None: no file."""
    try:
        return marker in path.read_text()
    except FileNotFoundError:
        return None


def check_cron(host: Host) -> Check:
    name, path = "nightly backup (cron)", host.cron_dir / schedule.CRON_NAME
    try:
        ours = _ours(path, schedule.MARKER)
    except OSError as exc:
        return Check(WARN, name, f"cannot tell: {path}: {exc.strerror}", "run doctor as root")
    if ours is None:
        return Check(FAIL, name, f"{path} does not exist: nothing runs the backup at night", "make install-cron")
    if not ours:
        return Check(WARN, name, f"{path} exists but was not written by this tool",
                     f"look at {path}; make install-cron")
    lines = [ln for ln in path.read_text().splitlines() if " backup" in ln and not ln.startswith("#")]
    if not lines:
        return Check(FAIL, name, f"{path} runs no backup", "make install-cron")
    when = " ".join(lines[0].split()[:5])
    env = str(host.settings.env_file.resolve())
    if env not in lines[0] and shlex.quote(env) not in lines[0]:
        return Check(WARN, name, f"{path} backs up at '{when}' but with another .env than {env}",
                     f"make install-cron ENV_FILE={env}")
    return Check(OK, name, f"{path}: backup at '{when}'")


def check_boot_unit(host: Host) -> Check:
    name, path = "boot unit", host.unit_dir / autostart.UNIT_NAME
    try:
        ours = _ours(path, autostart.UNIT_MARKER)
    except OSError as exc:
        return Check(WARN, name, f"cannot tell: {path}: {exc.strerror}", "run doctor as root")
    if ours is None:
        return Check(WARN, name, f"{path} does not exist: after a reboot only containers with a restart policy "
                     "come back, in no order and without the mount check", "make install-autostart")
    if not ours:
        return Check(WARN, name, f"{path} exists but was not written by this tool", f"look at {path}")
    if not host.systemd:
        return Check(WARN, name, f"{path} installed; cannot tell whether it is enabled: systemd is not running here",
                     f"on the VM: systemctl is-enabled {autostart.UNIT_NAME}")
    try:
        state = unit_state(host, autostart.UNIT_NAME)
    except CommandError as exc:
        return cannot(name, exc, f"whether {autostart.UNIT_NAME} is enabled")
    if state != "enabled":
        return Check(WARN, name, f"{path} installed but {state}", f"systemctl enable {autostart.UNIT_NAME}")
    return Check(OK, name, f"{autostart.UNIT_NAME} installed and enabled")


# --- backups --------------------------------------------------------------------------------


def check_last_backup(host: Host) -> Check:
    s, name = host.settings, "last backup"

    last = StateStore(s.state_dir).last_success()
    now, limit = host.clock(), s.stale_after * 3600
    stale = []
    for service in s.services:
        when = last.get(service)
        if when is None:
            stale.append(f"{service} never")
        elif now - when > limit:
            stale.append(f"{service} {age(now - when)} ago")
    if stale:
        return Check(FAIL, name, f"no good backup within STALE_AFTER={s.stale_after}h: {', '.join(stale)}",
                     "make backup-all, and read its summary (or the cron log) for why the last one failed")
    oldest = max(now - last[svc] for svc in s.services)
    return Check(OK, name, f"every service within {s.stale_after}h (oldest {age(oldest)} ago)")


def check_coverage(host: Host) -> Check:
    """Every byte a stack keeps is backed up, or its compose file says why not (stacks.coverage)."""
    from management.tools.compose import DockerComposeManager

    name = "data coverage"
    docker = DockerComposeManager(host.settings, host.runner, None, echo=lambda _m: None)
    try:
        by_stack = docker.coverage()
    except OrchestratorError as exc:
        return cannot(name, exc, "where the stacks keep their data")
    bad = {stack: [c for c in covs if c.problem] for stack, covs in by_stack.items()}
    bad = {stack: covs for stack, covs in bad.items() if covs}
    if bad:
        shown = "; ".join(f"{stack}: {', '.join(f'{c.source} -> {c.target} ({c.where})' for c in covs)}"
                          for stack, covs in sorted(bad.items()))
        return Check(FAIL, name, f"data no backup reaches: {shown}",
                     "make check-stacks shows each mount with its fix (make adopt, ':ro', or a declared reason)")
    mounts = sum(len(c) for c in by_stack.values())
    return Check(OK, name, f"every mount of {len(by_stack)} stack(s) is backed up or declared ({mounts} mounts)")


CHECKS: tuple[Callable[[Host], Check], ...] = (
    check_userns, check_subids, check_log_rotation, check_compose,
    check_pool, check_pool_redundancy, check_pool_errors, check_scrub, check_scrub_schedule, check_zed,
    check_datasets, check_free_space, check_zfs_import,
    check_ssh_port, check_ssh_root, check_ssh_password, check_firewall,
    check_env_mode, check_borg_keys, check_history_protection,
    check_cron, check_boot_unit, check_coverage, check_last_backup,
)


def all_checks() -> tuple[Callable[[Host], Check], ...]:
    """CHECKS, then the local history's (management.host.doctor_history: they build on Check and
    Host here, so they are imported when doctor runs, not when this module loads)."""
    from management.host import doctor_history

    return CHECKS + doctor_history.CHECKS


def run_checks(host: Host, checks=None) -> list[Check]:
    """Every check (all_checks() unless `checks` are given), in order. A check that breaks
    unexpectedly is a warn with the reason: one check never keeps the others from running."""
    checks = all_checks() if checks is None else checks
    results = []
    for check in checks:
        try:
            results.append(check(host))
        except (OrchestratorError, OSError, ValueError, KeyError) as exc:
            label = check.__name__.removeprefix("check_").replace("_", " ")
            results.append(Check(WARN, label, f"cannot tell: the check broke: {type(exc).__name__}: {exc}",
                                 "a bug in doctor: please report this line"))
    return results


def render(checks: list[Check], style: Callable[[str, str], str] = lambda text, status: text) -> list[str]:
    """One line per check (status, name, detail), its fix below when it is not ok, then the
    counts. `style(text, status)` colours the status column (click.style on a terminal)."""
    width = max((len(c.name) for c in checks), default=0)
    lines = []
    for c in checks:
        lines.append(style(f"{c.status:<4}", c.status) + f"  {c.name:<{width}}  {c.detail}")
        if c.fix and c.status != OK:
            lines.append(f"{'':<4}  {'':<{width}}  fix: {c.fix}")
    counts = {s: sum(c.status == s for c in checks) for s in (OK, WARN, FAIL)}
    lines.append(f"doctor: {counts[OK]} ok, {counts[WARN]} warn, {counts[FAIL]} fail")
    return lines
