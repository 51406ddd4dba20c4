"""`hagate app`: what the Home Assistant app's image runs."""

from __future__ import annotations

import os
from pathlib import Path

import click

from hagate.cli.base import Context, cli, pass_ctx


@cli.group()
def app() -> None:
    """hagate as a Home Assistant app (add-on)."""


@app.command("run")
@click.option(
    "--options",
    "options_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default="/data/options.json",
    show_default=True,
    help="The app's options, as the Supervisor writes them.",
)
@pass_ctx
def app_run(ctx: Context, options_path: Path) -> None:
    """Apply the app's options to hagate.yaml (made on the first start), then run the
    gateway: behind the relay (mode relay) or on listen_port (mode port_forward)."""
    from hagate.app.start import read_options, start
    from hagate.run.connect import run_connect
    from hagate.run.gateway import serve

    options = read_options(options_path)
    ctx.state.create()
    token = os.environ.get("SUPERVISOR_TOKEN") or None
    prepared = start(ctx.state, options, token, os.environ)
    for line in prepared.said:
        click.echo(f"hagate app: {line}", err=True)
    # info: a line per request on stdout (the app's log); warning: hagate's own words only
    log_format = "text" if options.log_level == "info" else "none"
    if options.mode == "port_forward":
        serve(ctx.state, None, 1, log_format)
        return
    assert options.relay is not None and options.connector_token is not None
    click.echo(f"hagate app: {options.hostname} behind the relay {options.relay}", err=True)
    run_connect(
        ctx.state, [options.relay], options.connector_token, options.relay_fingerprint, log_format
    )
