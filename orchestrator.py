#!/usr/bin/env python3
"""orchestrator: the command line of the homelab services VM.

A thin Click layer: it parses options, loads the settings, builds the managers, calls
them and turns their errors into messages and exit codes. It never builds an argv.

Exit codes: 0 success, 1 a command or step failed, 2 usage error, 3 configuration error,
4 another run holds the lock.
"""

from __future__ import annotations

import logging
import sys
from functools import cached_property
from pathlib import Path

import click

from management import __version__
from management.config import Settings, load_settings
from management.errors import ConfigError, OrchestratorError
from management.runner import Runner, mask

EXIT_FAILED = 1
EXIT_CONFIG = 3
EXIT_LOCKED = 4

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
log = logging.getLogger("orchestrator")


class App:
    """What every command needs, built lazily so `--help` stays fast and needs no .env."""

    def __init__(self, env_file: str, dry_run: bool, verbose: int):
        self.env_file = Path(env_file)
        self.dry_run = dry_run
        self.verbose = verbose

    @cached_property
    def settings(self) -> Settings:
        settings, warnings = load_settings(self.env_file)
        for warning in warnings:
            click.secho(f"warning: {warning}", fg="yellow", err=True)
        return settings

    @cached_property
    def runner(self) -> Runner:
        s = self.settings
        return Runner(dry_run=self.dry_run, secrets=s.secrets, default_timeout=float(s.command_timeout))

    @cached_property
    def zfs(self):
        from management.zfs_manager import ZFSManager

        return ZFSManager(self.runner, timeout=float(self.settings.command_timeout))

    def service(self, name: str | None) -> str | None:
        """A service named on the command line: must be one the .env lists."""
        if name is not None and name not in self.settings.services:
            known = ", ".join(self.settings.services)
            raise click.BadParameter(f"unknown service {name!r}; known: {known}", param_hint="SERVICE_NAME")
        return name

    def mask(self, text: str) -> str:
        try:
            return mask(text, self.settings.secrets)
        except ConfigError:
            return text


class OrchestratorGroup(click.Group):
    """Turns project errors into ClickExceptions at the edge, with secrets masked."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            for warning in exc.warnings:
                click.secho(f"warning: {warning}", fg="yellow", err=True)
            click.secho(f"error: {exc}", fg="red", err=True)
            ctx.exit(EXIT_CONFIG)
        except OrchestratorError as exc:
            app = ctx.find_object(App)
            text = app.mask(str(exc)) if app else str(exc)
            click.secho(f"error: {text}", fg="red", err=True)
            ctx.exit(getattr(exc, "exit_code_hint", EXIT_FAILED))


def _setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


@click.group(cls=OrchestratorGroup, context_settings=CONTEXT)
@click.option(
    "--env-file",
    envvar="ORCHESTRATOR_ENV_FILE",
    default=".env",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="Settings file (also read from ORCHESTRATOR_ENV_FILE).",
)
@click.option("--dry-run", is_flag=True, help="Show what would change; run only read-only queries.")
@click.option("-v", "--verbose", count=True, help="-v shows steps, -vv every command run (secrets masked).")
@click.version_option(__version__, prog_name="orchestrator")
@click.pass_context
def cli(ctx: click.Context, env_file: str, dry_run: bool, verbose: int) -> None:
    """Run the homelab services VM: ZFS datasets and snapshots, Docker Compose stacks
    behind one Caddy hub, and Borg backups (one repository per dataset)."""
    _setup_logging(verbose)
    ctx.obj = App(env_file, dry_run, verbose)


pass_app = click.make_pass_decorator(App)


# --- config --------------------------------------------------------------------------------


@cli.group()
def config() -> None:
    """Validate and show the settings file."""


@config.command("check")
@pass_app
def config_check(app: App) -> None:
    """Validate the .env file and list every problem at once (exit 3 if any)."""
    s = app.settings
    click.echo(f"{app.env_file}: OK ({len(s.services)} services: {', '.join(s.services)})")


@config.command("show")
@pass_app
def config_show(app: App) -> None:
    """Print every setting after defaults are applied, with secrets masked."""
    rows = app.settings.masked()
    width = max(map(len, rows))
    for key, value in rows.items():
        click.echo(f"{key:<{width}}  {value}")


# --- storage (ZFS datasets, snapshots, host setup) -----------------------------------------


@cli.command("setup-storage")
@click.option("--fix-ownership", is_flag=True,
              help="Also chown existing contents whose owner is wrong (changes ctime: the next backup re-reads them).")
@pass_app
def setup_storage(app: App, fix_ownership: bool) -> None:
    """One-time host setup, safe to repeat: datasets, volume directories and their owners,
    the userns-remap user and its subuid/subgid ranges, /etc/docker/daemon.json."""
    from management.storage_manager import StorageManager

    StorageManager(app.settings, app.runner, app.zfs, echo=click.echo).setup(fix_ownership=fix_ownership)


@cli.group()
def snapshot() -> None:
    """Manual ZFS snapshots of the service datasets (the nightly cycle takes its own)."""


@snapshot.command("create")
@click.argument("name")
@click.option("--service", "-s", help="Only this service's dataset (default: all, one atomic snapshot).")
@pass_app
def snapshot_create(app: App, name: str, service: str | None) -> None:
    """Take snapshot NAME of every dataset at once (zfs snapshot -r), or of one service."""
    s = app.settings
    dataset = s.dataset(app.service(service)) if service else s.zfs_parent_dataset
    created = app.zfs.snapshot(dataset, name, recursive=True)
    scope = "" if service else " (recursive, atomic)"
    click.echo(f"{'would snapshot' if app.dry_run else 'snapshot'} {created}{scope}")


@snapshot.command("list")
@click.option("--service", "-s", help="Only this service's dataset.")
@pass_app
def snapshot_list(app: App, service: str | None) -> None:
    """List snapshots of the service datasets: name, creation time, space used."""
    import time as _time

    from management.report import human_size

    s = app.settings
    root = s.dataset(app.service(service)) if service else s.zfs_parent_dataset
    snaps = app.zfs.snapshots(root)
    if not snaps:
        click.echo(f"no snapshots of {root}")
        return
    width = max(len(x.name) for x in snaps)
    click.echo(f"{'SNAPSHOT':<{width}}  {'CREATED':<19}  USED")
    for x in snaps:
        created = _time.strftime("%Y-%m-%d %H:%M:%S", _time.localtime(x.creation))
        click.echo(f"{x.name:<{width}}  {created}  {human_size(x.used)}")


@snapshot.command("destroy")
@click.argument("name")
@click.option("--service", "-s", help="Only this service's snapshot (default: NAME on every dataset).")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@pass_app
def snapshot_destroy(app: App, name: str, service: str | None, yes: bool) -> None:
    """Destroy snapshot NAME (never a dataset). Asks first unless --yes."""
    from management.zfs_manager import check_snapshot_name

    s = app.settings
    check_snapshot_name(name)
    dataset = s.dataset(app.service(service)) if service else s.zfs_parent_dataset
    target = f"{dataset}@{name}"
    if not app.zfs.exists(target):
        raise click.ClickException(f"no snapshot {target}")
    scope = "" if service else " and the same snapshot of every child dataset"
    if not yes and not app.dry_run:
        click.confirm(f"Destroy {target}{scope}? This cannot be undone", abort=True)
    app.zfs.destroy_snapshot(target, recursive=not service)
    click.echo(f"{'would destroy' if app.dry_run else 'destroyed'} {target}{scope}")

# --- stacks (docker compose) ---------------------------------------------------------------
# (commands added by the compose work)

# --- backup (borg) -------------------------------------------------------------------------
# (commands added by the backup work)


def main() -> None:
    cli(prog_name="orchestrator")


if __name__ == "__main__":
    main()
