"""The CLI's root: the `orchestrator` group and its options, the App every command is handed
(settings, runner and managers, built lazily so `--help` needs no .env), and the edge that turns
project errors into messages and exit codes.

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

# The script cron, the boot unit and the zedlet run: the entry point, not the module that renders them
ENTRY_POINT = Path(__file__).resolve().parents[2] / "orchestrator.py"
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

    @cached_property
    def docker_views(self):
        """The stacks for read-only views (status, check-stacks): compose's models kept across
        runs in STATE_DIR and reused while their inputs are the same (stacks/model_key.py), so
        100 unchanged stacks start no compose. Every command that acts on stacks asks compose."""
        from management.state import StateStore
        from management.tools.compose import DockerComposeManager

        return DockerComposeManager(self.settings, self.runner, self.zfs, echo=click.echo,
                                    models=StateStore(self.settings.state_dir))

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
