"""Notifications through Apprise (the library borgmatic, diun and What's Up Docker use): one
message per run of backup, update or drill to every URL in NOTIFY_URLS (ntfy, Gotify,
Telegram, email, Discord, json://, ...), on failure only (NOTIFY_ON=failure, the default) or
always.

The message names each service with what happened (ok / warning / failed / unchanged /
updated / rolled back / compared / verified) and why, masked by the runner's secrets. The URLs
carry tokens: they are secrets, never printed; a notifier that fails is a warning that names
how many URLs failed, never which, and never fails the run.
"""

from __future__ import annotations

import logging
import socket
import warnings
from collections.abc import Callable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from management.results import FAILED, ROLLED_BACK, WARNING
from management.state import MassChange

FAILURE, ALWAYS = "failure", "always"

@dataclass(frozen=True)
class Message:
    title: str
    body: str
    ok: bool
    warning: bool = False  # ok, with something to look at (a borg warning, a note)


def wanted(on: str, message: Message) -> bool:
    return on == ALWAYS or not message.ok


def _host() -> str:
    return socket.gethostname()


def backup_message(report) -> Message:
    """From a backup RunReport: one line per dataset, then the stack problems, errors, notes."""
    lines = []
    for d in report.datasets:
        why = f": {d.message}" if d.message else ""
        archive = f" ({d.archive})" if d.archive and d.result != FAILED else ""
        lines.append(f"{d.service}: {d.result}{archive}{why}")
    lines += [f"not backed up: {line}" for stack in sorted(report.uncovered) for line in report.uncovered[stack]]
    lines += [f"prune held: {svc}: {why}; make release-prune SERVICE_NAME={svc}"
              for svc, why in sorted(report.held.items())]
    for svc, before in sorted(report.mass_changes.items()):
        lines += mass_change_lines(svc, before)
    lines += [f"stack problem: {s}" for s in report.stack_failures]
    lines += [f"error: {e}" for e in report.errors]
    lines += [f"note: {n}" for n in report.notes]
    if report.interrupted:
        lines.append(f"interrupted: {report.interrupted}")
    if report.downtime is not None:
        lines.append(f"downtime: {report.downtime:.1f}s")
    failed = [d.service for d in report.datasets if d.result == FAILED] + \
        [f"{s}: data not backed up" for s in sorted(report.uncovered)] + \
        [f"{s}: mass change" for s in sorted(report.mass_changes)] + \
        [f"{s}: prune held" for s in sorted(report.held)]
    verdict = "OK" if report.ok else "FAILED" + (f" ({', '.join(failed)})" if failed else "")
    warned = any(d.result == WARNING for d in report.datasets) or bool(report.notes)
    return Message(f"backup on {_host()}: {verdict}", "\n".join(lines), report.ok, warned)


def mass_change_lines(service: str, before: MassChange) -> list[str]:
    """What the mass-change guard found, and the commands that bring the version before back."""
    lines = [f"mass change: {service}: {before.text.removeprefix('mass change: ')}; "
             "every archive and the snapshot before are kept"]
    if before.archive:
        lines.append(f"  the version before, whole: make restore SERVICE_NAME={service} "
                     f"ARCHIVE_NAME={before.archive}")
    if before.snapshot:
        lines.append(f"  one file of it: make restore-path SERVICE_NAME={service} FILE=<path> "
                     f"WHEN={before.snapshot}")
    lines.append(f"  if the change was meant: make release-prune SERVICE_NAME={service}")
    return lines


def update_message(results: Sequence, ok: bool) -> Message:
    lines = [f"{r.stack}: {r.result}" + (f": {r.message}" if r.message else "") for r in results]
    bad = [r.stack for r in results if r.result in (ROLLED_BACK, FAILED)]
    verdict = "OK" if ok else "FAILED" + (f" ({', '.join(bad)})" if bad else "")
    return Message(f"update on {_host()}: {verdict}", "\n".join(lines) or "nothing to update", ok)


def drill_message(report) -> Message:
    lines = [r.line() for r in report.results]
    bad = [r.service for r in report.results if not r.ok]
    verdict = "OK" if report.ok else "FAILED" + (f" ({', '.join(bad)})" if bad else "")
    return Message(f"restore drill on {_host()}: {verdict}", "\n".join(lines), report.ok)


def check_message(report) -> Message:
    lines = [r.line().splitlines()[0] + (f": {r.message.splitlines()[-1]}" if r.message else "")
             for r in report.results]
    bad = [r.service for r in report.results if not r.ok]
    verdict = "OK" if report.ok else "FAILED" + (f" ({', '.join(bad)})" if bad else "")
    return Message(f"repository check on {_host()}: {verdict}", "\n".join(lines), report.ok)


def trusted_prune_message(report) -> Message:
    """prune-trusted on the trusted machine: held and failed services, each with why."""
    held = sorted(report.held.items())
    failed = [d for d in report.datasets if d.result == FAILED]
    verdict = "OK" if not held and not failed else f"{len(held)} held, {len(failed)} failed"
    lines = [f"prune held: {svc}: {why}; every archive kept until make release-prune SERVICE_NAME={svc} here"
             for svc, why in held]
    lines += [f"{d.service}: failed: {d.message}" for d in failed]
    return Message(f"prune-trusted on {_host()}: {verdict}", "\n".join(lines) or "every repository pruned",
                   not held and not failed)


BAD_VDEV_STATES = ("FAULTED", "DEGRADED", "REMOVED", "UNAVAIL", "OFFLINE")
ZFS_ERRORS = {"checksum": "checksum errors", "io": "read/write errors", "data": "data errors (files damaged)"}
# every event subclass zfs_event_message can say something about: the zedlet hands only these to the tool
ZED_SUBCLASSES = ("statechange", *ZFS_ERRORS, "scrub_finish", "resilver_finish")


def zfs_event_message(env: Mapping[str, str]) -> Message | None:
    """What a ZFS event (zed's ZEVENT_* variables) says to the user, or None when it is routine.
    A disk leaving ONLINE, an I/O, checksum or data error: a failure message; a scrub or resilver
    that finished: an ok one (sent with NOTIFY_ON=always)."""
    cls = env.get("ZEVENT_CLASS", "")
    pool = env.get("ZEVENT_POOL") or "?"
    disk = env.get("ZEVENT_VDEV_PATH") or env.get("ZEVENT_VDEV_GUID") or "a disk"
    state = env.get("ZEVENT_VDEV_STATE_STR", "")
    kind = cls.rsplit(".", 1)[-1]
    # OpenZFS posts a leaf disk's state change as a resource event (resource.fs.zfs.statechange),
    # a finished scrub or resilver as a sysevent, errors as ereports
    if cls.startswith("resource.fs.zfs.") and kind == "statechange" and state in BAD_VDEV_STATES:
        return Message(f"ZFS pool {pool}: {disk} is {state}",
                       f"pool {pool}: {disk} went {state}. The pool runs on what is left; replace or reattach "
                       f"the disk (zpool status {pool}; make doctor).", ok=False)
    if cls.startswith("ereport.fs.zfs.") and kind in ZFS_ERRORS:
        return Message(f"ZFS pool {pool}: {ZFS_ERRORS[kind]} on {disk}",
                       f"pool {pool}: {ZFS_ERRORS[kind]} on {disk}. A mirror repairs them from the other leg; "
                       f"a disk that keeps them is failing (zpool status -v {pool}; make doctor).", ok=False)
    if cls.startswith("sysevent.fs.zfs.") and kind in ("scrub_finish", "resilver_finish"):
        what = "scrub" if kind == "scrub_finish" else "resilver"
        return Message(f"ZFS pool {pool}: {what} finished",
                       f"pool {pool}: the {what} finished (zpool status {pool} shows what it found).", ok=True)
    return None


@contextmanager
def _quiet_apprise():
    """Apprise logs each failure with its URL (a token): keep its logger out of ours."""
    logger = logging.getLogger("apprise")
    level, propagate = logger.level, logger.propagate
    logger.setLevel(logging.CRITICAL + 1)
    logger.propagate = False
    try:
        yield
    finally:
        logger.setLevel(level)
        logger.propagate = propagate


def send(urls: Sequence[str], message: Message, mask: Callable[[str], str]) -> str | None:
    """Send to every URL. Returns a warning (without any URL) or None."""
    if not urls:
        return None
    try:
        with warnings.catch_warnings():  # apprise imports the deprecated imghdr on Python 3.11
            warnings.simplefilter("ignore", DeprecationWarning)
            import apprise
    except ImportError:
        return "notification not sent: the apprise package is missing (run `make install`)"
    kind = (apprise.NotifyType.FAILURE if not message.ok else
            apprise.NotifyType.WARNING if message.warning else apprise.NotifyType.SUCCESS)
    failed = 0
    with _quiet_apprise(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        for url in urls:  # one Apprise object per URL: a count of failures, never which token
            sender = apprise.Apprise()
            if not sender.add(url):
                failed += 1
                continue
            try:
                if not sender.notify(title=mask(message.title), body=mask(message.body), notify_type=kind):
                    failed += 1
            except Exception:  # noqa: BLE001 - a notifier must never fail the run
                failed += 1
    if failed:
        return f"notification failed for {failed} of {len(urls)} NOTIFY_URLS"
    return None


def notify(settings, message: Message, mask: Callable[[str], str], echo: Callable[[str], None]) -> None:
    """Send `message` when NOTIFY_ON wants it; a failure is echoed as a warning."""
    urls = list(getattr(settings, "notify_urls", ()) or ())
    if not urls or not wanted(settings.notify_on, message):
        return
    warning = send(urls, message, mask)
    if warning:
        echo(f"warning: {warning}")
