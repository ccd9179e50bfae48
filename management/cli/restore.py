"""Getting data back: restore, restore-all, versions, restore-path, mount, umount."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from management.cli.app import EXIT_FAILED, App, cli, pass_app


@cli.command("restore")
@click.argument("service")
@click.argument("archive")
@click.option("--only", type=click.Choice(["data", "stack"]), help="Restore one half: the dataset or the stack folder.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@pass_app
def restore(app: App, service: str, archive: str, only: str | None, yes: bool) -> None:
    """Restore SERVICE from ARCHIVE: its data and its stack folder (compose files, .env, ...).

    Stops the stack, takes a safety snapshot of the dataset, swaps the data in, keeps the
    current stack folder aside as SERVICES_DIR/.SERVICE.before-restore-TIME, swaps the archived
    one in, and starts the stack. On any failure both are put back. The output says how to undo."""
    app.service(service)
    if app.dry_run:
        raise click.UsageError("restore has no dry run; use extract-archive into an empty directory to look first")
    if not yes:
        what = {"data": f"everything in {app.settings.mountpoint(service)}",
                "stack": f"the stack folder {app.settings.services_dir / service}"}.get(
            only or "", f"{app.settings.mountpoint(service)} and {app.settings.services_dir / service}")
        click.confirm(f"Replace {what} with {archive}? (a safety snapshot / the old folder is kept)", abort=True)
    from management.cycles.restore import RestoreOrchestrator

    RestoreOrchestrator(app.context()).restore(service, archive, only=only)


@cli.command("versions")
@click.argument("service")
@click.argument("file")
@click.option("--json", "as_json", is_flag=True, help="Print the timeline as JSON on stdout.")
@pass_app
def versions(app: App, service: str, file: str, as_json: bool) -> None:
    """Every version of FILE (a file or folder, relative to SERVICE's dataset) in one timeline,
    oldest first: the local snapshots (read where they are read-only) and the archives no local
    snapshot stands for (`borg list`, nothing extracted), identical neighbours collapsed into
    one line with a count, then the live one. Read-only; the service keeps running."""

    from management.cycles.timetravel import TimeTravel

    app.service(service)
    found = TimeTravel(app.context(to_stderr=as_json)).versions(service, file)
    if as_json:
        click.echo(json.dumps(found.to_dict(), indent=2))
        return
    for line in found.lines():
        click.echo(line)
    click.echo(f"  back: make restore-path SERVICE_NAME={service} FILE={file!r} [WHEN=<a date or a name above>]")


@cli.command("restore-path")
@click.argument("service")
@click.argument("file")
@click.option("--when", help="The newest version at or before this date or time (2026-12-01, 2026-12-01T14:00), "
                             "or a snapshot or archive name; default: the newest that differs from live.")
@click.option("--to", "to", type=click.Path(file_okay=False), help="Write the version into this folder (outside the "
              "dataset) instead of in place; nothing live is touched.")
@click.option("--stop", is_flag=True, help="Stop the stack around the swap (a database's files).")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@pass_app
def restore_path(app: App, service: str, file: str, when: str | None, to: str | None, stop: bool, yes: bool) -> None:
    """One file or folder of SERVICE back, with the service running: copied from a local
    snapshot when one holds the version (seconds), else only that path is extracted from the
    archive. In place: a safety snapshot first, the version staged beside the target and renamed
    into place; the undo command is printed. With --to: written there, nothing live touched."""
    from management.cycles.timetravel import TimeTravel

    app.service(service)
    if app.dry_run:
        raise click.UsageError("restore-path has no dry run: `make versions` shows what it would take")
    if to is None and not yes:
        click.confirm(f"Replace {app.settings.mountpoint(service) / file.lstrip('/')} with an earlier version? "
                      "(a safety snapshot is taken first)", abort=True)
    from management.lock import Interrupted

    travel = TimeTravel(app.context())
    try:
        done = travel.restore_path(service, file, when=when, to=Path(to) if to else None, stop=stop)
    except Interrupted as exc:
        if travel.last and travel.last.swapped:
            click.secho(f"restore-path: {exc} after {travel.last.destination} was put back; undo: "
                        f"{travel.last.undo() or '-'}", fg="red", err=True)
        else:
            click.secho(f"restore-path: {exc}; nothing live was changed, the staged copy was removed", fg="red",
                        err=True)
        sys.exit(EXIT_FAILED)
    for note in done.notes:
        click.echo(f"note: {note}")
    if done.undo():
        click.echo(f"undo: {done.undo()}")
    if done.not_started:  # the file is back, the service is not: not a success
        click.secho(f"restore-path: {done.destination} is back, but the stack {service} did not start again: "
                    f"{app.mask(done.not_started)}; `make docker-start SERVICE_NAME={service}` once that is fixed, "
                    "or the undo above", fg="red", err=True)
        sys.exit(EXIT_FAILED)


@cli.command("mount")
@click.argument("service")
@click.argument("archive", required=False)
@pass_app
def mount(app: App, service: str, archive: str | None) -> None:
    """`borg mount` SERVICE's repository (every archive a folder), or one ARCHIVE, read-only at
    MOUNT_DIR/SERVICE. borg holds the repository's lock while it is mounted: unmount before the
    night (`make umount`), or the night fails that service, naming the mount."""
    from management.cycles.timetravel import TimeTravel

    app.service(service)
    path = TimeTravel(app.context()).mount(service, archive)
    click.echo(f"mounted {app.settings.repo(service)}{'::' + archive if archive else ''} read-only at {path}")
    click.echo(f"unmount: make umount SERVICE_NAME={service}")


@cli.command("umount")
@click.argument("services", nargs=-1, metavar="[SERVICE]...")
@pass_app
def umount(app: App, services: tuple[str, ...]) -> None:
    """Unmount what `mount` mounted under MOUNT_DIR: the services named, or every one."""
    from management.cycles.timetravel import TimeTravel

    done = TimeTravel(app.context()).umount([app.service(s) for s in services])
    click.echo("\n".join(f"unmounted {app.settings.mount_dir / s}" for s in done) or "nothing mounted")


@cli.command("restore-all")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@pass_app
def restore_all(app: App, yes: bool) -> None:
    """Every service from its latest archive (data and stack folder), then every stack up, hub
    first: the last step of a recovery onto a new machine (docs/restore.md). One service's
    failure is reported; the others go on. Exit 1 if any failed."""
    if app.dry_run:
        raise click.UsageError("restore-all has no dry run; `make list-archives` shows what it would take")
    if not yes:
        click.confirm(f"Replace the data and stack folders of {', '.join(app.settings.services)} with their "
                      "latest archives? (safety snapshots / old folders are kept)", abort=True)
    started = time.monotonic()
    from management.cycles.restore import RestoreOrchestrator

    restored, failures = RestoreOrchestrator(app.context()).restore_all()
    click.echo(f"restore-all: {len(restored)} restored, {len(failures)} failed in {time.monotonic() - started:.0f}s")
    if failures:
        for failure in failures:
            click.secho(f"  {failure}", fg="red", err=True)
        sys.exit(EXIT_FAILED)
