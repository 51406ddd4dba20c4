"""`hagate cert enrol`: a certificate onto a device in one scan (a one-time link and its QR
code, which the gateway answers with the right file for the device)."""

from __future__ import annotations

import re
import time

import click

from hagate.cli.base import Context, pass_ctx
from hagate.cli.certs import cert
from hagate.enrol.platform import DEVICE_NAMES
from hagate.errors import HagateError

_TTL = re.compile(r"(\d+)\s*([smh]?)")


def parse_ttl(text: str) -> float:
    m = _TTL.fullmatch(text.strip())
    if not m:
        raise HagateError(f"bad --ttl {text!r}: expected a duration like 10m, 90s or 1h")
    seconds = int(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]
    if not 5 <= seconds <= 86400:
        raise HagateError(f"--ttl must be between 5s and 24h, not {text}")
    return float(seconds)


def _pairs(sha256: str) -> str:
    return ":".join(sha256[i : i + 2] for i in range(0, len(sha256), 2)).upper()


@cert.command("enrol")
@click.argument("name")
@click.option(
    "--device",
    type=click.Choice(DEVICE_NAMES),
    default="auto",
    show_default=True,
    help="The file to offer; auto: as the device's browser says.",
)
@click.option("--ttl", default="10m", show_default=True, help="How long the link works.")
@click.option(
    "--url",
    "base_url",
    default=None,
    help="The gateway's address as the device reaches it (default: https://HOSTNAME).",
)
@click.option("--wait", is_flag=True, help="Wait until the device has connected with it.")
@pass_ctx
def cert_enrol(
    ctx: Context, name: str, device: str, ttl: str, base_url: str | None, wait: bool
) -> None:
    """Issue (or re-issue) NAME and print a one-time link and QR code to open on the device."""
    import segno

    from hagate.enrol.issue import enrol, wait_for_first_use

    seconds = parse_ttl(ttl)
    if base_url is not None and not re.fullmatch(r"https://[^/\s?#]+", base_url.rstrip("/")):
        raise HagateError(f"bad --url {base_url!r}: expected https://HOST[:PORT]")
    link = enrol(ctx.state.require(), name, None if device == "auto" else device, seconds, base_url)
    if link.replaced is not None:
        click.echo(
            f"The earlier certificate {name} (serial {link.replaced.serial_hex}) is revoked: "
            "the device that had it uses the new one once it is installed."
        )
    click.echo(f"Open this on the device (or scan it), within {ttl}, once:\n")
    segno.make(link.url, error="m").terminal(compact=True)
    click.echo(f"\n  {link.url}\n")
    click.echo(f"Bundle password (type it on the device; it is not stored): {link.password}")
    server = link.enrolment.server_sha256
    if server:
        click.echo(
            "The device will warn about the site's certificate (it is signed by your hagate CA, "
            "not a public one). Go on only if the page shows this SHA-256:\n  " + _pairs(server)
        )
    if not wait:
        return
    click.echo("Waiting for the device to connect with it (Ctrl-C to stop waiting)...")
    facts = wait_for_first_use(ctx.state, link, say=click.echo)
    if facts is None:
        raise HagateError("the link was not used in time; run hagate cert enrol again")
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(float(str(facts.get("time", 0)))))
    click.echo(
        f"enrolled: {name} first used {when} from AS{facts.get('asn') or '?'} "
        f"({facts.get('user_agent') or 'no user agent'})"
    )
