"""`hagate console`: the console's password, one-time sign-in links, API tokens, sessions."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from hagate.cli.base import Context, cli, pass_ctx
from hagate.errors import HagateError


@cli.group()
def console() -> None:
    """The web console on the admin listener: who may sign in, and API tokens."""


def _console_url(ctx: Context) -> str:
    from hagate.config import load_config, parse_listen

    cfg = load_config(ctx.state.require().config_path)
    if cfg.admin is None:
        raise HagateError(
            "the console is served on the admin listener, which is off: add `admin: {}` to "
            f"{ctx.state.config_path} (loopback, port 9464) and restart hagate"
        )
    host, port = parse_listen(cfg.admin.listen)
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    return f"http://{'[' + host + ']' if ':' in host else host}:{port}/console/"


@console.command("password")
@click.option(
    "--password-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Read the password from this file's first line instead of asking.",
)
@pass_ctx
def console_password(ctx: Context, password_file: Path | None) -> None:
    """Set the console password (stored as a slow hash); signs out every session."""
    from hagate.console.access import ConsoleAccess, check_new_password

    state = ctx.state.require()
    if password_file is not None:
        try:
            password = password_file.read_text(encoding="utf-8").splitlines()[0]
        except (OSError, UnicodeDecodeError, IndexError) as e:
            raise HagateError(f"cannot read a password from {password_file}: {e}") from None
    elif sys.stdin.isatty():
        password = click.prompt(
            "Console password", hide_input=True, confirmation_prompt=True, err=True
        )
    else:
        raise HagateError("give --password-file when hagate is not run on a terminal")
    check_new_password(password)
    ConsoleAccess(state).set_password(password)
    click.echo(f"Console password set; every session was signed out. Sign in at {_url(ctx)}")


def _url(ctx: Context) -> str:
    try:
        return _console_url(ctx)
    except HagateError:
        return "the console (add `admin: {}` to hagate.yaml first)"


@console.command("link")
@click.option("--ttl", default="10m", show_default=True, help="How long the link works.")
@pass_ctx
def console_link(ctx: Context, ttl: str) -> None:
    """Print a one-time sign-in link (single use, minutes)."""
    from hagate.cli.enrol import parse_ttl
    from hagate.console.access import ConsoleAccess

    base = _console_url(ctx)
    seconds = parse_ttl(ttl)
    secret = ConsoleAccess(ctx.state).create_link(min(seconds, 3600.0))
    click.echo(f"Open this within {ttl}, once, in a browser on this machine:\n")
    click.echo(f"  {base}link/{secret}\n")


@console.command("sign-out-all")
@pass_ctx
def console_sign_out_all(ctx: Context) -> None:
    """End every console session now."""
    from hagate.console.access import ConsoleAccess

    n = ConsoleAccess(ctx.state.require()).end_all_sessions()
    click.echo(f"Ended {n} session(s).")


@console.group("token")
def token() -> None:
    """Bearer tokens for the console's API (/api/v1/)."""


@token.command("create")
@click.argument("name")
@click.option(
    "--days",
    type=click.IntRange(1, 3650),
    default=None,
    help="Valid this long (default: until revoked).",
)
@pass_ctx
def token_create(ctx: Context, name: str, days: int | None) -> None:
    """Make a token named NAME; it is printed once and stored only as a digest."""
    from hagate.console.access import ConsoleAccess

    lifetime = None if days is None else days * 86400.0
    secret = ConsoleAccess(ctx.state.require()).create_token(name, lifetime=lifetime)
    click.echo(secret)
    click.echo(
        f"That is the API token {name!r}: it is shown only now. Send it as"
        " `Authorization: Bearer TOKEN`; revoke it with"
        f" `hagate console token revoke {name}`.",
        err=True,
    )


@token.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def token_list(ctx: Context, as_json: bool) -> None:
    """Every token with when it was made and last used."""
    from hagate.console.access import ConsoleAccess

    tokens = ConsoleAccess(ctx.state.require()).tokens()
    if as_json:
        click.echo(json.dumps([t.to_json() for t in tokens], indent=2))
        return
    if not tokens:
        click.echo("No API tokens: hagate console token create NAME")
        return
    from datetime import datetime

    def when(t: float | None) -> str:
        return datetime.fromtimestamp(t).astimezone().strftime("%Y-%m-%d %H:%M") if t else "never"

    for t in tokens:
        status = t.status()
        if t.revoked:
            status = f"revoked {when(t.revoked)}"
        elif t.expires is not None:
            status = (
                f"{status} (expires {when(t.expires)})"
                if status == "valid"
                else (f"expired {when(t.expires)}")
            )
        click.echo(f"{t.name:<24} made {when(t.created)}  last used {when(t.last_used)}  {status}")


@token.command("revoke")
@click.argument("name")
@pass_ctx
def token_revoke(ctx: Context, name: str) -> None:
    """Revoke the token NAME; it stops working at once."""
    from hagate.console.access import ConsoleAccess

    ConsoleAccess(ctx.state.require()).revoke_token(name)
    click.echo(f"Revoked the API token {name!r}.")
