"""`hagate geoip`: keep the ASN and country databases current."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from hagate.cli.base import Context, cli, pass_ctx
from hagate.errors import HagateError


@cli.group()
def geoip() -> None:
    """The GeoIP databases (ASN, country) that rules and the event log use."""


@geoip.command("update")
@click.option(
    "--source",
    default="dbip",
    show_default=True,
    help="dbip (DB-IP Lite, no account), maxmind (GeoLite2, --license-key), or a URL"
    " with {db} in it.",
)
@click.option("--license-key", default=None, envvar="MAXMIND_LICENSE_KEY", help="For maxmind.")
@click.option("--only", type=click.Choice(["asn", "country"]), default=None)
@pass_ctx
def geoip_update(ctx: Context, /, source: str, license_key: str | None, only: str | None) -> None:
    """Download the current databases, check them, and swap them in (running gateways and
    relays pick them up by themselves). A failed download leaves the old files in place."""
    from hagate import config
    from hagate.configedit import set_geoip_paths
    from hagate.geodata import KINDS, source_urls, update_one

    state = ctx.state.require()
    cfg = config.load_config(state.config_path)
    urls = source_urls(source, license_key)
    kinds = [only] if only else list(KINDS)
    configured = {"asn": cfg.asn_db, "country": cfg.country_db}
    targets = {k: Path(configured[k] or state / "geoip" / f"{k}.mmdb").expanduser() for k in kinds}
    progress, finish = _progress()
    done, failed = [], []
    try:
        for kind in kinds:
            try:
                done.append(update_one(kind, urls[kind], targets[kind], progress))
            except HagateError as e:
                failed.append(f"{kind}: {e}".replace(f"{kind}: {kind}: ", f"{kind}: "))
    finally:
        finish()
    for u in done:
        click.echo(f"{u.kind}: {u.path} ({u.database_type}, built {u.built}, {u.size:,} bytes)")
    new_keys = {k: str(targets[k]) for k in (u.kind for u in done) if not configured[k]}
    if new_keys:
        set_geoip_paths(state.config_path, new_keys)
        click.echo(
            f"Set geoip: {', '.join(f'{k}_db' for k in new_keys)} in {state.config_path};"
            " restart or reload the gateway to start using them"
        )
    if failed:
        raise HagateError("; ".join(failed) + " (the old file, if any, is unchanged)")


def _progress() -> tuple[Any, Any]:
    """A progress bar on a terminal; nothing otherwise."""
    if not sys.stderr.isatty():
        return None, lambda: None
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        transient=True,
    )
    bar.start()
    tasks: dict[str, Any] = {}

    def step(kind: str, done: int, total: int | None) -> None:
        if kind not in tasks:
            tasks[kind] = bar.add_task(kind, total=total)
        bar.update(tasks[kind], completed=done, total=total)

    return step, bar.stop
