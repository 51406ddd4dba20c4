"""`hagate rules`: check, evaluate and explain rules."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from hagate import config
from hagate.cli.base import Context, cli, pass_ctx
from hagate.errors import HagateError

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

    cfg = None
    try:
        if file is None:
            cfg = config.load_config(ctx.state.require().config_path)
            ruleset = ruleset_from_config(cfg)
            where = str(ctx.state.config_path)
        else:
            if ctx.state.config_path.exists():
                cfg = config.load_config(ctx.state.config_path)
            ruleset = ruleset_from_file(file, cfg.lists if cfg else {}, cfg.source if cfg else None)
            where = str(file)
    except HagateError as e:
        click.echo(str(e), err=True)
        sys.exit(2)
    n, m = len(ruleset.rules), len(ruleset.rate_limits)
    extra = f", {m} rate limiting rule(s)" if m else ""
    click.echo(f"{where}: {n} rule(s){extra}, all valid")
    if cfg is not None:
        from hagate.watch.rulecheck import GEOIP_FIX, geoip_gap_text, geoip_gaps

        gaps = geoip_gaps(ruleset, cfg.geoip_databases)
        for rule, missing in gaps:
            click.echo(f"warning: {geoip_gap_text(rule, missing)}", err=True)
        if gaps:
            click.echo(f"  {GEOIP_FIX}", err=True)


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
    from hagate.rules.request import issued_certificate_fields, request_fields
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
        tls = issued_certificate_fields(authority, record)
        cert_text = f"certificate {record.name} ({record.status()})"
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
