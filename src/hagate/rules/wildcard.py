"""Cloudflare's `wildcard` and `strict wildcard`: `*` matches any run of bytes, whole value.

`\\*` is a literal star and `\\\\` a literal backslash; `**` is refused, as Cloudflare does.
Matching splits the pattern at its stars into literal pieces and finds them in order, which is
linear in practice and has no backtracking blow-up.
"""

from __future__ import annotations

from collections.abc import Callable

from hagate.rules.functions import ascii_lower


class WildcardError(ValueError):
    pass


def split_pattern(pattern: str) -> list[str]:
    pieces: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            nxt = pattern[i + 1 : i + 2]
            if nxt not in ("*", "\\"):
                raise WildcardError("in a wildcard pattern, \\ must be followed by * or \\")
            current.append(nxt)
            i += 2
        elif c == "*":
            if pattern[i + 1 : i + 2] == "*":
                raise WildcardError("'**' is not allowed in a wildcard pattern")
            pieces.append("".join(current))
            current = []
            i += 1
        else:
            current.append(c)
            i += 1
    pieces.append("".join(current))
    return pieces


def compile_wildcard(pattern: str, case_sensitive: bool) -> Callable[[str], bool]:
    """A predicate for `value wildcard pattern` (or `strict wildcard` when case_sensitive)."""
    pieces = split_pattern(pattern if case_sensitive else ascii_lower(pattern))
    fold: Callable[[str], str] = (lambda v: v) if case_sensitive else ascii_lower
    if len(pieces) == 1:
        exact = pieces[0]
        return lambda value: fold(value) == exact
    head, *middle, tail = pieces
    minimum = len(head) + len(tail)

    def match(value: str) -> bool:
        v = fold(value)
        if len(v) < minimum or not v.startswith(head) or not v.endswith(tail):
            return False
        pos, stop = len(head), len(v) - len(tail)
        for piece in middle:
            found = v.find(piece, pos, stop)
            if found < 0:
                return False
            pos = found + len(piece)
        return True

    return match
