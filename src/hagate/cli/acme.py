"""`hagate acme`: the server certificate from an ACME CA (Let's Encrypt): its status, and a
renewal now."""

from __future__ import annotations

import json
import time
from typing import Any

import click

from hagate.cli.base import Context, cli, pass_ctx
from hagate.errors import HagateError


@cli.group()
def acme() -> None:
    """The server certificate from an ACME CA (tls.acme in hagate.yaml, or a relay's)."""


def _days(seconds: float) -> str:
    days = seconds / 86400
    if abs(days) >= 2:
        return f"{days:.0f} days"
    hours = seconds / 3600
    return f"{hours:.1f} hours" if abs(hours) >= 1 else f"{seconds:.0f} seconds"


def status_record(ctx: Context) -> dict[str, Any]:
    from hagate.acme.renewal import renew_at
    from hagate.run.site import load_site

    site = load_site(ctx.state)
    status = site.files.status()
    cert = site.files.certificate()
    renewal = renew_at(site.name, cert)
    if status.not_before is not None and (renewal is None or status.not_before > renewal):
        renewal = max(status.not_before, renewal or 0)
    return {
        "kind": site.kind,
        "name": site.name,
        "directory": site.settings.directory,
        "certificate": None
        if cert is None
        else {
            "issuer": cert.issuer,
            "names": list(cert.names),
            "not_before": cert.not_before,
            "not_after": cert.not_after,
            "sha256": cert.sha256,
        },
        "next_renewal": renewal,
        "last_attempt": status.last_attempt,
        "last_success": status.last_success,
        "last_error": status.last_error,
        "failures": status.failures,
        "not_before": status.not_before,
        "retry_after_until": status.told_until,
        "history": status.history,
    }


@acme.command("status")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@pass_ctx
def acme_status(ctx: Context, as_json: bool) -> None:
    """Issuer, names, expiry, next renewal and the last error of the ACME certificate."""
    from hagate.acme.store import utc

    record = status_record(ctx)
    if as_json:
        click.echo(json.dumps(record, indent=2))
        return
    now = time.time()
    click.echo(f"{record['kind']} {record['name']}, ACME directory {record['directory']}")
    cert = record["certificate"]
    if cert is None:
        click.echo("  certificate:   none from the CA yet (serving hagate's own CA's meanwhile)")
    else:
        left = cert["not_after"] - now
        click.echo(f"  issuer:        {cert['issuer']}")
        click.echo(f"  names:         {', '.join(cert['names'])}")
        click.echo(
            f"  not after:     {utc(cert['not_after'])} "
            f"({'in ' + _days(left) if left > 0 else 'EXPIRED'})"
        )
    renewal = record["next_renewal"]
    click.echo(f"  next renewal:  {utc(renewal) if renewal is not None else 'as soon as it can'}")
    click.echo(f"  last attempt:  {utc(record['last_attempt'])}")
    click.echo(f"  last success:  {utc(record['last_success'])}")
    if record["last_error"]:
        click.echo(f"  last error:    {record['last_error']} ({record['failures']} in a row)")
        if record["not_before"] is not None:
            click.echo(f"  retrying:      not before {utc(record['not_before'])}")
        if cert is not None and cert["not_after"] - now < 14 * 86400:
            click.echo(
                f"  WARNING: the certificate expires in {_days(cert['not_after'] - now)} and "
                "renewing it fails: fix the error above, then run hagate acme renew"
            )


@acme.command("renew")
@click.option("--force", is_flag=True, help="Renew even if the certificate is not due yet.")
@pass_ctx
def acme_renew(ctx: Context, force: bool) -> None:
    """Renew the certificate now (when due, or with --force). The CA checks the name by
    connecting to it, so the gateway (or relay) must be running."""
    from hagate.acme.renewal import Outcome, renew
    from hagate.run.site import load_site

    site = load_site(ctx.state)
    if not _running(ctx, site.kind):
        what = "hagate serve or hagate connect" if site.kind == "gateway" else "hagate relay run"
        raise HagateError(
            f"nothing is answering for {site.name}: the CA validates the name by connecting to "
            f"it, so start {what} first (it renews by itself while it runs)"
        )
    attempt = renew(
        site.files, site.settings, site.name, force=force, say=lambda t: click.echo(t, err=True)
    )
    if site.kind == "gateway" and attempt.outcome in (Outcome.RENEWED, Outcome.FAILED):
        _record(ctx, attempt.outcome is Outcome.RENEWED, attempt.message, site.name)
    if attempt.outcome is Outcome.FAILED:
        raise HagateError(
            f"renewal failed, the current certificate keeps serving: {attempt.message}"
        )
    if attempt.outcome is Outcome.WAITING:
        raise HagateError(attempt.message)
    click.echo(
        attempt.message + ("; --force renews anyway" if attempt.outcome is Outcome.NOT_DUE else "")
    )


def _running(ctx: Context, kind: str) -> bool:
    if kind == "gateway":
        from hagate import pidfile

        return pidfile.running(ctx.state) is not None
    from hagate.tunnel.relaystate import STATUS

    try:
        data = json.loads((ctx.state / STATUS).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and time.time() - float(data.get("time", 0)) < 5


def _record(ctx: Context, renewed: bool, message: str, name: str) -> None:
    import os

    from hagate.events.store import EVENTS_NAME, append

    append(
        ctx.state / EVENTS_NAME,
        {
            "time": time.time(),
            "request_id": f"acme-{os.getpid()}",
            "sni": name,
            "action": "acme_renewed" if renewed else "acme_error",
            "reason": message,
        },
    )
