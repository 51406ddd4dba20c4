"""The one exception type that reaches users: printed as a single line, never a traceback."""

from __future__ import annotations


class HagateError(Exception):
    """A user mistake or an environment problem, explained in one line."""

    exit_code = 1
