"""The `hagate` command line: parses arguments and calls into the components, nothing more."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from hagate import __version__, config
from hagate.errors import HagateError
from hagate.state import StateDir, default_state_dir

F = TypeVar("F", bound=Callable[..., Any])


class Context:
    def __init__(self, state_dir: Path) -> None:
        self.state = StateDir(state_dir)


pass_ctx = click.make_pass_decorator(Context)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="HAGATE_STATE_DIR",
    default=None,
    help="State directory (default: $XDG_DATA_HOME/hagate, i.e. ~/.local/share/hagate).",
)
@click.version_option(__version__, prog_name="hagate")
@click.pass_context
def cli(ctx: click.Context, state_dir: Path | None) -> None:
    """hagate: remote access and Alexa for Home Assistant, behind client certificates."""
    ctx.obj = Context(state_dir or default_state_dir())


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


# -- cert ---------------------------------------------------------------------------------


@cli.group()
def cert() -> None:
    """Client certificates: issue, list, revoke."""


def _read_password(password_file: Path | None) -> bytes:
    if password_file is not None:
        try:
            text = password_file.read_bytes()
        except OSError as e:
            raise HagateError(f"cannot read password file {password_file}: {e.strerror}") from e
        password = text.removesuffix(b"\n").removesuffix(b"\r")
        if not password:
            raise HagateError(f"the password in {password_file} is empty")
        return password
    if not sys.stdin.isatty():
        raise HagateError("--p12 needs --password-file when hagate is not run on a terminal")
    entered: str = click.prompt(
        "Password for the bundle", hide_input=True, confirmation_prompt=True, err=True
    )
    if not entered:
        raise HagateError("the password is empty")
    return entered.encode()


@cert.command("issue")
@click.argument("name")
@click.option("--days", type=int, default=825, show_default=True, help="Validity in days.")
@click.option(
    "--p12", "p12", type=click.Path(dir_okay=False, path_type=Path), help="Write a PKCS#12 bundle."
)
@click.option(
    "--password-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Bundle password (first line).",
)
@click.option("--legacy", is_flag=True, help="3DES/SHA-1 bundle for older Android, Windows, Apple.")
@click.option(
    "--pem-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write NAME.crt and NAME.key here.",
)
@pass_ctx
def cert_issue(
    ctx: Context,
    name: str,
    days: int,
    p12: Path | None,
    password_file: Path | None,
    legacy: bool,
    pem_dir: Path | None,
) -> None:
    """Issue a client certificate named NAME, signed by hagate's CA."""
    from hagate.pki import certs
    from hagate.pki.authority import Authority, validate_name
    from hagate.pki.devices import install_instructions
    from hagate.pki.pkcs12 import build_pkcs12
    from hagate.state import CLIENTS_DIR, atomic_write

    ctx.state.require()
    validate_name(name)
    password = _read_password(password_file) if p12 is not None else None
    if p12 is None and pem_dir is None:
        pem_dir = ctx.state.subdir(CLIENTS_DIR)
    for target in (p12.parent if p12 else None, pem_dir):
        if target is not None and target != ctx.state / CLIENTS_DIR:
            try:
                target.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise HagateError(f"cannot create {target}: {e.strerror}") from e
    authority = Authority(ctx.state)
    issued, record = authority.issue(name, days)
    try:
        if p12 is not None and password is not None:
            bundle = build_pkcs12(
                name, issued.key, issued.cert, authority.ca_cert(), password, legacy
            )
            atomic_write(p12, bundle, mode=0o600)
        if pem_dir is not None:
            atomic_write(pem_dir / f"{name}.key", certs.key_pem(issued.key), mode=0o600)
            atomic_write(pem_dir / f"{name}.crt", certs.cert_pem(issued.cert), mode=0o644)
    except OSError as e:
        raise HagateError(
            f"certificate {name!r} was issued but writing it failed: {e}; "
            f"revoke it (hagate cert revoke {record.serial_hex}) and issue again"
        ) from e
    click.echo(f"Issued:   {record.name}")
    click.echo(f"Serial:   {record.serial_hex}")
    click.echo(f"SHA-256:  {record.sha256}")
    click.echo(f"Expires:  {record.not_after.isoformat()}")
    if p12 is not None:
        kind = "legacy 3DES/SHA-1" if legacy else "AES-256/SHA-256"
        click.echo(f"Bundle:   {p12} ({kind})")
    if pem_dir is not None:
        click.echo(f"PEM:      {pem_dir / (name + '.crt')}, {pem_dir / (name + '.key')}")
    click.echo("")
    click.echo(install_instructions(p12, pem_dir, name))


@cert.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@pass_ctx
def cert_list(ctx: Context, as_json: bool) -> None:
    """Every issued certificate with its status."""
    from hagate.pki.authority import Authority

    records = Authority(ctx.state.require()).records()
    if as_json:
        click.echo(json.dumps([r.summary() for r in records], indent=2))
        return
    if not records:
        click.echo("No certificates issued yet: hagate cert issue NAME --p12 NAME.p12")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("name", "serial", "sha256", "not after", "status", box=None)
    for r in records:
        s = r.summary()
        table.add_row(s["name"], s["serial"], s["sha256"][:16] + "…", s["not_after"], s["status"])
    Console(width=200).print(table)


@cert.command("revoke")
@click.argument("selector", metavar="NAME|SERIAL|SHA256")
@click.option("--reason", help="Why, for your records.")
@pass_ctx
def cert_revoke(ctx: Context, selector: str, reason: str | None) -> None:
    """Revoke a certificate now; the gateway refuses it on the next request."""
    from hagate.pki.authority import Authority
    from hagate.state import CRL_NAME

    record = Authority(ctx.state.require()).revoke(selector, reason)
    click.echo(f"Revoked {record.name} (serial {record.serial_hex}); CRL: {ctx.state / CRL_NAME}")


# -- ca -----------------------------------------------------------------------------------


@cli.group()
def ca() -> None:
    """The certificate authority."""


@ca.command("export")
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), help="File (default: stdout)."
)
@pass_ctx
def ca_export(ctx: Context, out: Path | None) -> None:
    """The CA certificate in PEM."""
    from hagate.pki.authority import Authority
    from hagate.pki.certs import cert_pem
    from hagate.state import atomic_write

    pem = cert_pem(Authority(ctx.state.require()).ca_cert())
    if out is None:
        click.echo(pem.decode(), nl=False)
    else:
        try:
            atomic_write(out, pem)
        except OSError as e:
            raise HagateError(f"cannot write {out}: {e.strerror}") from e
        click.echo(f"CA certificate written to {out}", err=True)


# -- serve --------------------------------------------------------------------------------


@cli.command()
@click.option("--listen", default=None, help="HOST:PORT (default: listen in hagate.yaml).")
@click.option(
    "--workers",
    type=click.IntRange(1, 256),
    default=None,
    help="Worker processes (default: one per core).",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="One line per request on stdout.",
)
@pass_ctx
def serve(ctx: Context, listen: str | None, workers: int | None, log_format: str) -> None:
    """Run the gateway in port-forward mode: TLS, client certificates, rules, proxy to HA."""
    import os

    from hagate.gateway.runner import serve as run

    if listen is not None:
        config.parse_listen(listen)
    run(ctx.state.require(), listen, workers or os.cpu_count() or 1, log_format)


# -- tunnel -------------------------------------------------------------------------------


@cli.group()
def relay() -> None:
    """The public relay (on a VPS): routes raw TLS by name to connectors at home."""


@relay.command("init")
@click.option("--hostname", required=True, help="The relay's own public DNS name.")
@pass_ctx
def relay_init(ctx: Context, hostname: str) -> None:
    """Create the relay's token-signing key and its TLS certificate."""
    from hagate.tunnel.relaystate import RelayState

    rs = RelayState.initialise(ctx.state, hostname)
    click.echo(f"Relay {rs.hostname}, state in {ctx.state.path}")
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
@pass_ctx
def relay_run(
    ctx: Context,
    listen: str,
    rules_file: Path | None,
    asn_db: str | None,
    country_db: str | None,
    max_per_ip: int,
    rate_per_ip: int,
) -> None:
    """Run the relay."""
    from hagate.tunnel.admission import load_admission
    from hagate.tunnel.relay import Limits, run_relay

    admit = load_admission(rules_file, asn_db, country_db) if rules_file else None
    run_relay(ctx.state, config.parse_listen(listen), admit, Limits(max_per_ip, rate_per_ip))


@relay.command("status")
@pass_ctx
def relay_status(ctx: Context) -> None:
    """Connectors, streams and drop counters of the running relay."""
    import time

    from hagate.tunnel.relaystate import STATUS

    try:
        data = json.loads((ctx.state / STATUS).read_text())
    except FileNotFoundError:
        raise HagateError(
            f"no relay status in {ctx.state.path}: is hagate relay run running?"
        ) from None
    age = time.time() - data["time"]
    click.echo(
        f"relay {data['hostname']} (status {age:.0f}s old{'; not running?' if age > 5 else ''})"
    )
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
@click.option("--relay-fingerprint", default=None, help="Pin the relay's certificate by SHA-256.")
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
    workers: int,
    log_format: str,
) -> None:
    """Run the gateway at home behind relays: nothing listens, the connector dials out."""
    from hagate.gateway.runner import load_setup
    from hagate.tunnel.connector import RelayAddress, run_connect

    addresses = [RelayAddress.parse(r) for r in relays]
    state = ctx.state.require()
    setup = load_setup(state)  # fail here, before any worker, on a broken config
    click.echo(
        f"hagate: gateway for {setup.config.hostname} behind "
        f"{', '.join(map(str, addresses))} -> {setup.config.upstream}, {workers} worker(s)",
        err=True,
    )
    run_connect(state, addresses, token, relay_fingerprint, log_format, workers)


# -- rules --------------------------------------------------------------------------------


@cli.group()
def rules() -> None:
    """Rules in the Cloudflare Rules language: check, evaluate, explain."""


def _config_lists(ctx: Context) -> tuple[dict[str, list[Any]], Any]:
    """Named lists from the config, when there is one."""
    if not ctx.state.config_path.exists():
        return {}, None
    cfg = config.load_config(ctx.state.config_path)
    return cfg.lists, cfg.source


@rules.command("check")
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@pass_ctx
def rules_check(ctx: Context, file: Path | None) -> None:
    """Validate the configured rules, or FILE (YAML list of rules, or .txt: one per line)."""
    from hagate.rules.ruleset import ruleset_from_config, ruleset_from_file

    try:
        if file is None:
            cfg = config.load_config(ctx.state.require().config_path)
            ruleset = ruleset_from_config(cfg)
            where = str(ctx.state.config_path)
        else:
            lists, src = _config_lists(ctx)
            ruleset = ruleset_from_file(file, lists, src)
            where = str(file)
    except HagateError as e:
        click.echo(str(e), err=True)
        sys.exit(2)
    n, m = len(ruleset.rules), len(ruleset.rate_limits)
    extra = f", {m} rate limiting rule(s)" if m else ""
    click.echo(f"{where}: {n} rule(s){extra}, all valid")


@rules.command("eval")
@click.argument("expression")
@click.option(
    "--fields",
    "fields_json",
    default="{}",
    show_default=True,
    help='Field values as JSON, e.g. \'{"ip.src": "192.0.2.1"}\'.',
)
@pass_ctx
def rules_eval(ctx: Context, expression: str, fields_json: str) -> None:
    """Evaluate EXPRESSION against field values; prints true or false."""
    from hagate.rules.compiler import compile_expression
    from hagate.rules.parser import parse_expression
    from hagate.rules.request import fields_from_json
    from hagate.rules.ruleset import load_lists

    try:
        data = json.loads(fields_json)
    except ValueError as e:
        raise HagateError(f"--fields is not valid JSON: {e}") from None
    values = fields_from_json(data)
    lists, src = _config_lists(ctx)
    defs = load_lists(lists, src) if lists else {}
    try:
        tree = parse_expression(expression, defs)
    except HagateError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(2)
    click.echo("true" if compile_expression(tree, defs)(values) else "false")


@rules.command("explain")
@click.option("--ip", "client_ip", required=True, help="Client address.")
@click.option("--ua", default="", help="User-Agent.")
@click.option("--path", "target", default="/", show_default=True, help="Path and query.")
@click.option("--method", default="GET", show_default=True)
@click.option("--host", default=None, help="Host (default: the configured hostname).")
@click.option("--header", "headers", multiple=True, metavar="NAME:VALUE", help="Repeatable.")
@click.option("--cert", "cert_name", default=None, help="Present this issued certificate.")
@click.option("--no-cert", is_flag=True, help="Present no certificate (the default).")
@pass_ctx
def rules_explain(
    ctx: Context,
    client_ip: str,
    ua: str,
    target: str,
    method: str,
    host: str | None,
    headers: tuple[str, ...],
    cert_name: str | None,
    no_cert: bool,
) -> None:
    """Show how the configured rules decide a request like this one."""
    import ipaddress

    from hagate.geoip import GeoIP
    from hagate.pki.authority import Authority
    from hagate.rules.explain import render
    from hagate.rules.request import certificate_fields, request_fields
    from hagate.rules.ruleset import ruleset_from_config
    from hagate.rules.types import to_bytes_str

    if cert_name and no_cert:
        raise HagateError("--cert and --no-cert exclude each other")
    cfg = config.load_config(ctx.state.require().config_path)
    ruleset = ruleset_from_config(cfg)
    try:
        ip = ipaddress.ip_address(client_ip)
    except ValueError:
        raise HagateError(f"--ip {client_ip!r} is not an IP address") from None
    header_list: list[tuple[str, str]] = []
    for h in headers:
        name, sep, value = h.partition(":")
        if not sep or not name.strip():
            raise HagateError(f"--header {h!r}: expected NAME:VALUE")
        header_list.append((name.strip(), value.strip()))
    host = host or cfg.hostname
    if ua:
        header_list.append(("User-Agent", ua))
    header_list.insert(0, ("Host", host))
    geo = GeoIP(cfg.asn_db, cfg.country_db).lookup(ip)
    tls: dict[str, Any] = {}
    cert_text = "no certificate"
    if cert_name:
        authority = Authority(ctx.state)
        record = authority.find(cert_name)
        status = record.status()
        tls = certificate_fields(
            authority.certificate(record),
            verified=status in ("valid", "expiring"),
            revoked=record.revoked,
            issuer=authority.ca_cert(),
        )
        cert_text = f"certificate {record.name} ({status})"
    values = request_fields(
        client_ip=ip,
        method=method,
        host=to_bytes_str(host),
        target=to_bytes_str(target),
        headers=[(to_bytes_str(k), to_bytes_str(v)) for k, v in header_list],
        asn=geo.asn,
        country=geo.country,
        continent=geo.continent,
        tls=tls,
    )
    where = f"AS{geo.asn}" if geo.asn else "ASN unknown"
    if geo.country:
        where += f", {geo.country}"
    request_line = f"Request: {method} https://{host}{target} from {ip} ({where}), {cert_text}"
    outcomes, decision = ruleset.explain(values)
    click.echo(render(outcomes, decision, request_line))


def main(argv: list[str] | None = None) -> None:
    """Console entry point: user mistakes become one line on stderr, never a traceback."""
    try:
        cli.main(args=argv, prog_name="hagate", standalone_mode=False)
    except HagateError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
