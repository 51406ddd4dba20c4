"""`hagate cert` and `hagate ca`: client certificates and the authority."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from hagate.cli.base import Context, cli, pass_ctx
from hagate.credentials.bindings import Bindings
from hagate.credentials.extract import KINDS
from hagate.errors import HagateError

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
    "--admin",
    is_flag=True,
    help="It may open the console through the gateway (https://HOSTNAME/.hagate/console/).",
)
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
    admin: bool,
    pem_dir: Path | None,
) -> None:
    """Issue a client certificate named NAME, signed by hagate's CA."""
    from hagate.config import load_config
    from hagate.pki import certs
    from hagate.pki.authority import Authority, validate_name
    from hagate.pki.devices import install_instructions
    from hagate.pki.pkcs12 import build_pkcs12
    from hagate.state import CA_CERT, CLIENTS_DIR, atomic_write

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
    if admin:
        from hagate.console.access import ConsoleAccess

        ConsoleAccess(ctx.state).set_admin(record.sha256, record.name, True)
    click.echo(f"Issued:   {record.name}" + (" (admin: opens the console)" if admin else ""))
    click.echo(f"Serial:   {record.serial_hex}")
    click.echo(f"SHA-256:  {record.sha256}")
    click.echo(f"Expires:  {record.not_after.isoformat()}")
    if p12 is not None:
        kind = "legacy 3DES/SHA-1" if legacy else "AES-256/SHA-256"
        click.echo(f"Bundle:   {p12} ({kind})")
    if pem_dir is not None:
        click.echo(f"PEM:      {pem_dir / (name + '.crt')}, {pem_dir / (name + '.key')}")
    click.echo("")
    cfg = load_config(ctx.state.config_path)
    ca = None if cfg.acme is not None else ctx.state / CA_CERT
    click.echo(install_instructions(p12, pem_dir, name, cfg.hostname, ca))


@cert.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@pass_ctx
def cert_list(ctx: Context, as_json: bool) -> None:
    """Every issued certificate with its status."""
    from hagate.console.views import devices as device_list

    devices = device_list(ctx.state.require())
    if as_json:
        click.echo(json.dumps(devices, indent=2))
        return
    if not devices:
        click.echo("No certificates issued yet: hagate cert issue NAME --p12 NAME.p12")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(
        "name",
        "serial",
        "sha256",
        "not after",
        "status",
        "first used",
        "admin",
        "credentials (last use without it)",
        box=None,
    )
    for s in devices:
        table.add_row(
            s["name"],
            s["serial"],
            s["sha256"][:16] + "…",
            s["not_after"],
            s["status"],
            _first_used(s["first_used"]),
            "admin" if s["admin"] else "",
            _credentials(s["credentials"]),
        )
    Console(width=240).print(table)


def _credentials(summary: dict[str, Any]) -> str:
    """`3 (2026-12-07 10:02 from 192.0.2.7 AS3320 NL)`, or `-` when it holds none."""
    if not summary["total"]:
        return "-"
    import time

    used = summary["last_used"]
    if used is None:
        return f"{summary['total']} (not used without it yet)"
    when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(float(used)))
    where = " ".join(
        str(x)
        for x in (
            summary["last_used_ip"],
            f"AS{summary['last_used_asn']}" if summary["last_used_asn"] else None,
            summary["last_used_country"],
        )
        if x
    )
    return f"{summary['total']} ({when} from {where})"


def _first_used(facts: dict[str, object] | None) -> str:
    if not facts:
        return "never"
    import time

    when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(float(str(facts.get("time") or 0))))
    asn = f" AS{facts['asn']}" if facts.get("asn") else ""
    agent = str(facts.get("user_agent") or "")
    return f"{when}{asn} {agent[:40] + ('…' if len(agent) > 40 else '')}".rstrip()


@cert.command("admin")
@click.argument("name")
@click.argument("switch", type=click.Choice(["on", "off"]))
@pass_ctx
def cert_admin(ctx: Context, name: str, switch: str) -> None:
    """Mark NAME's certificate as admin (on: it opens the console through the gateway, at
    https://HOSTNAME/.hagate/console/) or not (off)."""
    from hagate.config import load_config
    from hagate.console.access import ConsoleAccess
    from hagate.pki.authority import Authority

    state = ctx.state.require()
    record = Authority(state).find(name)
    if switch == "on" and record.status() not in ("valid", "expiring"):
        raise HagateError(f"the certificate {record.name} is {record.status()}: issue a new one")
    ConsoleAccess(state).set_admin(record.sha256, record.name, switch == "on")
    if switch == "off":
        click.echo(f"{record.name} is no longer an admin certificate.")
        return
    cfg = load_config(state.config_path)
    click.echo(
        f"{record.name} opens the console at https://{cfg.hostname}/.hagate/console/"
        + ("" if cfg.admin is not None else " once `admin:` is in hagate.yaml (docs/console.md)")
    )


@cert.command("revoke")
@click.argument("selector", metavar="NAME|SERIAL|SHA256")
@click.option("--reason", help="Why, for your records.")
@pass_ctx
def cert_revoke(ctx: Context, selector: str, reason: str | None) -> None:
    """Revoke a certificate now; the gateway refuses it on the next request."""
    from hagate.pki.authority import Authority
    from hagate.state import CRL_NAME

    state = ctx.state.require()
    authority = Authority(state)
    held = Bindings(state).summaries().get(authority.find(selector).sha256)
    record = authority.revoke(selector, reason)
    click.echo(f"Revoked {record.name} (serial {record.serial_hex}); CRL: {ctx.state / CRL_NAME}")
    if held and held["total"]:
        click.echo(
            f"The {held['total']} Home Assistant credentials bound to it no longer let anything"
            " in (websockets opened with them are cut within a second)."
        )


@cert.command("unbind")
@click.argument("name")
@click.option(
    "--kind",
    type=click.Choice(list(KINDS)),
    help="Only credentials of this kind (default: all).",
)
@pass_ctx
def cert_unbind(ctx: Context, name: str, kind: str | None) -> None:
    """Drop the Home Assistant credentials bound to NAME's certificate: used without the
    certificate, they no longer let anything in (the device binds them again the next time it
    presents its certificate)."""
    from hagate.pki.authority import Authority

    state = ctx.state.require()
    record = Authority(state).find(name)
    dropped = Bindings(state).unbind(record.sha256, kind)
    what = f"{kind} credentials" if kind else "credentials"
    click.echo(f"Dropped {dropped} {what} bound to {record.name}.")


@cert.command("renew-server")
@pass_ctx
def cert_renew_server(ctx: Context) -> None:
    """Issue a new server certificate from hagate's CA (a running gateway takes it at once).

    With tls.acme configured the server certificate comes from the ACME CA instead: see
    hagate acme renew."""
    from hagate.config import load_config
    from hagate.pki.authority import Authority
    from hagate.pki.certs import SERVER_DAYS

    state = ctx.state.require()
    cfg = load_config(state.config_path)
    authority = Authority(state)
    with state.lock():
        authority.write_server_cert(authority.ca(), cfg.hostname)
    click.echo(f"New server certificate for {cfg.hostname}, valid {SERVER_DAYS} days.")
    if cfg.acme is not None:
        click.echo("Note: tls.acme is configured; the ACME certificate is served while valid.")


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
