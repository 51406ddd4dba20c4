"""Streams over TLS that decrypt into one reused buffer.

asyncio's StreamReaderProtocol is a plain Protocol, so uvloop's TLS hands it each read as a
new bytes object, allocated at its 256 KiB maximum and then shrunk. A relay pins malloc's mmap
threshold at 128 KiB (hagate.memory), and then every such read is an mmap, 64 page faults and
a munmap: the relay chain's bulk throughput fell by a third. A BufferedProtocol is given its
buffer to decrypt into instead: uvloop then allocates nothing per read, and the StreamReader
gets a copy of just the bytes that arrived.

`BufferedStreamProtocol` is what asyncio.StreamReaderProtocol is to a StreamReader and a
StreamWriter (reading, EOF, write flow control, drain, wait_closed), for a connection this
module opens or accepts.
"""

from __future__ import annotations

import asyncio
import collections
import socket
import ssl
from typing import Any

BUFFER = 65536  # one read's most; TLS records are 16 KiB
# One buffer for every connection of the process: the event loop asks for it, decrypts into it
# and hands the bytes on (buffer_updated) in one callback, so no two reads ever share it; a
# buffer each would cost a relay 64 KiB per idle home.
_SHARED = memoryview(bytearray(BUFFER))


class BufferedStreamProtocol(asyncio.BufferedProtocol):
    def __init__(self, reader: asyncio.StreamReader, loop: asyncio.AbstractEventLoop) -> None:
        self._reader = reader
        self._loop = loop
        self._paused = False
        self._lost: BaseException | None = None
        self._gone = False
        self._drain_waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._closed: asyncio.Future[None] = loop.create_future()
        self.transport: asyncio.BaseTransport | None = None

    # -- reading ---------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self._reader.set_transport(transport)

    def get_buffer(self, sizehint: int) -> memoryview:
        return _SHARED

    def buffer_updated(self, nbytes: int) -> None:
        self._reader.feed_data(_SHARED[:nbytes])

    def eof_received(self) -> bool:
        self._reader.feed_eof()
        return False

    def connection_lost(self, exc: BaseException | None) -> None:
        if isinstance(exc, Exception):
            self._reader.set_exception(exc)
        else:
            self._reader.feed_eof()
        self._gone = True
        self._lost = exc
        for waiter in self._drain_waiters:
            if not waiter.done():
                if exc is None:
                    waiter.set_result(None)
                else:
                    waiter.set_exception(exc)
        if not self._closed.done():
            if exc is None:
                self._closed.set_result(None)
            else:
                self._closed.set_exception(exc)
                self._closed.exception()  # retrieved: nobody need wait for it

    # -- writing (what StreamWriter asks of its protocol) -------------------------------

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        for waiter in self._drain_waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def _drain_helper(self) -> None:
        if self._gone:
            raise ConnectionResetError("Connection lost")
        if not self._paused:
            return
        waiter = self._loop.create_future()
        self._drain_waiters.append(waiter)
        try:
            await waiter
        finally:
            self._drain_waiters.remove(waiter)

    def _get_close_waiter(self, stream: Any) -> asyncio.Future[None]:
        return self._closed


def _pair(
    protocol: BufferedStreamProtocol, transport: asyncio.BaseTransport
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return protocol._reader, asyncio.StreamWriter(
        transport,  # type: ignore[arg-type]
        protocol,
        protocol._reader,
        protocol._loop,
    )


async def accept_tls(
    sock: socket.socket, context: ssl.SSLContext, limit: int, handshake_timeout: float
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """An accepted socket, its TLS handshake done: a reader and a writer."""
    loop = asyncio.get_running_loop()
    protocol = BufferedStreamProtocol(asyncio.StreamReader(limit=limit), loop)
    transport, _ = await loop.connect_accepted_socket(
        lambda: protocol, sock, ssl=context, ssl_handshake_timeout=handshake_timeout
    )
    return _pair(protocol, transport)


async def open_tls(
    host: str,
    port: int,
    context: ssl.SSLContext,
    server_hostname: str,
    limit: int,
    local_addr: tuple[str, int] | None = None,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A TLS connection to host:port: a reader and a writer."""
    loop = asyncio.get_running_loop()
    protocol = BufferedStreamProtocol(asyncio.StreamReader(limit=limit), loop)
    transport, _ = await loop.create_connection(
        lambda: protocol,
        host,
        port,
        ssl=context,
        server_hostname=server_hostname,
        local_addr=local_addr,
    )
    return _pair(protocol, transport)
