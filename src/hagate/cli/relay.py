"""`hagate relay`: the public relay on a VPS."""

from __future__ import annotations

import json
from pathlib import Path

import click

from hagate import config
from hagate.cli.base import Context, cli, pass_ctx
from hagate.errors import HagateError

# -- tunnel -------------------------------------------------------------------------------


@cli.group()
def relay() -> None:
    """The public relay (on a VPS): routes raw TLS by name to connectors at home."""


@relay.command("init")
@click.option("--hostname", required=True, help="The relay's own public DNS name.")
@click.option(
    "--acme",
    "use_acme",
    is_flag=True,
    help="Get the relay's certificate from an ACME CA (Let's Encrypt) with tls-alpn-01, so "
    "connectors verify it by public CAs instead of a pinned fingerprint.",
)
@click.option("--acme-email", default=None, help="Contact address for the ACME account.")
@click.option("--acme-directory", default=None, help="ACME directory URL (default: Let's Encrypt).")
@click.option(
    "--acme-ca-bundle",
    type=click.Path(dir_okay=False, exists=True, resolve_path=True),
    default=None,
    help="CA file to trust for a private ACME server's own HTTPS.",
)
@click.option("--acme-staging", is_flag=True, help="Let's Encrypt's staging directory.")
@pass_ctx
def relay_init(
    ctx: Context,
    hostname: str,
    use_acme: bool,
    acme_email: str | None,
    acme_directory: str | None,
    acme_ca_bundle: str | None,
    acme_staging: bool,
) -> None:
    """Create the relay's token-signing key and its TLS certificate."""
    from hagate.tunnel.relaystate import RelayState

    if not use_acme and (acme_email or acme_directory or acme_ca_bundle or acme_staging):
        raise HagateError("the --acme-* options need --acme")
    acme = (
        config.acme_settings(acme_directory, acme_email, acme_ca_bundle, acme_staging)
        if use_acme
        else None
    )
    rs = RelayState.initialise(ctx.state, hostname, acme)
    click.echo(f"Relay {rs.hostname}, state in {ctx.state.path}")
    if acme is not None:
        click.echo(
            f"The relay gets its certificate from {acme.directory} when it first runs "
            f"({rs.hostname}:443 must reach it). Connectors need no --relay-fingerprint."
        )
        click.echo("Until then it serves a self-signed certificate, SHA-256:")
    else:
        click.echo("TLS certificate SHA-256 (give it to connectors as --relay-fingerprint):")
    click.echo(rs.fingerprint())


@relay.command("token")
@click.option("--hostname", required=True, help="The home hostname the connector may serve.")
@click.option("--days", type=click.IntRange(1, 3650), default=365, show_default=True)
@pass_ctx
def relay_token(ctx: Context, hostname: str, days: int) -> None:
    """Print a connector token (alone on stdout) for HOSTNAME."""
    from hagate.tunnel import token as tokens
    from hagate.tunnel.relaystate import RelayState

    rs = RelayState.load(ctx.state)
    text, claim = tokens.issue(rs.signing_key(), config.validate_hostname(hostname), days)
    click.echo(f"token {claim.id} for {claim.hostname}, valid {days} days", err=True)
    click.echo(text)


@relay.command("revoke-token")
@click.argument("token_id", metavar="ID|TOKEN")
@pass_ctx
def relay_revoke_token(ctx: Context, token_id: str) -> None:
    """Refuse a token from now on (running relays drop its connector): give its id, as
    `relay status` shows it, or the token itself."""
    from hagate.tunnel import token as tokens
    from hagate.tunnel.relaystate import RelayState

    given = token_id.strip()
    if given.startswith(tokens.PREFIX + "."):
        try:
            given = tokens.read_claim(given).id
        except tokens.TokenError as e:
            raise HagateError(f"cannot read that token: {e}") from None
    elif not tokens.is_token_id(given):
        # Tokens are not stored anywhere, so a mistyped id would be "revoked" to no effect.
        raise HagateError(
            f"{given!r} is not a token id: expected 16 hex digits, as `hagate relay status` "
            "shows them, or the token itself"
        )
    RelayState.load(ctx.state).revoke(given)
    click.echo(f"token {given} revoked")


@relay.command("run")
@click.option("--listen", default="0.0.0.0:443", show_default=True, help="HOST:PORT.")
@click.option(
    "--rules",
    "rules_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Rules on ip.src, ip.src.asnum, ip.src.country to drop probes early.",
)
@click.option("--asn-db", type=click.Path(dir_okay=False), help="GeoLite2-ASN .mmdb.")
@click.option("--country-db", type=click.Path(dir_okay=False), help="GeoLite2-Country .mmdb.")
@click.option(
    "--max-per-ip",
    type=click.IntRange(1),
    default=64,
    show_default=True,
    help="Concurrent connections per source address.",
)
@click.option(
    "--rate-per-ip",
    type=click.IntRange(1),
    default=600,
    show_default=True,
    help="New connections per source address per minute.",
)
@click.option(
    "--proxy-protocol-from",
    "fronts",
    multiple=True,
    metavar="CIDR",
    help="A front (HAProxy, nginx stream, a load balancer) whose PROXY protocol header "
    "names the client; repeatable. Connections from it must send one; no other may.",
)
@pass_ctx
def relay_run(
    ctx: Context,
    listen: str,
    rules_file: Path | None,
    asn_db: str | None,
    country_db: str | None,
    max_per_ip: int,
    rate_per_ip: int,
    fronts: tuple[str, ...],
) -> None:
    """Run the relay."""
    from hagate.front.accept import parse_networks
    from hagate.run.relay import run_relay
    from hagate.tunnel.admission import load_admission
    from hagate.tunnel.relay import Limits

    try:
        trusted = parse_networks(fronts)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--proxy-protocol-from") from None
    admit = load_admission(rules_file, asn_db, country_db) if rules_file else None
    limits = Limits(max_per_ip, rate_per_ip)
    run_relay(ctx.state, config.parse_listen(listen), admit, limits, trusted)


@relay.command("status")
@pass_ctx
def relay_status(ctx: Context) -> None:
    """Connectors, streams and drop counters of the running relay."""
    import time

    from hagate.run.relay import liveness
    from hagate.tunnel.relaystate import STATUS

    try:
        data = json.loads((ctx.state / STATUS).read_text())
    except FileNotFoundError:
        raise HagateError(
            f"no relay status in {ctx.state.path}: is hagate relay run running?"
        ) from None
    age = time.time() - data["time"]
    click.echo(f"relay {data['hostname']}: {liveness(ctx.state, age)}")
    click.echo(f"active client streams: {data['active_streams']}")
    for c in data["connectors"]:
        expires = c.get("expires")
        until = (
            f" (expires {time.strftime('%Y-%m-%d', time.gmtime(expires))})"
            if isinstance(expires, int | float)  # status files of older relays lack it
            else ""
        )
        click.echo(
            f"  connector {c['hostname']} from {c['address']} token {c['token']}{until}: "
            f"{c['streams']} open streams, {c['opened']} since connecting"
        )
    if not data["connectors"]:
        click.echo("  no connectors")
    for name, value in sorted(data["counters"].items()):
        click.echo(f"  {name}: {value}")
