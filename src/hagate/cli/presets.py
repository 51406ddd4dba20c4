"""`hagate rules preset`: named, narrow rules for integrations without a certificate."""

from __future__ import annotations

import click

from hagate.cli.base import Context, pass_ctx
from hagate.cli.rules import rules


@rules.group("preset")
def preset_group() -> None:
    """Rules for the companion apps, Home Assistant's webhooks, Alexa and Google Assistant:
    list, show, add."""


@preset_group.command("list")
def preset_list() -> None:
    """The presets, with what each lets in."""
    from hagate.rules.presets import PRESETS

    for p in PRESETS.values():
        needs = " (needs --asn)" if p.needs_asns else " (--domain D...)" if p.takes_domains else ""
        click.echo(f"{p.name:<24}{p.summary}{needs}")


def _asn_option(fn: click.decorators.FC) -> click.decorators.FC:
    return click.option(
        "--asn",
        "asns",
        type=click.IntRange(1, 4294967295),
        multiple=True,
        help="A network (AS number) to let in from; repeat it. For the companion apps.",
    )(fn)


def _domain_option(fn: click.decorators.FC) -> click.decorators.FC:
    return click.option(
        "--domain",
        "domains",
        multiple=True,
        help="Only the webhooks of this integration (e.g. telegram_bot); repeat it. For"
        " ha-webhooks.",
    )(fn)


@preset_group.command("show")
@click.argument("name")
@_asn_option
@_domain_option
def preset_show(name: str, asns: tuple[int, ...], domains: tuple[str, ...]) -> None:
    """The rule NAME would add, as YAML for `rules:`."""
    from hagate.rules.presets import preset, rule_yaml

    click.echo(rule_yaml(preset(name).rule(asns, domains)), nl=False)


@preset_group.command("add")
@click.argument("name")
@_asn_option
@_domain_option
@pass_ctx
def preset_add(ctx: Context, name: str, asns: tuple[int, ...], domains: tuple[str, ...]) -> None:
    """Add the rule NAME to hagate.yaml, above the certificate rule (comments are kept)."""
    from hagate.config import load_config
    from hagate.configedit import insert_rule
    from hagate.pidfile import reload_running
    from hagate.rules.presets import preset
    from hagate.watch.rulecheck import refuse_without_geoip, refuse_without_home_assistant

    rule = preset(name).rule(asns, domains)
    path = ctx.state.require().config_path
    cfg = load_config(path)
    refuse_without_geoip(name, rule, cfg)  # before any edit
    refuse_without_home_assistant(name, rule, cfg)
    backup = insert_rule(path, rule)
    click.echo(f"Added {rule['description']!r} to {path} (the old file is {backup.name})")
    reloaded = reload_running(ctx.state)
    if reloaded:
        click.echo(f"Told the running gateway to reload (process {', '.join(map(str, reloaded))})")
    else:
        click.echo("No running gateway found here; it takes the rule when it starts (or on SIGHUP)")
