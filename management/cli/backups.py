"""The backups and their repositories: backup, init-repos, list-archives, extract-archive,
check-repos, release-prune, authorized-keys, forget-repo-cache, prune-trusted,
snapshot-history, drill."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from management.cli.app import EXIT_FAILED, App, cli, pass_app
from management.errors import OrchestratorError

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
    """Release SERVICE's prune after the prune guard held it (its new archive shrank or was
    empty, or most of its files were rewritten): the change was meant, the next backup prunes again by
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
