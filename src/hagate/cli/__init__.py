"""The `hagate` command line: each module parses one command group's arguments and calls into
the components, nothing more. Importing this package registers every group on the root."""

from __future__ import annotations

from hagate.cli import (  # noqa: F401
    acme,
    alexa,
    app,
    audit,
    certs,
    console,
    enrol,
    events,
    geoip,
    health,
    presets,
    relay,
    rules,
    serve,
    setup,
)
from hagate.cli.base import cli, main

__all__ = ["cli", "main"]
