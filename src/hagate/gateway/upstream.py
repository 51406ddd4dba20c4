"""Connections to Home Assistant: opened on demand, kept alive and reused."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from urllib.parse import urlsplit

from hagate.gateway.channel import Channel

RESPONSE_HEAD_LIMIT = 65536


class UpstreamError(Exception):
    """Home Assistant could not be reached (502) or did not answer in time (504)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class UpstreamPool:
    def __init__(self, url: str, connect_timeout: float, max_idle: int = 64) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.secure = parts.scheme == "https"
        self.port = parts.port or (443 if self.secure else 80)
        self.ssl = ssl.create_default_context() if self.secure else None
        self.connect_timeout = connect_timeout
        self.max_idle = max_idle
        self.idle: list[Channel] = []
        self.closed = False  # replaced by a reload: connections coming back are closed

    def pooled(self) -> Channel | None:
        """An idle kept-alive connection, if there is one (it may have gone stale)."""
        while self.idle:
            conn = self.idle.pop()
            if conn.is_closing() or conn.eof or conn.buffer:
                conn.close()  # closed, or sent bytes nobody asked for: not to be trusted
                continue
            return conn
        return None

    async def connect(self) -> Channel:
        """A new connection."""
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, conn = await loop.create_connection(
                    lambda: Channel(loop), self.host, self.port, ssl=self.ssl
                )
        except TimeoutError:
            raise UpstreamError(504, "connecting to Home Assistant timed out") from None
        except OSError as e:
            raise UpstreamError(
                502, f"cannot connect to Home Assistant: {e.strerror or e}"
            ) from None
        return conn

    def release(self, conn: Channel) -> None:
        if (
            not self.closed
            and len(self.idle) < self.max_idle
            and not conn.is_closing()
            and not conn.eof
        ):
            self.idle.append(conn)
        else:
            conn.close()

    def close(self) -> None:
        self.closed = True
        for conn in self.idle:
            with contextlib.suppress(Exception):
                conn.close()
        self.idle.clear()
