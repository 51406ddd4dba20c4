"""`/.hagate/console/`: the console, for certificates marked as admin, from anywhere.

Rules:
  1. Only a verified certificate marked as admin (`hagate cert admin NAME on`) gets through;
     anything else gets the gateway's own 404, as for any other `/.hagate/` path. Nothing
     here is ever forwarded to Home Assistant.
  2. The request goes to the console's Unix socket in the state directory (the admin
     listener's, in the supervising process) with the certificate's SHA-256 in a header the
     gateway sets itself: a client's own `X-Hagate-*` headers are dropped first. Cookies and
     Authorization are dropped too: the certificate is the sign-in here.
  3. Bodies are small forms (at most MAX_BODY, with a Content-Length); the answer is read
     whole (at most MAX_ANSWER) and then the client connection is closed after it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hagate.gateway.channel import Channel
from hagate.http1.heads import RequestHead

if TYPE_CHECKING:
    from hagate.state import StateDir

PREFIX = "/.hagate/console"
MAX_BODY = 256 * 1024
MAX_ANSWER = 8 * 1024 * 1024
TIMEOUT = 30.0
CERT_HEADER = "X-Hagate-Certificate"
_DROPPED = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade"}
_DROPPED |= {"transfer-encoding", "cookie", "authorization", "host", "content-length"}


def is_console_path(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


@dataclass(frozen=True)
class ConsoleRequest:
    """What goes to the console: the head (bytes) and whether a body of `length` follows."""

    head: bytes
    length: int


def console_request(head: RequestHead, cert_sha256: str) -> ConsoleRequest | None:
    """The request as the console's socket takes it; None when its body is not one a form
    sends (chunked, or longer than MAX_BODY)."""
    if head.chunked or (head.content_length or 0) > MAX_BODY:
        return None
    rest = head.target.path[len(PREFIX) :].lstrip("/")
    target = "/console/" + rest + (f"?{head.target.query}" if head.target.query else "")
    # The Host as the client sent it (the gateway vetted it): the console checks a form's
    # Origin against it.
    lines = [f"{head.method} {target} HTTP/1.1", f"Host: {head.host}", "Connection: close"]
    for name, value in head.headers:
        lower = name.lower()
        if lower in _DROPPED or lower.startswith("x-hagate-"):
            continue
        lines.append(f"{name}: {value}")
    length = head.content_length or 0
    if length:
        lines.append(f"Content-Length: {length}")
    lines.append(f"{CERT_HEADER}: {cert_sha256}")
    return ConsoleRequest(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"), length)


class ConsolePass:
    """The way from a gateway worker to the console: who is admin, and the socket."""

    def __init__(self, state: StateDir) -> None:
        from hagate.console.access import console_socket_path

        self.state = state
        self.socket: Path = console_socket_path(state)

    def is_admin(self, sha256: str) -> bool:
        from hagate.console.access import ACCESS_NAME, ConsoleAccess

        if not (self.state / ACCESS_NAME).exists():
            return False
        return sha256 in ConsoleAccess(self.state).admins()

    async def exchange(self, request: ConsoleRequest, client: Channel) -> bytes | None:
        """The console's whole answer to `request` (whose body is read from `client`); None
        when the console is not running."""
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_unix_connection(str(self.socket)), TIMEOUT
            )
        except (OSError, TimeoutError):
            return None
        try:
            writer.write(request.head)
            if request.length:
                writer.write(await client.readexactly(request.length))
            await writer.drain()
            answer = await asyncio.wait_for(reader.read(MAX_ANSWER + 1), TIMEOUT)
            while answer and len(answer) <= MAX_ANSWER:
                more = await asyncio.wait_for(reader.read(MAX_ANSWER + 1 - len(answer)), TIMEOUT)
                if not more:
                    break
                answer += more
            return answer if 0 < len(answer) <= MAX_ANSWER else None
        except (OSError, TimeoutError, asyncio.IncompleteReadError):
            return None
        finally:
            writer.close()
