"""`hagate audit`: review the whole setup; exit status 1 on a high-severity finding."""

from __future__ import annotations

import json
import sys
import textwrap

import click

from hagate.cli.base import Context, cli, pass_ctx


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Findings as one JSON object.")
@click.option("--no-probe", is_flag=True, help="Do not send the trust probe to Home Assistant.")
@pass_ctx
def audit(ctx: Context, as_json: bool, no_probe: bool) -> None:
    """Review certificates, rules, file modes, Home Assistant's settings and the running
    gateway; print each finding with its fix. Exit status 1 when any finding is high, so it
    can run from cron or a systemd timer. Silence a finding by its id in audit.ignore."""
    from hagate.watch.audit import run_audit
    from hagate.watch.findings import counts

    report = run_audit(ctx.state.require(), probe=not no_probe)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        c = counts(report.findings)
        summary = ", ".join(f"{n} {label}" for label, n in reversed(list(c.items())))
        silenced = f" ({len(report.silenced)} silenced by audit.ignore)" if report.silenced else ""
        click.echo(f"hagate audit: {summary}{silenced}")
        for f in report.findings:
            click.echo("")
            click.echo(f"{f.severity.label.upper():<7} {f.id}")
            click.echo(
                textwrap.fill(f.problem, 100, initial_indent=" " * 8, subsequent_indent=" " * 8)
            )
            click.echo(
                textwrap.fill(
                    f.fix, 100, initial_indent=" " * 8 + "fix: ", subsequent_indent=" " * 13
                )
            )
        if not report.findings:
            click.echo("Nothing needs you.")
    if report.failed:
        sys.exit(1)
