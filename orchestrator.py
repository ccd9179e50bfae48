#!/usr/bin/env python3
"""orchestrator: the command line of the homelab services VM.

A thin Click layer: it parses options, loads the settings, builds the managers, calls
them and turns their errors into messages and exit codes. It never builds an argv.

Exit codes: 0 success, 1 a command or step failed, 2 usage error, 3 configuration error,
4 another run holds the lock.
"""

from __future__ import annotations

import logging
import os
import sys
import time
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
        from management.tools.zfs import ZFSManager

        return ZFSManager(self.runner, timeout=float(self.settings.command_timeout))

    @cached_property
    def borg(self):
        from management.tools.borg import BorgBackupRepoManager

        return BorgBackupRepoManager(self.settings, self.runner)

    @cached_property
    def docker(self):
        return self._docker(click.echo)

    def _docker(self, echo):
        from management.tools.compose import DockerComposeManager

        return DockerComposeManager(self.settings, self.runner, self.zfs, echo=echo)

    def context(self, to_stderr: bool = False):
        """The one RunContext of this command: output on stdout, or on stderr when stdout
        carries JSON; live progress on a terminal, a line every PROGRESS_INTERVAL otherwise."""
        from management.cycles.context import RunContext
        from management.monitoring.progress import Progress

        echo = (lambda m: click.echo(m, err=True)) if to_stderr else click.echo
        stream = sys.stderr if to_stderr else sys.stdout
        progress = Progress(echo, stream=stream, tty=stream.isatty(), interval=self.settings.progress_interval)
        docker = self._docker(echo) if to_stderr else self.docker
        return RunContext(self.settings, self.runner, self.zfs, docker, self.borg, echo=echo, progress=progress)

    @cached_property
    def updater(self):
        from management.cycles.update import UpdateOrchestrator

        return UpdateOrchestrator(self.context())

    def services_or_all(self, names) -> list[str]:
        return [self.service(n) for n in names] if names else list(self.settings.services)

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
    warnings = s.stack_problems()
    for warning in warnings:
        click.secho(f"warning: {warning}", fg="yellow")
    if warnings:  # the settings are valid; the stacks they describe are not all there yet
        click.echo(f"{app.env_file}: valid, {len(warnings)} warning(s) above ({len(s.services)} services: "
                   f"{', '.join(s.services)})")
        return
    click.echo(f"{app.env_file}: OK ({len(s.services)} services: {', '.join(s.services)})")


@config.command("show")
@click.option("--doc", is_flag=True, help="Precede each setting with its one-line description and default.")
@pass_app
def config_show(app: App, doc: bool) -> None:
    """Print every setting after defaults are applied, one per line, with secrets masked."""
    rows = app.settings.rows()
    width = max(len(key) for key, _, _ in rows)
    last_doc = None
    for key, value, text in rows:
        if doc and text != last_doc:  # a family of keys (REMAPPED_*_UID) shares one
            click.echo(f"# {text}")
        last_doc = text
        click.echo(f"{key:<{width}}  {value}".rstrip())


# --- storage (ZFS datasets, snapshots, host setup) -----------------------------------------


@cli.command("setup-storage")
@click.option("--fix-ownership", is_flag=True,
              help="Also chown existing contents whose owner is wrong (changes ctime: the next backup re-reads them).")
@click.option("--force-import", is_flag=True,
              help="Import the pool found on the disks even though another system used it last (zpool import -f): "
                   "the OS disk was rebuilt and the old system is gone.")
@pass_app
def setup_storage(app: App, fix_ownership: bool, force_import: bool) -> None:
    """One-time host setup, safe to repeat: the pool imported when its disks hold it (a rebuilt OS
    disk; existing datasets kept), datasets, volume directories and their owners, the
    userns-remap user and its subuid/subgid ranges, /etc/docker/daemon.json."""
    from management.host.storage import StorageManager

    StorageManager(app.settings, app.runner, app.zfs, echo=click.echo).setup(fix_ownership=fix_ownership,
                                                                             force_import=force_import)


@cli.command("setup-pool")
@click.argument("disks", nargs=-1, required=True, metavar="DISK...")
@click.option("--force", is_flag=True, help="Use disks that hold a partition table, a filesystem or a pool (lost).")
@click.option("--mountpoint", default=None, help="Where the pool's root dataset mounts (default: ZFS's /POOL).")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@pass_app
def setup_pool(app: App, disks: tuple[str, ...], force: bool, mountpoint: str | None, yes: bool) -> None:
    """Create the pool ZFS_PARENT_DATASET lives in as a mirror of DISK... (the data disk and the
    Backup Data Disk) with ashift=12, compression=lz4, atime=off, xattr=sa, acltype=posixacl (what
    this ZFS offers of them). Refuses a disk that holds anything, unless --force, and an existing
    pool. Prints the plan, then asks unless --yes; --dry-run only prints it."""
    from management.host.pool import PoolManager

    manager = PoolManager(app.settings, app.runner, echo=click.echo)
    plan = manager.plan_create(list(disks), force=force, mountpoint=mountpoint)
    them = "them" if len(disks) > 1 else "it"
    _pool_change(app, manager, plan, f"Create pool {plan.pool} on {' '.join(disks)}? Everything on {them} is lost", yes)


@cli.command("attach-mirror")
@click.argument("disk")
@click.option("--force", is_flag=True, help="Use a disk that holds a partition table, a filesystem or a pool.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@pass_app
def attach_mirror(app: App, disk: str, force: bool, yes: bool) -> None:
    """Turn the one-disk pool ZFS_PARENT_DATASET lives in into a mirror: DISK becomes the second
    leg (zpool attach; ZFS copies every block to it). Same refusals as setup-pool."""
    from management.host.pool import PoolManager

    manager = PoolManager(app.settings, app.runner, echo=click.echo)
    plan = manager.plan_attach(disk, force=force)
    _pool_change(app, manager, plan, f"Attach {disk} to pool {plan.pool}? Everything on it is lost", yes)


def _pool_change(app: App, manager, plan, question: str, yes: bool) -> None:
    for line in plan.lines(app.dry_run):
        click.echo(line)
    if app.dry_run:
        click.echo("dry run: nothing changed")
        return
    if not yes:
        click.confirm(question, abort=True)
    status = manager.apply(plan)
    click.echo(f"pool {plan.pool}: {status.state}, {status.layout}" if status else f"pool {plan.pool}: done")


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

    from management.text import human_size

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
    from management.tools.zfs import check_snapshot_name

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


def _stack_command(name: str, method: str, verb: str, doc: str):
    @cli.command(name, help=doc)
    @click.argument("stacks", nargs=-1, metavar="[STACK]...")
    @pass_app
    def command(app: App, stacks: tuple[str, ...]) -> None:
        click.echo(f"{verb} {', '.join(stacks) or 'all stacks'} (hub {app.settings.hub_service})")
        started = time.monotonic()
        results = getattr(app.docker, method)(list(stacks) or None)
        failed = [r for r in results if not r.ok]
        took = time.monotonic() - started
        click.echo(f"{name}: {len(results) - len(failed)} ok, {len(failed)} failed in {took:.1f}s")
        for r in failed:
            click.secho(f"  {r.stack}: {r.message}", fg="red", err=True)
        if failed:
            sys.exit(EXIT_FAILED)

    return command


_stack_command("docker-up", "up", "up", "Create and start stacks (all, or the ones named): external networks first, "
               "the hub first, the rest in parallel; waits for healthchecks.")
_stack_command("docker-start", "start", "starting", "Start existing stacks: the hub first, then the rest in parallel.")
_stack_command("docker-stop", "stop", "stopping", "Stop stacks in parallel, the hub last.")
_stack_command("docker-down", "down", "down", "Stop and remove stacks' containers (data on ZFS is kept), the hub last.")
_stack_command("docker-pull", "pull", "pulling", "Pull the images of stacks.")


@cli.command("status")
@click.argument("services", nargs=-1, metavar="[SERVICE]...")
@click.option("--json", "as_json", is_flag=True, help="The same as one JSON object.")
@click.option("--html", "html_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the static status page (the one STATUS_PAGE_DIR gets after each run) to this file.")
@pass_app
def status(app: App, services: tuple[str, ...], as_json: bool, html_file: Path | None) -> None:
    """Per service: its stack (containers running/total, state, health), its dataset (mounted,
    used space), the last good backup and its age, the last restore drill and image update, and
    its verdict: PROTECTED, or AT RISK with the reasons. A last good backup older than
    STALE_AFTER hours (or none) is marked STALE. Read-only (but for --html's file), and starts
    no borg: `list-archives` counts a repository's archives."""
    import json as _json

    from management.errors import ValidationError
    from management.views.status import collect, render

    try:
        report = collect(app.settings, app.zfs, app.docker, list(services) or None)
    except ValidationError as exc:
        raise click.BadParameter(str(exc), param_hint="SERVICE") from None
    if html_file is not None:
        from management.monitoring.publish import page_rows, write_page
        from management.state import StateStore

        store = StateStore(app.settings.state_dir)
        rows = page_rows({s.service: s.risks for s in report.services if s.backed_up}, store, report.time)
        try:
            write_page(html_file.resolve(), rows, report.time)
        except OSError as exc:
            raise click.ClickException(f"cannot write the status page {html_file}: {exc}") from None
        click.echo(f"status page: {html_file} ({len(rows)} service(s))")
        return
    if as_json:
        click.echo(app.mask(_json.dumps(report.to_dict(), indent=2)))
        return
    for line, highlight in render(report):
        click.secho(app.mask(line), fg="red" if highlight else None)


@cli.command("check-stacks")
@pass_app
def check_stacks_cmd(app: App) -> None:
    """Check the hub-and-spoke rules in SERVICES_DIR and where every mount keeps its data; print
    each violation with its file and fix (data no backup reaches is one), what stacks declared
    with a reason, what the stack folder's copy holds whole, and a count of mounts by verdict.
    Exit 1 if any violation."""
    from management.views.coverage import copied, summary

    violations = app.docker.check()
    for v in violations:
        click.echo(str(v))
    for note in app.docker.accepted():
        click.echo(f"accepted: {note}")
    coverage = app.docker.coverage()
    for note in copied(coverage):
        click.echo(f"copied: {note}")
    click.echo(summary(coverage, unreadable=len(app.docker.discover_names()) - len(coverage)))
    if app.docker.is_v1:
        click.echo("note: compose v1 drops x-orchestrator blocks (allow, ephemeral, consistency, drill): "
                   "they take effect with compose v2 only")
    failures = [v for v in violations if not v.warning]  # a warning is said, and fails nothing
    if failures:
        click.secho(f"check-stacks: {len(failures)} violation(s)", fg="red", err=True)
        sys.exit(EXIT_FAILED)
    warned = len(violations) - len(failures)
    click.echo(f"check-stacks: OK ({len(app.docker.discover_names())} stacks in {app.settings.services_dir}"
               + (f"; {warned} warning(s) above)" if warned else ")"))


@cli.command("adopt")
@click.argument("service")
@click.option("--remove-old", is_flag=True, help="Remove the old volumes / directories an earlier adopt of SERVICE "
              "moved (only those it recorded).")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON (with --dry-run).")
@pass_app
def adopt(app: App, service: str, remove_old: bool, yes: bool, as_json: bool) -> None:
    """Bring SERVICE's data that no backup reaches (docker volumes, writable binds in its folder or
    elsewhere on the host) onto its ZFS dataset, without editing its compose file: stop the stack,
    copy and verify each, write an override compose merges by itself, add the paths to
    SERVICE_VOLUME_PATHS_AND_OWNERS, start it and wait healthy. Any failure puts everything back.
    --dry-run shows the plan with sizes. The old data stays until --remove-old."""
    import json as _json

    from management.cycles.adopt import AdoptOrchestrator, asdicts

    adopter = AdoptOrchestrator(app.context())
    if remove_old:
        if not yes and not app.dry_run:
            click.confirm(f"Remove the old volumes and directories adopt moved for {service}? Their data is on "
                          "the dataset now", abort=True)
        adopter.remove_old(service, dry_run=app.dry_run)
        return
    if not yes and not app.dry_run:
        plan = adopter.plan(service)
        if plan.moves:
            click.confirm(f"Stop {service}, move {len(plan.moves)} mount(s) onto {app.settings.dataset(service)} "
                          "and start it again?", abort=True)
    from management.lock import Interrupted

    try:
        plan = adopter.adopt(service, dry_run=app.dry_run)
    except Interrupted as exc:
        click.secho(f"adopt: {exc}; {service} was put back as it was", fg="red", err=True)
        sys.exit(EXIT_FAILED)
    if as_json:
        click.echo(_json.dumps(asdicts(plan), indent=2))


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

    from management.host.doctor import FAIL, OK, WARN, Host, render, run_checks

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

# --- image updates -------------------------------------------------------------------------


@cli.command("outdated")
@click.argument("stacks", nargs=-1, metavar="[STACK]...")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per service.")
@pass_app
def outdated(app: App, stacks: tuple[str, ...], as_json: bool) -> None:
    """Per service: its image reference, the image ID it runs, and whether the registry serves a
    different one for that reference. Read-only: nothing is pulled or restarted. A registry that
    cannot be reached is named on its own services' rows."""
    import json as _json

    from management.cycles.update import as_dicts
    from management.views.outdated import render

    rows = app.updater.outdated(list(stacks) or None)
    if as_json:
        click.echo(_json.dumps(as_dicts(rows), indent=2))
        return
    click.echo("\n".join(render(rows)))


@cli.command("update")
@click.argument("stacks", nargs=-1, metavar="[STACK]...")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@pass_app
def update(app: App, stacks: tuple[str, ...], yes: bool) -> None:
    """Pull newer images; for each stack that got one: stop it, snapshot its dataset
    (pre-update-<time>), start the new images and gate on health. A stack that fails the gate
    is stopped, its dataset rolled back and its old images started again. Stacks with nothing
    new are not restarted. Exit 1 when any stack failed or was rolled back."""
    from management.lock import Interrupted
    from management.results import FAILED, ROLLED_BACK

    if app.dry_run:
        for line in app.updater.plan(list(stacks) or None):
            click.echo(line)
        return
    if not yes:
        click.confirm(f"Update {', '.join(stacks) or 'every stack'} (each with a newer image is restarted)?",
                      abort=True)
    try:
        results = app.updater.update(list(stacks) or None)
    except Interrupted as exc:
        click.secho(f"update: {exc}; every stack was left on its old or its new version with matching data",
                    fg="red", err=True)
        sys.exit(EXIT_FAILED)
    for r in results:
        line = f"{r.stack:<14} {r.result:<12} {app.mask(r.message)}"
        click.secho(line, fg="red" if r.result in (FAILED, ROLLED_BACK) else None)
    bad = [r.stack for r in results if r.result in (FAILED, ROLLED_BACK)]
    if bad:
        click.secho(f"update: {len(bad)} stack(s) not updated: {', '.join(bad)}", fg="red", err=True)
        sys.exit(EXIT_FAILED)


@cli.command("rollback")
@click.argument("stack")
@click.option("--snapshot", "snapshot", default=None, help="A pre-update-<time> snapshot (default: the last).")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@pass_app
def rollback(app: App, stack: str, snapshot: str | None, yes: bool) -> None:
    """Put STACK back to its last (or the named) pre-update snapshot and the images it ran then.
    Later snapshots of its dataset are destroyed by the rollback (zfs rollback -r)."""
    from management.results import ROLLED_BACK

    if app.dry_run:
        raise click.UsageError("rollback has no dry run; `make list-snapshots-all` shows the pre-update snapshots")
    if not yes:
        click.confirm(f"Roll {stack} back to {snapshot or 'its last pre-update snapshot'}? Data written since "
                      "is lost.", abort=True)
    result = app.updater.rollback(stack, snapshot)
    click.echo(f"{stack}: {result.result} {result.message}")
    if result.result != ROLLED_BACK:
        sys.exit(EXIT_FAILED)


# --- backup (borg) -------------------------------------------------------------------------


@cli.command("backup")
@click.argument("services", nargs=-1, metavar="[SERVICE]...")
@click.option("--json", "as_json", is_flag=True, help="Print the run report as JSON on stdout (progress on stderr).")
@pass_app
def backup(app: App, services: tuple[str, ...], as_json: bool) -> None:
    """The nightly cycle: stop stacks, one atomic snapshot, start stacks, borg create from the
    snapshot per dataset, prune, remove the snapshot. Default: every service.

    Exit 0 when every dataset was backed up, 1 when any failed, 4 when another run holds the lock."""
    import json as _json

    from management.views.report import render_table

    names = [app.service(n) for n in services] or None
    if app.dry_run:
        raise click.UsageError("backup has no dry run (its stop/snapshot/start window is the point); "
                               "use `config check` and `backup --help`")
    from management.cycles.backup import BackupOrchestrator

    report = BackupOrchestrator(app.context(to_stderr=as_json)).backup(names)
    if as_json:
        click.echo(app.mask(_json.dumps(report.to_dict(), indent=2, default=str)))
    else:
        click.echo(app.mask(render_table(report)))
    if not report.ok:
        sys.exit(EXIT_FAILED)


@cli.command("init-repos")
@click.argument("services", nargs=-1, metavar="[SERVICE]...")
@pass_app
def init_repos(app: App, services: tuple[str, ...]) -> None:
    """Create each service's borg repository (repokey-blake2) unless it exists, and export its
    key to BORG_KEYS_DIR/<service>.key (mode 0600). What each holds is recorded, so the first
    night need not ask borg again."""
    from management.cycles.backup import BackupOrchestrator

    cycle = BackupOrchestrator(app.context())
    failed = 0
    for service in app.services_or_all(services):
        try:
            created = cycle.init_repo(service)
        except OrchestratorError as exc:
            failed += 1
            click.secho(f"{service}: {app.mask(str(exc))}", fg="red", err=True)
            continue
        if created:
            click.echo(f"{service}: {'would initialise' if app.dry_run else 'initialised'} {app.settings.repo(service)}"
                       + ("" if app.dry_run else f", key exported to {app.borg.key_path(service)}"))
        else:
            click.echo(f"{service}: {app.settings.repo(service)} already initialised")
    if failed:
        sys.exit(EXIT_FAILED)


@cli.command("list-archives")
@click.argument("service")
@pass_app
def list_archives(app: App, service: str) -> None:
    """List the archives in SERVICE's repository, oldest first."""
    archives = app.borg.list_archives(app.service(service))
    if not archives:
        click.echo(f"no archives in {app.settings.repo(service)}")
    for a in archives:
        click.echo(f"{a.get('name', '?'):<40}  {a.get('time', a.get('start', ''))[:19]}")


@cli.command("extract-archive")
@click.argument("service")
@click.argument("archive")
@click.argument("destination", type=click.Path(file_okay=False))
@click.option("--force", is_flag=True, help="Extract even if DESTINATION is not empty.")
@pass_app
def extract_archive(app: App, service: str, archive: str, destination: str, force: bool) -> None:
    """Extract ARCHIVE of SERVICE into DESTINATION (an empty or new directory). Live data is not touched."""
    dest = Path(destination).resolve()
    app.borg.extract(app.service(service), archive, dest, force=force)
    click.echo(f"{'would extract' if app.dry_run else 'extracted'} {archive} into {dest}")


@cli.command("check-repos")
@click.argument("services", nargs=-1, metavar="[SERVICE]...")
@click.option("--verify-data", is_flag=True, help="Also read and verify every chunk (slow; all data is read).")
@click.option("--repository-only", is_flag=True,
              help="Only the segments' checksums (on the server for ssh:// repositories): what CHECK_SCHEDULE runs.")
@click.option("--wait", type=click.IntRange(0), default=0, show_default=True,
              help="Seconds to wait for a running backup to finish (cron uses BORG_TIMEOUT).")
@pass_app
def check_repos(app: App, services: tuple[str, ...], verify_data: bool, repository_only: bool, wait: int) -> None:
    """Run `borg check` on each repository; exit 1 if any is damaged or unreachable, naming it.
    The result goes to status, the metrics (<name>_check.prom) and a notification."""
    from management.cycles.check import CheckOrchestrator

    if app.dry_run:
        raise click.UsageError("check-repos has no dry run: it only reads")
    report = CheckOrchestrator(app.context()).check(app.services_or_all(services), verify_data=verify_data,
                                                    repository_only=repository_only, wait=float(wait))
    failed = [r.service for r in report.results if not r.ok]
    if failed:
        click.secho(f"check-repos: {len(failed)} failed: {', '.join(failed)}", fg="red", err=True)
        sys.exit(EXIT_FAILED)
    click.echo(f"check-repos: OK ({len(report.results)} repositories)")


@cli.command("release-prune")
@click.argument("service")
@pass_app
def release_prune(app: App, service: str) -> None:
    """Release SERVICE's prune after the prune guard held it (its new archive shrank, was empty,
    or was dated before the newest one): the change was meant, the next backup prunes again by
    the retention. Only the hold is removed; no archive is touched here."""
    from management.state import StateStore

    hold = StateStore(app.settings.state_dir).release_prune(app.service(service))
    if hold is None:
        click.echo(f"release-prune: no prune of {service} is held")
        return
    click.echo(f"release-prune: {service} released (held since {hold.archive}: {hold.reason}); "
               "the next backup prunes it again")


@cli.command("authorized-keys")
@click.option("--public-key", type=click.Path(dir_okay=False), default=None,
              help="The VM's public key (default: the .pub beside BORG_RSH's -i key).")
@click.option("--trusted-key", type=click.Path(dir_okay=False), default=None,
              help="Also print the full-access line for the trusted machine's public key.")
@pass_app
def authorized_keys(app: App, public_key: str | None, trusted_key: str | None) -> None:
    """Print the backup server's authorized_keys lines: the VM's key may only run `borg serve
    --append-only`, restricted to each service's repository (so it cannot delete the history);
    with --trusted-key, the trusted machine's key gets full access for prune-trusted. Reads
    public keys only (docs/security.md)."""
    from management.tools.borg import authorized_keys_lines

    lines = authorized_keys_lines(app.settings, Path(public_key) if public_key else None,
                                  Path(trusted_key) if trusted_key else None)
    click.echo("\n".join(lines))


@cli.command("forget-repo-cache")
@click.argument("service")
@pass_app
def forget_repo_cache(app: App, service: str) -> None:
    """After SERVICE's repository was rolled back on the backup server (docs/security.md): remove
    this machine's borg cache of it and the manifest time borg remembered, so the next run reads
    the repository as it is now. The repository is not touched."""
    removed = app.borg.forget_cache(app.service(service))
    click.echo(f"forget-repo-cache: {service}: cache removed" + (f", {len(removed)} manifest time(s) forgotten"
                                                                 if removed else ""))


@cli.command("prune-trusted")
@click.argument("services", nargs=-1, metavar="[SERVICE]...")
@click.option("--rsh", default=None, help="The ssh command with the full-access key (default: BORG_RSH).")
@pass_app
def prune_trusted(app: App, services: tuple[str, ...], rsh: str | None) -> None:
    """On the trusted machine: prune every repository by its retention and compact it, with the
    full-access key, while the VM's key is append-only (BORG_APPEND_ONLY=1 there). A service
    whose newest archive shrank (PRUNE_GUARD_SHRINK) or whose archives vanished since the last
    run (deleted through the VM's key?) is held: nothing pruned or compacted until
    `release-prune` here. Exit 1 when any service failed or is held."""
    import dataclasses

    if rsh:
        app.__dict__["settings"] = dataclasses.replace(app.settings, borg_rsh=rsh)  # before borg is built
    elif app.settings.borg_append_only:
        raise click.UsageError("this .env says its key is append-only (BORG_APPEND_ONLY=1): prune-trusted needs the "
                               "full-access key, e.g. make prune-trusted BORG_RSH=\"ssh -i ~/.ssh/borg_full\"")
    from management.cycles.prune import TrustedPrune

    report = TrustedPrune(app.context()).run([app.service(n) for n in services] or None)
    from management.results import FAILED

    bad = [d.service for d in report.datasets if d.result == FAILED] + sorted(report.held)
    click.echo(f"prune-trusted: {len(report.datasets) - len(bad)} pruned and compacted, {len(report.held)} held, "
               f"{len(bad) - len(report.held)} failed")
    if bad:
        sys.exit(EXIT_FAILED)


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
    import json

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


@cli.command("snapshot-history")
@pass_app
def snapshot_history(app: App) -> None:
    """One atomic snapshot of every service dataset now, nothing stopped (crash-consistent), kept
    as local history and thinned by SNAPSHOT_RETENTION with the nightly ones (SNAPSHOT_SCHEDULE
    runs it from cron)."""
    from management.cycles.backup import snapshot_name
    from management.cycles.history import History

    ctx = app.context()
    name = snapshot_name(app.settings.snapshot_prefix, time.time())
    for note in History(ctx).snapshot_now(name):
        click.echo(note)
    click.echo(f"snapshot-history: {name} (crash-consistent)")


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


@cli.command("drill")
@click.argument("services", nargs=-1, metavar="[SERVICE]...")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
@click.option("--wait", type=click.IntRange(0), default=0, show_default=True,
              help="Seconds to wait for a running backup to finish (cron uses BORG_TIMEOUT).")
@click.option("--boot/--no-boot", default=None,
              help="Also start each restored stack, isolated, and wait for its healthchecks (default: DRILL_BOOT).")
@pass_app
def drill(app: App, services: tuple[str, ...], as_json: bool, wait: int, boot: bool | None) -> None:
    """Restore drill: extract each service's latest archive to scratch space and compare every
    entry with the snapshot it was made from (content, size, type, owner, mode, links); with
    --boot, then start the restored stack as a throwaway one (its own project, an internal
    network, no ports, binds on the restored copy, local images) and wait for its healthchecks
    and its x-orchestrator.drill probe. Never writes into a service dataset, never touches a
    live stack. Exit 1 on any difference, boot failure or error."""
    import json

    if app.dry_run:
        raise click.UsageError("drill has no dry run: it only reads, then removes its scratch space")
    from management.cycles.drill import DrillOrchestrator
    from management.lock import Interrupted

    try:
        report = DrillOrchestrator(app.context(to_stderr=as_json)).drill(app.services_or_all(services),
                                                                         wait=float(wait), boot=boot)
    except Interrupted as exc:
        click.secho(f"drill: {exc}; its scratch space and throwaway stacks were removed", fg="red", err=True)
        sys.exit(EXIT_FAILED)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        click.echo("drill: OK" if report.ok else
                   f"drill: FAILED ({', '.join(r.service for r in report.results if not r.ok)})")
    if not report.ok:
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
    install(schedule, Path(sys.executable), Path(__file__).resolve(), app.env_file.resolve(), Path(log_file),
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
    text = render_zedlet(Path(sys.executable), Path(__file__).resolve(), app.env_file.resolve(), ZED_SUBCLASSES)
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
    install(app.runner, Path(sys.executable), Path(__file__).resolve(), app.env_file.resolve(), s.storage_wait,
            Path(unit_dir), app.dry_run, click.echo)


@cli.command("wait-storage")
@click.option("--timeout", type=click.IntRange(0, 3600), default=None,
              help="Seconds to wait (default: STORAGE_WAIT).")
@click.pass_context
def wait_storage(ctx: click.Context, timeout: int | None) -> None:
    """Wait until the pool is imported and every dataset below ZFS_PARENT_DATASET is mounted.

    Run by docker.service (the drop-in `make install-autostart` writes) before dockerd starts.
    Each round imports the pool by scanning the devices when it is missing (a disk that appeared
    after the boot's own import) and mounts what is not mounted. Exits 1 when the storage is
    still missing after the timeout, which holds docker back. A .env it cannot read does not
    hold docker back: the error is printed and it exits 0 (docker-up then refuses unmounted
    datasets itself).
    """
    from management.errors import OrchestratorError
    from management.host.storage import StorageManager

    app: App = ctx.obj
    try:
        settings = app.settings
    except OrchestratorError as e:
        click.echo(f"wait-storage: cannot read the settings, not waiting: {e}", err=True)
        return
    manager = StorageManager(settings, app.runner, app.zfs, echo=click.echo)
    manager.wait_for_storage(settings.storage_wait if timeout is None else timeout)


@cli.command("uninstall-autostart")
@click.option("--unit-dir", default="/etc/systemd/system", hidden=True, type=click.Path(file_okay=False))
@pass_app
def uninstall_autostart(app: App, unit_dir: str) -> None:
    """Disable and remove the boot unit (only a unit this tool wrote). Running stacks keep running."""
    from management.host.autostart import uninstall_autostart as uninstall

    removed = uninstall(app.runner, Path(unit_dir))
    click.echo("\n".join(f"removed {p}" for p in removed) or "nothing to remove")


def main() -> None:
    cli(prog_name="orchestrator")


if __name__ == "__main__":
    main()
