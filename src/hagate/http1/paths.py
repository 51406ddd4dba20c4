"""Request-target normalisation: the path a rule sees is the path Home Assistant routes.

Rules:
  1. Only origin-form targets (`/path?query`) are accepted.
  2. Percent-escapes are decoded once. An escape that decodes to `/`, `\\`, `?`, `#`, NUL or a
     control character is ambiguous (servers disagree on it) and refused.
  3. Dot segments (also spelt `%2e`) are resolved and empty segments (`//`) merged; climbing
     above the root is refused.
  4. The result is re-encoded canonically. That one string is what rules match and what is
     forwarded: a rule can never see one path while Home Assistant routes another.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from urllib.parse import unquote_plus

# RFC 3986 pchar without pct-encoded: unreserved / sub-delims / ":" / "@"
_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")
_PCHAR = _UNRESERVED | frozenset("!$&'()*+,;=:@")
_RAW_PATH = _PCHAR | frozenset("/%")
_RAW_QUERY = _PCHAR | frozenset("/?%")
_FORBIDDEN_DECODED = frozenset(b"/\\?#") | frozenset(range(0x20)) | {0x7F}
_HEX = frozenset(string.hexdigits)
_ENCODE = {b: chr(b) if chr(b) in _PCHAR else f"%{b:02X}" for b in range(256)}
MAX_TARGET = 8192
WEBHOOK_PREFIX = "/api/webhook/"
# A path that normalisation leaves as it is: pchar segments without escapes, none of them
# "." or "..", no empty segment but a trailing one.
_SIMPLE_PATH = re.compile(r"(?:/(?!\.\.?(?:/|\Z))[A-Za-z0-9\-._~!$&'()*+,;=:@]+)*/?")


class PathError(ValueError):
    """The target is malformed or ambiguous; the request gets 400."""


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs 3x, per request
class Target:
    path: str  # normalised, canonically encoded: what rules see and what is forwarded
    query: str  # as sent (validated), without "?"
    as_sent: bool = True  # the client sent the path exactly so (no dot segment, escape, //)

    @property
    def uri(self) -> str:
        return f"{self.path}?{self.query}" if self.query else self.path

    @property
    def loggable(self) -> str:
        """The target as events and log lines show it: query values that carry secrets
        (Home Assistant's signed paths, camera tokens, OAuth codes) are replaced, and so is a
        webhook id (whoever knows it may call the webhook)."""
        path = self.path
        if path.startswith(WEBHOOK_PREFIX) and len(path) > len(WEBHOOK_PREFIX):
            path = WEBHOOK_PREFIX + "…"
        return f"{path}?{redact_query(self.query)}" if self.query else path


# Query parameters whose values are secrets: HA's `authSig` (signed paths) and camera proxy
# `token`, OAuth's `code` and tokens, and the usual names for passwords and keys.
SECRET_PARAMETERS = frozenset(
    {
        "access_token",
        "api_key",
        "api_password",
        "apikey",
        "auth",
        "authorization",
        "authsig",
        "client_secret",
        "code",
        "id_token",
        "jwt",
        "key",
        "password",
        "refresh_token",
        "secret",
        "session",
        "sig",
        "signature",
        "token",
    }
)
REDACTED = "REDACTED"


def redact_query(query: str) -> str:
    """`query` with the value of every secret parameter (by name, any case or escaping)
    replaced by REDACTED; everything else is kept as sent."""
    parts = query.split("&")
    for i, part in enumerate(parts):
        name, eq, _ = part.partition("=")
        if eq and unquote_plus(name).lower() in SECRET_PARAMETERS:
            parts[i] = f"{name}={REDACTED}"
    return "&".join(parts)


def _decode_segment(raw: str) -> bytes:
    out = bytearray()
    i = 0
    while i < len(raw):
        c = raw[i]
        if c == "%":
            hx = raw[i + 1 : i + 3]
            if len(hx) != 2 or not set(hx) <= _HEX:
                raise PathError("malformed percent-escape in the path")
            b = int(hx, 16)
            if b in _FORBIDDEN_DECODED:
                raise PathError(f"ambiguous path: %{hx} is refused")
            out.append(b)
            i += 3
        else:
            out.append(ord(c))
            i += 1
    return bytes(out)


def normalise_target(target: str) -> Target:
    if len(target) > MAX_TARGET:
        raise PathError("the request target is too long")
    if not target.startswith("/"):
        raise PathError("only origin-form request targets (/path) are accepted")
    raw_path, sep, query = target.partition("?")
    if "#" in target:
        raise PathError("a fragment (#) is not allowed in a request target")
    if sep and not set(query) <= _RAW_QUERY:
        raise PathError("the query holds characters that must be percent-encoded")
    if _SIMPLE_PATH.fullmatch(raw_path):
        return Target(raw_path, query)  # already normal: what `normalise_path` would return
    path = normalise_path(raw_path)
    return Target(path, query, as_sent=path == raw_path)


def normalise_path(raw_path: str) -> str:
    """Decode, resolve dot segments, merge empty ones and re-encode, step by step."""
    if not set(raw_path) <= _RAW_PATH:
        raise PathError("the path holds characters that must be percent-encoded")
    segments: list[bytes] = []
    raw_segments = raw_path.split("/")[1:]
    for i, raw in enumerate(raw_segments):
        seg = _decode_segment(raw)
        last = i == len(raw_segments) - 1
        if seg == b".":
            if last:
                segments.append(b"")
            continue
        if seg == b"..":
            if not segments or segments == [b""]:
                raise PathError("the path climbs above the root")
            segments.pop()
            if last:
                segments.append(b"")
            continue
        if seg == b"" and not last:
            continue  # merge "//"
        segments.append(seg)
    return "/" + "/".join("".join(_ENCODE[b] for b in seg) for seg in segments)
