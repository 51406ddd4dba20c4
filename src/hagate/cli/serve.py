"""`hagate serve` and `hagate connect`: run the gateway, port-forwarded or behind relays."""

from __future__ import annotations

import click

from hagate import config
from hagate.cli.base import Context, cli, pass_ctx
from hagate.errors import HagateError

# -- serve --------------------------------------------------------------------------------


@cli.command()
@click.option("--listen", default=None, help="HOST:PORT (default: listen in hagate.yaml).")
@click.option(
    "--workers",
    type=click.IntRange(1, 256),
    default=1,
    show_default=True,
    help="Worker processes sharing the port (a home needs one; more for heavy use).",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="One line per request on stdout.",
)
@pass_ctx
def serve(ctx: Context, listen: str | None, workers: int, log_format: str) -> None:
    """Run the gateway in port-forward mode: TLS, client certificates, rules, proxy to HA."""

    from hagate.run.gateway import serve as run

    if listen is not None:
        config.parse_listen(listen)
    run(ctx.state.require(), listen, workers, log_format)


@cli.command("connect")
@click.option(
    "--relay",
    "relays",
    multiple=True,
    required=True,
    help="HOST:PORT of a relay (repeat for several); HOST:PORT@ADDRESS to dial ADDRESS.",
)
@click.option(
    "--token", required=True, envvar="HAGATE_TOKEN", help="Connector token (or $HAGATE_TOKEN)."
)
@click.option(
    "--relay-fingerprint",
    default=None,
    envvar="HAGATE_RELAY_FINGERPRINT",
    help="Pin the relay's certificate by the SHA-256 `hagate relay init` printed "
    "(or $HAGATE_RELAY_FINGERPRINT).",
)
@click.option(
    "--relay-ca",
    type=click.Path(dir_okay=False, exists=True, resolve_path=True),
    default=None,
    envvar="HAGATE_RELAY_CA",
    help="Verify the relay's certificate against this CA file instead of the system's "
    "(a relay with a certificate from a private ACME CA; or $HAGATE_RELAY_CA).",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 256),
    default=1,
    show_default=True,
    help="Processes, each with its own connection to every relay.",
)
@click.option(
    "--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@pass_ctx
def connect(
    ctx: Context,
    relays: tuple[str, ...],
    token: str,
    relay_fingerprint: str | None,
    relay_ca: str | None,
    workers: int,
    log_format: str,
) -> None:
    """Run the gateway at home behind relays: nothing listens, the connector dials out."""
    from hagate.run.connect import run_connect
    from hagate.run.gateway import load_setup
    from hagate.tunnel.connector import RelayAddress

    addresses = [RelayAddress.parse(r) for r in relays]
    state = ctx.state.require()
    setup = load_setup(state)  # fail here, before any worker, on a broken config
    click.echo(
        f"hagate: gateway for {setup.config.hostname} behind "
        f"{', '.join(map(str, addresses))} -> {setup.config.upstream}, {workers} worker(s)",
        err=True,
    )
    if relay_fingerprint and relay_ca:
        raise HagateError("give --relay-fingerprint or --relay-ca, not both")
    run_connect(state, addresses, token, relay_fingerprint, log_format, workers, relay_ca)
