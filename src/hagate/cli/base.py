"""The root of the `hagate` command line, its shared context and its console entry point."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from hagate import __version__
from hagate.errors import HagateError
from hagate.state import StateDir, default_state_dir

F = TypeVar("F", bound=Callable[..., Any])


class Context:
    def __init__(self, state_dir: Path) -> None:
        self.state = StateDir(state_dir)


pass_ctx = click.make_pass_decorator(Context)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="HAGATE_STATE_DIR",
    default=None,
    help="State directory (default: $XDG_DATA_HOME/hagate, i.e. ~/.local/share/hagate).",
)
@click.version_option(__version__, prog_name="hagate")
@click.pass_context
def cli(ctx: click.Context, state_dir: Path | None) -> None:
    """hagate: remote access and Alexa for Home Assistant, behind client certificates."""
    ctx.obj = Context(state_dir or default_state_dir())


def main(argv: list[str] | None = None) -> None:
    """Console entry point: user mistakes become one line on stderr, never a traceback."""
    try:
        cli.main(args=argv, prog_name="hagate", standalone_mode=False)
    except HagateError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
