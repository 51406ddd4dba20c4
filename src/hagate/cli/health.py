"""`hagate health`: one line on what runs on the state directory; exit status 1 when it is
not healthy (a container's HEALTHCHECK runs it)."""

from __future__ import annotations

import sys

import click

from hagate.cli.base import Context, cli, pass_ctx


@cli.command()
@pass_ctx
def health(ctx: Context) -> None:
    """Whether the gateway (or the relay) on this state directory runs and does its job:
    status files fresh, a connector linked to a relay. Exit status 1 when not."""
    from hagate.watch.health import check

    result = check(ctx.state)
    click.echo(("healthy: " if result.ok else "unhealthy: ") + result.words)
    sys.exit(0 if result.ok else 1)
