"""The stacks: docker-up/start/stop/down/pull, status, check-stacks, adopt, outdated, update,
rollback."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from management.cli.app import EXIT_FAILED, App, cli, pass_app

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
        report = collect(app.settings, app.zfs, app.docker_views, list(services) or None)
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

    docker = app.docker_views
    violations = docker.check()
    for v in violations:
        click.echo(str(v))
    for note in docker.accepted():
        click.echo(f"accepted: {note}")
    coverage = docker.coverage()
    for note in copied(coverage):
        click.echo(f"copied: {note}")
    click.echo(summary(coverage, unreadable=len(docker.discover_names()) - len(coverage)))
    if docker.is_v1:
        click.echo("note: compose v1 drops x-orchestrator blocks (allow, ephemeral, consistency, drill): "
                   "they take effect with compose v2 only")
    failures = [v for v in violations if not v.warning]  # a warning is said, and fails nothing
    if failures:
        click.secho(f"check-stacks: {len(failures)} violation(s)", fg="red", err=True)
        sys.exit(EXIT_FAILED)
    warned = len(violations) - len(failures)
    click.echo(f"check-stacks: OK ({len(docker.discover_names())} stacks in {app.settings.services_dir}"
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
