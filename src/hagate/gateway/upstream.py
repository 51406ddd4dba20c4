"""Connections to Home Assistant: opened on demand, kept alive and reused."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from urllib.parse import urlsplit

RESPONSE_HEAD_LIMIT = 65536


class UpstreamError(Exception):
    """Home Assistant could not be reached (502) or did not answer in time (504)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class UpstreamPool:
    def __init__(self, url: str, connect_timeout: float, max_idle: int = 64) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.secure = parts.scheme == "https"
        self.port = parts.port or (443 if self.secure else 80)
        self.ssl = ssl.create_default_context() if self.secure else None
        self.connect_timeout = connect_timeout
        self.max_idle = max_idle
        self.idle: list[Conn] = []

    async def acquire(
        self, fresh: bool = False
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bool]:
        while self.idle and not fresh:
            reader, writer = self.idle.pop()
            if writer.is_closing() or reader.at_eof():
                writer.close()
                continue
            return reader, writer, True
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    self.host, self.port, ssl=self.ssl, limit=RESPONSE_HEAD_LIMIT
                ),
                self.connect_timeout,
            )
        except TimeoutError:
            raise UpstreamError(504, "connecting to Home Assistant timed out") from None
        except OSError as e:
            raise UpstreamError(
                502, f"cannot connect to Home Assistant: {e.strerror or e}"
            ) from None
        return reader, writer, False

    def release(self, conn: Conn) -> None:
        reader, writer = conn
        if len(self.idle) < self.max_idle and not writer.is_closing() and not reader.at_eof():
            self.idle.append(conn)
        else:
            writer.close()

    def close(self) -> None:
        for _, writer in self.idle:
            with contextlib.suppress(Exception):
                writer.close()
        self.idle.clear()
