"""The host around the tool: doctor, cron, the ZFS event daemon's zedlet and the boot unit."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from management.cli.app import ENTRY_POINT, EXIT_FAILED, App, cli, pass_app


@cli.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="The checks as a JSON list.")
@click.option("--cron-dir", default="/etc/cron.d", hidden=True, type=click.Path(file_okay=False))
@click.option("--unit-dir", default="/etc/systemd/system", hidden=True, type=click.Path(file_okay=False))
@click.option("--sshd-config", default="/etc/ssh/sshd_config", hidden=True, type=click.Path(dir_okay=False))
@click.option("--zed-dir", default="/etc/zfs/zed.d", hidden=True, type=click.Path(file_okay=False))
@pass_app
def doctor(app: App, as_json: bool, cron_dir: str, unit_dir: str, sshd_config: str, zed_dir: str) -> None:
    """Audit the host against the design, read-only: userns-remap and subordinate ids, docker
    log rotation, compose v2, the pool and every dataset, free space, the ZFS import at boot, ssh
    hardening, a default-deny firewall, the .env and borg key modes, the cron entry and boot
    unit, zed handing pool events to the tool, and the last backup's age. One line per check
    (ok / warn / fail), each with its fix. Exit 1 when any check fails; warnings alone exit 0."""
    import json as _json

    from management.host.doctor.check import FAIL, OK, WARN, Host
    from management.host.doctor.report import render, run_checks

    host = Host(app.settings, app.runner, cron_dir=Path(cron_dir), unit_dir=Path(unit_dir),
                sshd_config=Path(sshd_config), zed_dir=Path(zed_dir))
    checks = run_checks(host)
    if as_json:
        click.echo(app.mask(_json.dumps([c.to_dict() for c in checks], indent=2)))
    else:
        colour = {OK: "green", WARN: "yellow", FAIL: "red"}
        for line in render(checks, style=lambda text, status: click.style(text, fg=colour[status])):
            click.echo(app.mask(line))
    if any(c.status == FAIL for c in checks):
        sys.exit(EXIT_FAILED)


@cli.command("install-cron")
@click.option("--schedule", default="30 3 * * *", show_default=True, help="cron time fields.")
@click.option("--log-file", default="/var/log/orchestrator-backup.log", show_default=True, type=click.Path())
@click.option("--cron-dir", default="/etc/cron.d", hidden=True, type=click.Path(file_okay=False))
@click.option("--logrotate-dir", default="/etc/logrotate.d", hidden=True, type=click.Path(file_okay=False))
@pass_app
def install_cron(app: App, schedule: str, log_file: str, cron_dir: str, logrotate_dir: str) -> None:
    """Run `backup` every night from /etc/cron.d as root, logging to a rotated log file; the
    restore drill on DRILL_SCHEDULE (weekly by default; off: none), the repository check on
    CHECK_SCHEDULE (monthly by default; off: none); with UPDATE_SCHEDULE set in
    the .env, also `update --yes` on that schedule, and with SNAPSHOT_SCHEDULE set, history
    snapshots between nights (`snapshot-history`) (same lock, same log)."""
    from management.host.schedule import install_cron as install

    s = app.settings  # validate the .env the cron job will use now, not at 3am
    install(schedule, Path(sys.executable), ENTRY_POINT, app.env_file.resolve(), Path(log_file),
            Path(cron_dir), Path(logrotate_dir), update_schedule=s.update_schedule, drill_schedule=s.drill_schedule,
            drill_wait=s.borg_timeout, dry_run=app.dry_run, echo=click.echo, check_schedule=s.check_schedule,
            check_verify_data=bool(s.check_verify_data), snapshot_schedule=s.snapshot_schedule)


@cli.command("uninstall-cron")
@click.option("--cron-dir", default="/etc/cron.d", hidden=True, type=click.Path(file_okay=False))
@click.option("--logrotate-dir", default="/etc/logrotate.d", hidden=True, type=click.Path(file_okay=False))
def uninstall_cron(cron_dir: str, logrotate_dir: str) -> None:
    """Remove the nightly cron entry and its logrotate rule (only files this tool wrote)."""
    from management.host.schedule import uninstall

    removed = uninstall(Path(cron_dir), Path(logrotate_dir))
    click.echo("\n".join(f"removed {p}" for p in removed) or "nothing to remove")


@cli.command("install-zedlet")
@click.option("--zed-dir", default="/etc/zfs/zed.d", hidden=True, type=click.Path(file_okay=False))
@pass_app
def install_zedlet(app: App, zed_dir: str) -> None:
    """Have ZFS's event daemon (zed) tell you about the pool's disks through NOTIFY_URLS: a mirror
    leg faulted or removed, I/O or checksum errors (and, with NOTIFY_ON=always, a finished scrub).
    Installs the zedlet all-orchestrator.sh; restart zed (systemctl restart zfs-zed) after."""
    from management.host.zed import install, render_zedlet
    from management.monitoring.notify import ZED_SUBCLASSES

    _ = app.settings  # validate the .env zed will use now, not when a disk fails
    text = render_zedlet(Path(sys.executable), ENTRY_POINT, app.env_file.resolve(), ZED_SUBCLASSES)
    if app.dry_run:
        click.echo(text, nl=False)
        return
    path = install(Path(zed_dir), text)
    click.echo(f"wrote {path}; zed runs it for every pool event (systemctl restart zfs-zed to load it)" if path
               else "install-zedlet: nothing to change")


@cli.command("uninstall-zedlet")
@click.option("--zed-dir", default="/etc/zfs/zed.d", hidden=True, type=click.Path(file_okay=False))
def uninstall_zedlet(zed_dir: str) -> None:
    """Remove the zedlet (only the file this tool wrote)."""
    from management.host.zed import uninstall

    removed = uninstall(Path(zed_dir))
    click.echo("\n".join(f"removed {p}" for p in removed) or "nothing to remove")


@cli.command("zfs-event", hidden=True)
@pass_app
def zfs_event(app: App) -> None:
    """Run by the zedlet for every ZFS event (ZEVENT_* in the environment): a disk leaving
    ONLINE or reporting errors is sent to NOTIFY_URLS; routine events are ignored."""
    from management.monitoring.notify import notify, zfs_event_message

    message = zfs_event_message(os.environ)
    if message is None:
        return
    click.echo(message.title)
    notify(app.settings, message, app.runner.mask, click.echo)


@cli.command("install-autostart")
@click.option("--unit-dir", default="/etc/systemd/system", hidden=True, type=click.Path(file_okay=False))
@pass_app
def install_autostart(app: App, unit_dir: str) -> None:
    """Install and enable a systemd unit that runs `docker-up` at boot (hub first).

    The unit is a oneshot ordered after docker and the ZFS mounts; `systemctl status
    orchestrator-stacks` shows `active (exited)` once every stack was started. It is checked
    with `systemd-analyze verify` before it is written. Stopping it runs `docker-stop`. A
    drop-in also orders docker.service after the ZFS mounts and (STORAGE_WAIT > 0) has it run
    `wait-storage` first, so containers that docker restarts itself never start on an empty
    mountpoint, even when the pool's disk appears late.
    """
    from management.host.autostart import install_autostart as install

    s = app.settings  # validate the .env the unit will use now, not at boot
    install(app.runner, Path(sys.executable), ENTRY_POINT, app.env_file.resolve(), s.storage_wait,
            Path(unit_dir), app.dry_run, click.echo)


@cli.command("uninstall-autostart")
@click.option("--unit-dir", default="/etc/systemd/system", hidden=True, type=click.Path(file_okay=False))
@pass_app
def uninstall_autostart(app: App, unit_dir: str) -> None:
    """Disable and remove the boot unit (only a unit this tool wrote). Running stacks keep running."""
    from management.host.autostart import uninstall_autostart as uninstall

    removed = uninstall(app.runner, Path(unit_dir))
    click.echo("\n".join(f"removed {p}" for p in removed) or "nothing to remove")
