"""`hagate init`: a new state directory."""

from __future__ import annotations

import click

from hagate import config
from hagate.cli.base import Context, cli, pass_ctx
from hagate.errors import HagateError

# -- init ---------------------------------------------------------------------------------


@cli.command()
@click.option("--hostname", required=True, help="Public DNS name of your Home Assistant.")
@click.option("--upstream", required=True, help="Home Assistant URL, e.g. http://127.0.0.1:8123.")
@click.option("--listen", default=config.DEFAULT_LISTEN, show_default=True, help="HOST:PORT.")
@pass_ctx
def init(ctx: Context, hostname: str, upstream: str, listen: str) -> None:
    """Create the CA, a server certificate and a commented config."""
    from hagate.pki.authority import Authority
    from hagate.state import CA_CERT, SERVER_CERT, atomic_write

    host = config.validate_hostname(hostname)
    up = config.validate_upstream(upstream)
    config.parse_listen(listen)
    if ctx.state.config_path.exists():
        raise HagateError(
            f"{ctx.state.config_path} already exists; refusing to overwrite an existing setup"
        )
    Authority.initialise(ctx.state, host)
    atomic_write(ctx.state.config_path, config.render_template(host, up, listen).encode(), 0o600)
    click.echo(f"State directory: {ctx.state.path}")
    click.echo(f"CA certificate:  {ctx.state / CA_CERT}")
    click.echo(f"Server cert:     {ctx.state / SERVER_CERT} (for {host})")
    click.echo(f"Config:          {ctx.state.config_path}")
    click.echo("Next: hagate cert issue NAME --p12 NAME.p12   (a certificate for each device)")
