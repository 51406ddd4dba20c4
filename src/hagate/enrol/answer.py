"""The gateway's own paths under `/.hagate/`: which one a request names (pure), and the reply
for the enrolment link.

Rules:
  1. `/.hagate/enrol/<token>` (the page) and `/.hagate/enrol/<token>/<file>` (a download) are
     the only paths; GET and HEAD the only methods. Everything else under `/.hagate/` is a 404,
     and nothing under it is ever forwarded.
  2. Only a target sent exactly as it normalises, without a query, reaches a page: a dot
     segment, an escape or a `//` that leads into `/.hagate/` gets the 404.
  3. A miss (wrong, used or expired token) looks the same whatever the reason; after
     `MISS_LIMIT` misses in `MISS_WINDOW` seconds a source gets 429 until the window passes.
  4. Events and logs never see a token: the path they show is `/.hagate/enrol/…`.
"""

from __future__ import annotations

import enum
import time
from collections import defaultdict
from dataclasses import dataclass

from hagate.enrol.platform import chosen

PREFIX = "/.hagate/"
MISS_LIMIT = 10
MISS_WINDOW = 600.0
CONTENT_TYPES = {
    "mobileconfig": "application/x-apple-aspen-config",
    "p12": "application/x-pkcs12",
    "legacy.p12": "application/x-pkcs12",
}


class Kind(enum.Enum):
    PAGE = "page"
    FILE = "file"
    NOT_FOUND = "not_found"
    METHOD = "method"  # 405


@dataclass(frozen=True)
class Route:
    kind: Kind
    token: str = ""
    file: str = ""


def loggable(path: str) -> str:
    """A gateway path as events show it: nothing past its first segment (where tokens are)."""
    parts = path[len(PREFIX) :].split("/", 1) if path.startswith(PREFIX) else []
    if len(parts) == 2:
        return f"{PREFIX}{parts[0]}/…"
    return path


def is_gateway_path(path: str) -> bool:
    return path == PREFIX[:-1] or path.startswith(PREFIX)


def route(method: str, path: str, as_sent: bool, query: str = "") -> Route:
    """What a request for `path` (normalised; `as_sent` when the client sent it so) names.
    The gateway's paths take no query."""
    if method not in ("GET", "HEAD"):
        return Route(Kind.METHOD)
    parts = path[len(PREFIX) :].split("/") if path.startswith(PREFIX) else []
    if not as_sent or query or len(parts) not in (2, 3) or parts[0] != "enrol" or not parts[1]:
        return Route(Kind.NOT_FOUND)
    if len(parts) == 2:
        return Route(Kind.PAGE, parts[1])
    if parts[2] not in CONTENT_TYPES:
        return Route(Kind.NOT_FOUND)
    return Route(Kind.FILE, parts[1], parts[2])


class MissLimiter:
    """Misses per source address, forgotten after the window (memory bounded by traffic)."""

    def __init__(self, limit: int = MISS_LIMIT, window: float = MISS_WINDOW) -> None:
        self.limit, self.window = limit, window
        self.misses: dict[str, list[float]] = defaultdict(list)

    def blocked(self, ip: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        recent = [t for t in self.misses.get(ip, []) if now - t < self.window]
        if recent:
            self.misses[ip] = recent
        else:
            self.misses.pop(ip, None)
        return len(recent) >= self.limit

    def miss(self, ip: str, now: float | None = None) -> None:
        self.misses[ip].append(time.monotonic() if now is None else now)
        if len(self.misses) > 10000:  # a flood of sources: forget the stalest
            for key in list(self.misses)[:5000]:
                del self.misses[key]

    def prune(self, now: float) -> None:
        for ip in list(self.misses):
            recent = [t for t in self.misses[ip] if now - t < self.window]
            if recent:
                self.misses[ip] = recent
            else:
                del self.misses[ip]


@dataclass(frozen=True)
class Reply:
    status: int
    content_type: str
    body: bytes
    reason: str  # for the event
    cert_name: str | None = None
    filename: str | None = None


def platform_of(device: str | None, user_agent: str) -> str:
    return chosen(device, user_agent).device.value
