"""`config check`, `config show`: the settings as this tool reads them."""

from __future__ import annotations

import click

from management.cli.app import App, cli, pass_app

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
