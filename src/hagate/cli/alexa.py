"""`hagate alexa`: build the Lambda bundle, try it, and print the rules it needs."""

from __future__ import annotations

import json
from pathlib import Path

import click

from hagate.cli.base import Context, cli, pass_ctx
from hagate.errors import HagateError


@cli.group()
def alexa() -> None:
    """The Alexa handler for AWS Lambda: bundle, invoke, rules."""


def _read_token(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as e:
        raise HagateError(f"cannot read the token file {path}: {e}") from e
    if not token or any(c.isspace() for c in token):
        raise HagateError(f"{path} must hold the token alone, on one line")
    return token


@alexa.command("bundle")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--url", required=True, help="Where the Lambda reaches hagate: https://NAME[:PORT].")
@click.option("--cert", "cert_name", default="alexa", show_default=True, help="Certificate name.")
@click.option(
    "--token-mode",
    type=click.Choice(["long_lived", "directive"]),
    default="long_lived",
    show_default=True,
    help="long_lived: Login with Amazon linking and an HA token; directive: HA account linking.",
)
@click.option(
    "--long-lived-token-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A file holding an HA long-lived access token (for --token-mode long_lived).",
)
@click.option(
    "--credentials",
    type=click.Choice(["bundle", "env", "ssm"]),
    default="bundle",
    show_default=True,
    help="Where the handler finds the certificate, key and token.",
)
@click.option("--ssm-prefix", default="/hagate/alexa", show_default=True)
@click.option("--deadline", type=float, default=6.5, show_default=True, help="Seconds.")
@click.option("--connect-address", default=None, help="Connect here instead of resolving URL.")
@pass_ctx
def alexa_bundle(
    ctx: Context,
    out: Path,
    url: str,
    cert_name: str,
    token_mode: str,
    long_lived_token_file: Path | None,
    credentials: str,
    ssm_prefix: str,
    deadline: float,
    connect_address: str | None,
) -> None:
    """Build the deployable Lambda zip and print the AWS settings to use."""
    from hagate.alexa.bundle import build, lambda_settings

    bundle = build(
        ctx.state.require(),
        out,
        url,
        cert_name,
        token_mode,
        _read_token(long_lived_token_file),
        credentials,
        ssm_prefix,
        deadline,
        connect_address,
    )
    used = "reused" if bundle.cert_reused else "issued"
    click.echo(f"Certificate {bundle.cert_name!r} {used} (SHA-256 {bundle.cert_sha256})")
    click.echo(f"Wrote {out} ({', '.join(bundle.files)}), SHA-256 {bundle.sha256}")
    click.echo("\nAWS Lambda settings:")
    for name, value in lambda_settings(bundle, credentials):
        click.echo(f"  {name + ':':<14}{value}")
    if bundle.environment:
        click.echo("\nEnvironment variables (PEM newlines may be written as \\n):")
        for name, value in bundle.environment.items():
            click.echo(f"  {name}={json.dumps(value)[1:-1]}")
    if bundle.ssm_parameters:
        click.echo("\nSSM parameters (SecureString; newlines written as \\n), with the AWS CLI:")
        for name, value in bundle.ssm_parameters.items():
            flat = value.replace("\n", "\\n")
            click.echo(
                f"  aws ssm put-parameter --type SecureString --name {name} --value '{flat}'"
            )
    if token_mode == "directive":
        click.echo(
            "\nHA account linking: add the rule from `hagate alexa rules --token-mode directive`."
        )


@alexa.command("invoke")
@click.argument("request", required=False)
@click.option(
    "--bundle",
    "bundle_path",
    default="alexa.zip",
    show_default=True,
    type=click.Path(dir_okay=False, path_type=Path),
)
@click.option("--repeat", type=click.IntRange(1, 1000), default=1, show_default=True)
@click.option(
    "--directive",
    "kind",
    type=click.Choice(["discover", "turn-on", "turn-off", "report-state"]),
    help="Build the request: discover, or turn-on/turn-off/report-state ENTITY.",
)
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The access token to put in the directive (for --token-mode directive).",
)
@click.option("--python", "python", default=None, help="The interpreter (default: 3.13 or 3.12).")
def alexa_invoke(
    request: str | None,
    bundle_path: Path,
    repeat: int,
    kind: str | None,
    token_file: Path | None,
    python: str | None,
) -> None:
    """Run the bundled handler as Lambda does (cold, then warm) on REQUEST.json or --directive.

    With --directive turn-on, turn-off or report-state, REQUEST is the entity id instead.
    """
    from hagate.alexa.directives import directive
    from hagate.alexa.invoke import run_bundle

    if kind is not None:
        if kind != "discover" and not request:
            raise HagateError(f"--directive {kind} needs an entity id, e.g. input_boolean.porch")
        try:
            event = directive(kind, request, _read_token(token_file) or "unused")
        except ValueError as e:
            raise HagateError(str(e)) from None
    elif request:
        try:
            event = json.loads(Path(request).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as e:
            raise HagateError(f"cannot read the request {request}: {e}") from e
    else:
        raise HagateError("give REQUEST.json or --directive")
    if not bundle_path.exists():
        raise HagateError(f"no bundle at {bundle_path}; build one with hagate alexa bundle")
    results = run_bundle(bundle_path, [event] * repeat, python)
    for i, r in enumerate(results):
        log = r.log[-1] if r.log else {}
        when = "cold" if i == 0 else "warm"
        if r.import_ms is not None:  # the cold start: the import, then the handler
            total = r.import_ms + r.ms
            parts = [
                f"#{i + 1} {when}: {total:.1f} ms (import {r.import_ms:.1f} ms, "
                f"handler {r.ms:.1f} ms)"
            ]
        else:
            parts = [f"#{i + 1} {when}: handler {r.ms:.1f} ms"]
        for key, label in (("connect_ms", "of which connect"), ("tls_ms", "TLS")):
            if log.get(key) is not None:
                parts.append(f"{label} {log[key]:.1f} ms")
        if log.get("retried"):
            parts.append("retried on a new connection")
        click.echo(", ".join(parts) + f" -> {log.get('outcome', '?')}")
        if r.raised:
            click.echo(f"the handler raised: {r.raised}")
        if i == 0 or i == len(results) - 1:
            click.echo(json.dumps(r.response, indent=2))


@alexa.command("rules")
@click.option(
    "--token-mode",
    type=click.Choice(["long_lived", "directive"]),
    default="long_lived",
    show_default=True,
)
def alexa_rules(token_mode: str) -> None:
    """The rules the chosen account linking needs, to paste under `rules:` in hagate.yaml."""
    if token_mode == "long_lived":
        click.echo(
            "# Login with Amazon linking (--token-mode long_lived): Amazon's servers never\n"
            "# call Home Assistant, and the handler presents its certificate. No rule needed."
        )
        return
    from hagate.rules.presets import preset, rule_yaml

    click.echo(
        "  # Alexa with Home Assistant account linking: Amazon's servers exchange the code and\n"
        "  # refresh the token at /auth/token themselves, without a certificate. Only that path,\n"
        "  # only POST, only from Amazon's networks. Put this rule first\n"
        "  # (`hagate rules preset add alexa-account-linking` does that for you).\n"
        + rule_yaml(preset("alexa-account-linking").rule()),
        nl=False,
    )
