"""A reference point for the gateway benchmark: the least a Python TLS proxy can do.

It ends TLS (client certificate required, verified by OpenSSL), forwards each request head to
the upstream unchanged over a kept-alive connection and relays the response, on uvloop with
plain asyncio Protocols. No parsing beyond finding the ends of messages, no rules, no events,
no limits: it is not a gateway, only a measure of what the language and event loop cost here,
so the benchmark can tell the cost of hagate's checks from the cost of Python itself.

Usage: python -m bench.floor_proxy STATE_DIR LISTEN_PORT UPSTREAM_PORT
"""

from __future__ import annotations

import asyncio
import re
import ssl
import sys
from pathlib import Path

import uvloop

_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.I)
_CLOSE = re.compile(rb"\r\nconnection:\s*close", re.I)


class Upstream(asyncio.Protocol):
    def __init__(self, pool: list[Upstream]) -> None:
        self.pool = pool
        self.buffer = bytearray()
        self.client: Client | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        if self in self.pool:
            self.pool.remove(self)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0 or self.client is None:
            return
        m = _LENGTH.search(self.buffer, 0, end)
        total = end + 4 + (int(m.group(1)) if m else 0)
        if len(self.buffer) < total:
            return
        response = bytes(self.buffer[:total])
        del self.buffer[:total]
        client, self.client = self.client, None
        close = bool(_CLOSE.search(response, 0, end))
        client.respond(response, close)
        if close:  # the upstream ends this connection too
            if self.transport is not None:
                self.transport.close()
        elif self.transport is not None and not self.transport.is_closing():
            self.pool.append(self)


class Client(asyncio.Protocol):
    def __init__(self, upstream_port: int, pool: list[Upstream]) -> None:
        self.upstream_port = upstream_port
        self.pool = pool
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        request = bytes(self.buffer[: end + 4])
        del self.buffer[: end + 4]
        while self.pool:
            up = self.pool.pop()
            if up.transport is not None and not up.transport.is_closing():
                self.send(up, request)
                return
        else:
            asyncio.get_running_loop().create_task(self.connect_and_send(request))

    async def connect_and_send(self, request: bytes) -> None:
        loop = asyncio.get_running_loop()
        _, up = await loop.create_connection(
            lambda: Upstream(self.pool), "127.0.0.1", self.upstream_port
        )
        self.send(up, request)

    def send(self, up: Upstream, request: bytes) -> None:
        up.client = self
        assert up.transport is not None
        up.transport.write(request)

    def respond(self, response: bytes, close: bool) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(response)
            if close:  # an HTTP/1.0 exchange without keep-alive ends with the connection
                self.transport.close()


async def main(state: Path, port: int, upstream_port: int) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(state / "server.crt", state / "server.key")
    ctx.load_verify_locations(cafile=str(state / "ca.crt"))
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.num_tickets = 1
    pool: list[Upstream] = []
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: Client(upstream_port, pool), "127.0.0.1", port, ssl=ctx, backlog=1024
    )
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(main(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])))
