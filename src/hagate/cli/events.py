"""`hagate events`: read the event log (list, top, export, tail)."""

from __future__ import annotations

import csv
import json
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from hagate.cli.base import Context, cli, pass_ctx
from hagate.errors import HagateError
from hagate.events.store import ACTIONS

F = TypeVar("F", bound=Callable[..., Any])


def filters(fn: F) -> F:
    """The filter options every `hagate events` command takes."""
    options = [
        click.option("--since", help="24h, 7d, 30m, 2w, or an ISO date/time."),
        click.option("--until", help="As --since."),
        click.option(
            "--action",
            type=click.Choice(ACTIONS),
        ),
        click.option("--ip", help="An address or a network (CIDR)."),
        click.option("--asn", type=click.IntRange(0), help="The client's AS number."),
        click.option("--country", help="ISO country code, e.g. NL."),
        click.option("--path-prefix", help="Paths that start with this."),
        click.option("--rule", help="Rules whose description contains this."),
        click.option("--cert", help="Requests with this certificate (by name)."),
        click.option("--status", type=click.IntRange(100, 599)),
        click.option("--ua", help="User agents that contain this."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _filter(options: dict[str, Any], default_since: str | None = None) -> Any:
    from hagate.review.query import EventFilter, parse_network, parse_time

    since = options.get("since") or default_since
    return EventFilter(
        since=parse_time(since) if since else None,
        until=parse_time(options["until"]) if options.get("until") else None,
        action=options.get("action"),
        network=parse_network(options["ip"]) if options.get("ip") else None,
        asn=options.get("asn"),
        country=options.get("country"),
        path_prefix=options.get("path_prefix"),
        rule=options.get("rule"),
        cert=options.get("cert"),
        status=options.get("status"),
        ua=options.get("ua"),
    )


def _log(ctx: Context) -> Any:
    from hagate.events.store import EVENTS_NAME
    from hagate.review.query import has_events, open_log

    path = ctx.state.require() / EVENTS_NAME
    db = open_log(path)
    if not has_events(db):  # the writer has only just made the file
        db.close()
        raise HagateError(f"no events in {path} yet: they appear once the gateway has a request")
    return db


def _geoip(ctx: Context) -> Any:
    from hagate import config
    from hagate.geoip import GeoIP

    if not ctx.state.config_path.exists():
        return GeoIP()
    cfg = config.load_config(ctx.state.config_path)
    return GeoIP(cfg.asn_db, cfg.country_db)


def _console() -> Any:
    """A terminal's own width; piped output is not folded to 80 columns."""
    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=220)


def _when(t: float) -> str:
    return datetime.fromtimestamp(t).astimezone().strftime("%Y-%m-%d %H:%M:%S")


@cli.group(invoke_without_command=True)
@filters
@click.option("--limit", type=click.IntRange(1, 100000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="JSON lines with every column.")
@click.pass_context
def events(click_ctx: click.Context, /, limit: int, as_json: bool, **options: Any) -> None:
    """The event log, newest first; `top`, `export` and `tail` below."""
    if click_ctx.invoked_subcommand is not None:
        return
    from hagate.review.query import recent

    ctx = click_ctx.find_object(Context)
    assert ctx is not None
    db = _log(ctx)
    try:
        found = recent(db, _filter(options), limit)
    finally:
        db.close()
    if as_json:
        for row in found:
            click.echo(json.dumps(row))
        return
    from rich.table import Table

    table = Table(box=None, pad_edge=False, show_edge=False)
    for name in ("time", "client", "request", "status", "action", "rule / reason", "cert"):
        table.add_column(name, overflow="fold")
    for r in found:
        client = r["client_ip"] or ""
        if r["asn"]:
            client += f" AS{r['asn']}"
        if r["country"]:
            client += f" {r['country']}"
        request = f"{r['method'] or ''} {r['path'] or ''}".strip()
        table.add_row(
            _when(r["time"]),
            client,
            request,
            str(r["status"] or ""),
            r["action"],
            r["rule"] or r["reason"] or "",
            r["cert_name"] or "",
        )
    _console().print(table)
    if not found:
        click.echo("no events match", err=True)


TOP_KEY_WIDTH = 60


@events.command("top")
@click.option(
    "--by",
    "by",
    default="ip",
    show_default=True,
    type=click.Choice(["asn", "country", "ip", "path", "ua", "rule", "cert", "status"]),
    help="The field to count by (the sources, unless told).",
)
@filters
@click.option("--limit", type=click.IntRange(1, 10000), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def events_top(ctx: Context, /, by: str, limit: int, as_json: bool, **options: Any) -> None:
    """Counts of the matching events by one field, with AS and country names."""
    from hagate.review.query import top

    db = _log(ctx)
    try:
        counts = top(db, _filter(options), by, limit)
    finally:
        db.close()
    geo = _geoip(ctx) if by in ("asn", "country", "ip") else None
    out = []
    for c in counts:
        org, country = geo.describe(c.sample_ip) if geo is not None and c.sample_ip else ("", "")
        entry: dict[str, Any] = {by: c.key, "count": c.count, "last": c.last}
        if by in ("asn", "ip") and org:
            entry["as_name"] = org
        if by in ("country", "ip") and country:
            entry["country_name"] = country
        out.append(entry)
    if as_json:
        for entry in out:
            click.echo(json.dumps(entry))
        return
    from rich.table import Table

    named = by in ("asn", "country", "ip")  # with the network's or the country's name
    table = Table(box=None, pad_edge=False, show_edge=False)
    table.add_column("count", justify="right")
    # A long path or user agent folds: it does not widen every row to its length.
    table.add_column(by, overflow="fold", max_width=TOP_KEY_WIDTH)
    if named:
        table.add_column("", overflow="fold", max_width=TOP_KEY_WIDTH)
    table.add_column("last seen")
    for e in out:
        key = e[by]
        label = (
            f"AS{key}"
            if by == "asn" and key is not None
            else ("(none)" if key is None else str(key))
        )
        name = [e.get("as_name") or e.get("country_name") or ""] if named else []
        table.add_row(str(e["count"]), label, *name, _when(e["last"]))
    _console().print(table)


@events.command("export")
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="jsonl", show_default=True
)
@filters
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Default: stdout.")
@pass_ctx
def events_export(ctx: Context, /, fmt: str, out: Path | None, **options: Any) -> None:
    """Every matching event, oldest first, as CSV or JSON lines."""
    from hagate.events.store import COLUMNS
    from hagate.review.query import rows

    db = _log(ctx)
    try:
        stream = out.open("w", newline="", encoding="utf-8") if out else sys.stdout
    except OSError as e:
        db.close()
        raise HagateError(f"cannot write {out}: {e.strerror}") from e
    n = 0
    try:
        writer = csv.writer(stream) if fmt == "csv" else None
        if writer is not None:
            writer.writerow(("id", *COLUMNS))
        for row in rows(db, _filter(options)):
            if writer is not None:
                writer.writerow([row["id"], *(row[c] for c in COLUMNS)])
            else:
                stream.write(json.dumps(row) + "\n")
            n += 1
    finally:
        db.close()
        if out:
            stream.close()
    if out:
        click.echo(f"{n} events written to {out}", err=True)


@events.command("tail")
@filters
@click.option("--json", "as_json", is_flag=True)
@click.option("--interval", type=click.FloatRange(0.1, 60), default=0.5, show_default=True)
@pass_ctx
def events_tail(ctx: Context, /, as_json: bool, interval: float, **options: Any) -> None:
    """Follow new events as they land (as tail -f); Ctrl-C stops."""
    from dataclasses import replace

    from hagate.events.logline import line_maker
    from hagate.review.query import last_id, rows

    line = line_maker("json" if as_json else "text")
    db = _log(ctx)
    base = _filter(options)
    seen = last_id(db)
    try:
        while True:
            for row in rows(db, replace(base, after_id=seen)):
                seen = row["id"]
                click.echo(line(row), nl=False)
            sys.stdout.flush()
            time.sleep(interval)
    except KeyboardInterrupt:
        pass
    finally:
        db.close()


@events.command("suggest")
@click.option("--since", default="30d", show_default=True, help="The evidence's period.")
@click.option("--apply", "apply_n", type=click.IntRange(1), help="Apply suggestion N.")
@click.option(
    "--relay-rules",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The relay's --rules file, for suggestions that belong at the relay.",
)
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def events_suggest(
    ctx: Context, /, since: str, apply_n: int | None, relay_rules: Path | None, as_json: bool
) -> None:
    """Rule changes the event log's evidence supports, each with its counts."""
    from hagate import config
    from hagate.pki.authority import Authority
    from hagate.review.query import parse_time
    from hagate.review.suggest import suggest

    state = ctx.state.require()
    cfg = config.load_config(state.config_path)
    described = [str(r.get("description") or f"#{i + 1}") for i, r in enumerate(cfg.rules)]
    live = [r.name for r in Authority(state).records() if r.status() in ("valid", "expiring")]
    db = _log(ctx)
    try:
        found = suggest(db, parse_time(since), described, live, "asn_db" in cfg.geoip_databases)
    finally:
        db.close()
    if apply_n is not None:
        _apply(ctx, found, apply_n, relay_rules)
        return
    if as_json:
        for n, s in enumerate(found, 1):
            click.echo(json.dumps({"number": n, **s.to_json()}))
        return
    if not found:
        click.echo(f"Nothing to suggest from the events since {since}.")
        return
    for n, s in enumerate(found, 1):
        click.echo(f"{n}. {s.title}")
        for line in s.evidence:
            click.echo(f"     {line}")
        if s.rule is not None:
            click.echo(f"   adds to hagate.yaml: {s.rule['expression']}")
        if s.relay_rule is not None:
            click.echo(f"   adds to the relay's rules: {s.relay_rule['expression']}")
        if s.applicable:
            extra = " --relay-rules FILE" if s.relay_rule is not None else ""
            click.echo(f"   apply: hagate events suggest --since {since} --apply {n}{extra}")
        click.echo()


def _apply(ctx: Context, found: list[Any], n: int, relay_rules: Path | None) -> None:
    from hagate.configedit import insert_relay_rule, insert_rule
    from hagate.pidfile import reload_running

    if n > len(found):
        raise HagateError(f"there is no suggestion {n} (there are {len(found)})")
    s = found[n - 1]
    if not s.applicable:
        raise HagateError(f"suggestion {n} is for you to review; there is nothing to apply")
    if s.rule is not None:
        path = ctx.state.config_path
        backup = insert_rule(path, s.rule)
        click.echo(f"Added {s.rule['description']!r} to {path} (the old file is {backup.name})")
        if reload_running(ctx.state):
            click.echo("Told the running gateway to reload")
        return
    if relay_rules is None:
        raise HagateError(
            f"suggestion {n} belongs at the relay: give its rules file with --relay-rules FILE"
            " (then copy it to the relay and start it with --rules FILE)"
        )
    assert s.relay_rule is not None
    insert_relay_rule(relay_rules, s.relay_rule)
    click.echo(
        f"Wrote {s.relay_rule['description']!r} to {relay_rules}; copy it to the relay"
        " and restart `hagate relay run --rules FILE` there"
    )
