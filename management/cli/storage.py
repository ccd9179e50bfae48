"""The pool and the datasets: setup-storage, setup-pool, attach-mirror, wait-storage, and the
`snapshot` group."""

from __future__ import annotations

import click

from management.cli.app import App, cli, pass_app
from management.errors import OrchestratorError

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
    from management.host.storage import StorageManager

    app: App = ctx.obj
    try:
        settings = app.settings
    except OrchestratorError as e:
        click.echo(f"wait-storage: cannot read the settings, not waiting: {e}", err=True)
        return
    manager = StorageManager(settings, app.runner, app.zfs, echo=click.echo)
    manager.wait_for_storage(settings.storage_wait if timeout is None else timeout)
