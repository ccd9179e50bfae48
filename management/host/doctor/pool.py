"""doctor's ZFS checks: the pool imported and ONLINE, its redundancy, disk errors, scrubs and
their schedule, the event daemon's zedlet, the service datasets, free space, import at boot."""

from __future__ import annotations

from management.errors import CommandError, OrchestratorError
from management.host import zed
from management.host.doctor.check import FAIL, OK, WARN, Check, Host, cannot, unit_state
from management.text import age, human_size
from management.tools.zfs import (
    PoolStatus,
    parse_pool_status,
    parse_props,
    parse_space,
    pool_status_argv,
    props_argv,
    space_argv,
)

FREE_WARN = 0.20  # ZFS slows down past 80 % full; the kept snapshots grow with every change
FREE_FAIL = 0.05  # a night's snapshot and borg's cache may not fit any more
SCRUB_MAX_AGE_DAYS = 35  # Debian's zfsutils-linux scrubs monthly (second Sunday), plus a few days
DEBIAN_SCRUB_CRON = "zfsutils-linux"  # /etc/cron.d/zfsutils-linux: monthly scrub and trim
NO_REDUNDANCY = "no redundancy: ZFS can detect but not repair corruption; see make attach-mirror"


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
