"""One connection's bytes for a coroutine: buffered reads with deadlines, writes with backpressure.

This replaces asyncio's StreamReader/StreamWriter pair on the gateway's hot path. A read that
finds its bytes already buffered returns without suspending, and a deadline costs a timer only
when the read does wait. Rules:
  1. At most `limit` bytes are buffered: past it the transport stops reading until the
     coroutine consumes, so a client that sends faster than the upstream reads costs no memory.
  2. A read that waits past its deadline raises TimeoutError; the buffer is kept as it was.
     Deadlines are checked by one timer per event loop every `SWEEP` seconds, not a timer per
     wait: a timeout fires up to `SWEEP` late, and a wait costs no timer of its own.
  3. After the peer's EOF or a lost connection, reads return what is buffered, then b"" (read)
     or IncompleteReadError (readexactly, readuntil); writes after a loss are dropped and
     `drain` raises ConnectionError.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import weakref
from typing import Any, cast

from hagate.http1.bodies import END, BodyReader

DEFAULT_LIMIT = 1 << 18
SWEEP = 0.25


class LimitOverrun(Exception):
    """`readuntil` found no separator within the limit."""


class _Sweeper:
    """The waits of one event loop that have a deadline, expired by a periodic check."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.waiting: dict[asyncio.Future[None], float] = {}
        self.timer: asyncio.TimerHandle | None = None

    def add(self, waiter: asyncio.Future[None], deadline: float) -> None:
        self.waiting[waiter] = deadline
        if self.timer is None:
            self.timer = self.loop.call_later(SWEEP, self.sweep)

    def sweep(self) -> None:
        self.timer = None
        now = self.loop.time()
        for waiter, deadline in list(self.waiting.items()):
            if deadline <= now:
                del self.waiting[waiter]
                if not waiter.done():
                    waiter.set_exception(TimeoutError())
        if self.waiting:
            self.timer = self.loop.call_later(SWEEP, self.sweep)


_sweepers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Sweeper] = (
    weakref.WeakKeyDictionary()
)


def _sweeper(loop: asyncio.AbstractEventLoop) -> _Sweeper:
    sweeper = _sweepers.get(loop)
    if sweeper is None:
        sweeper = _sweepers[loop] = _Sweeper(loop)
    return sweeper


class Channel(asyncio.Protocol):
    def __init__(self, loop: asyncio.AbstractEventLoop, limit: int = DEFAULT_LIMIT) -> None:
        self.loop = loop
        self.limit = limit
        self.buffer = bytearray()
        self.eof = False
        self.lost = False
        self.transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._drain: asyncio.Future[None] | None = None
        self._write_paused = False
        self._read_paused = False
        self._sweeper = _sweeper(loop)
        self._over_ssl = False

    # -- protocol callbacks -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self._over_ssl = transport.get_extra_info("sslcontext") is not None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) >= self.limit and not self._read_paused and self.transport:
            self._read_paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        # A plain TCP peer that half-closes can still be written to (the channel's owner
        # closes it); TLS cannot be half-open, as with asyncio's own streams.
        return not self._over_ssl

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = self.lost = True
        self._wake()
        drain, self._drain = self._drain, None
        if drain is not None and not drain.done():
            drain.set_exception(ConnectionResetError("connection lost"))

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        drain, self._drain = self._drain, None
        if drain is not None and not drain.done():
            drain.set_result(None)

    # -- reading ----------------------------------------------------------------------------

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _consumed(self) -> None:
        if self._read_paused and len(self.buffer) < self.limit and self.transport:
            self._read_paused = False
            self.transport.resume_reading()

    async def _wait(self, deadline: float | None) -> None:
        waiter: asyncio.Future[None] = self.loop.create_future()
        self._waiter = waiter
        if deadline is None:
            try:
                await waiter
            finally:
                self._waiter = None
            return
        if deadline <= self.loop.time():
            self._waiter = None
            raise TimeoutError
        waiting = self._sweeper.waiting
        self._sweeper.add(waiter, deadline)
        try:
            await waiter
        finally:
            self._waiter = None
            waiting.pop(waiter, None)

    def deadline(self, seconds: float) -> float:
        return self.loop.time() + seconds

    async def wait_data(self, deadline: float | None = None) -> bool:
        """Wait until a byte is buffered; False at EOF."""
        while not self.buffer:
            if self.eof:
                return False
            await self._wait(deadline)
        return True

    async def wait_more(self, deadline: float | None = None) -> None:
        """Wait for bytes beyond those buffered now (or EOF); TimeoutError past `deadline`."""
        if not self.eof:
            await self._wait(deadline)

    async def wait_buffered(self, n: int, deadline: float | None = None) -> bool:
        """Wait until `n` bytes are buffered, leaving them there; False at EOF before that."""
        while len(self.buffer) < n:
            if self.eof:
                return False
            await self._wait(deadline)
        return True

    def take(self, n: int) -> bytes | bytearray | None:
        """`read` without waiting: up to `n` buffered bytes, or None when none are buffered
        (and not at EOF). Saves a coroutine when the bytes are already here."""
        if not self.buffer:
            return b"" if self.eof else None
        return self._take(n)

    def take_exactly(self, n: int) -> bytes | bytearray | None:
        """`readexactly` without waiting: the next `n` bytes when they are all buffered, else
        None. When they are everything buffered, the buffer itself is handed over."""
        if len(self.buffer) < n:
            return None
        return self._take(n)

    def take_until(self, sep: bytes, limit: int, start: int = 0) -> bytes | None:
        """`readuntil` without waiting: None unless `sep` is already buffered (searched from
        `start`)."""
        i = self.buffer.find(sep, start)
        if i < 0:
            return None
        end = i + len(sep)
        if end > limit:
            raise LimitOverrun
        data = bytes(self.buffer[:end])
        del self.buffer[:end]
        self._consumed()
        return data

    async def read(self, n: int, deadline: float | None = None) -> bytes | bytearray:
        """Up to `n` bytes, waiting for at least one; b"" at EOF. When that is everything
        buffered, the buffer itself is handed over (no copy): the caller owns it."""
        buf = self.buffer
        while not buf:
            if self.eof:
                return b""
            await self._wait(deadline)
        return self._take(n)

    def _take(self, n: int) -> bytes | bytearray:
        buf = self.buffer
        data: bytes | bytearray
        if len(buf) <= n:
            data = buf
            self.buffer = bytearray()
        else:
            data = bytes(buf[:n])
            del buf[:n]
        self._consumed()
        return data

    async def readexactly(self, n: int, deadline: float | None = None) -> bytes:
        if n > self.limit:
            raise ValueError("readexactly: more than the channel's limit")
        buf = self.buffer
        while len(buf) < n:
            if self.eof:
                partial = bytes(buf)
                buf.clear()
                raise asyncio.IncompleteReadError(partial, n)
            await self._wait(deadline)
        data = bytes(buf[:n])
        del buf[:n]
        self._consumed()
        return data

    async def readuntil(self, sep: bytes, limit: int, deadline: float | None = None) -> bytes:
        """Bytes up to and including `sep`, at most `limit` of them (else LimitOverrun)."""
        start = 0
        while True:
            data = self.take_until(sep, limit, start)
            if data is not None:
                return data
            buf = self.buffer
            if len(buf) >= limit:
                raise LimitOverrun
            if self.eof:
                raise asyncio.IncompleteReadError(bytes(buf), None)
            start = max(0, len(buf) - len(sep) + 1)  # a slow sender is not searched again
            await self._wait(deadline)

    def take_body(self, reader: BodyReader, most: int) -> bytes | bytearray | None:
        """The body's next piece (at most `most` bytes) if it is buffered, b"" at the body's
        end, or None when more must arrive first. The reader's framing errors propagate, and so
        does an end of stream that cuts the body short."""
        n = reader.next(self.buffer, most)
        if n > 0:
            return self._take(n)
        if n != END and not self.eof:
            if self._read_paused:  # framing was consumed: room for more
                self._consumed()
            return None
        if n != END:
            reader.at_eof()  # raises unless the body lasts until the close
        self._consumed()
        return b""

    async def read_body(
        self, reader: BodyReader, most: int, deadline: float | None = None
    ) -> bytes | bytearray:
        """`take_body`, waiting (until `deadline`) for the bytes it needs."""
        while True:
            piece = self.take_body(reader, most)
            if piece is not None:
                return piece
            await self._wait(deadline)

    def at_eof(self) -> bool:
        return self.eof and not self.buffer

    # -- writing ----------------------------------------------------------------------------

    def write(self, data: bytes | bytearray) -> None:
        if self.transport is not None and not self.lost:
            self.transport.write(data)

    @property
    def drained(self) -> bool:
        """Nothing to wait for before writing more: `drain` would return at once. Saves the
        coroutine on the hot path: `if not ch.drained: await ch.drain()`."""
        return not (self._write_paused or self.lost)

    async def drain(self) -> None:
        if self.lost:
            raise ConnectionResetError("connection lost")
        if self._write_paused:
            if self._drain is None:
                self._drain = self.loop.create_future()
            await self._drain

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def cut(self) -> None:
        """End the connection as broken: no TLS close_notify, and a TCP reset where the
        connection is TCP, so the peer cannot take a cut-short body for a whole one (an
        HTTP/1.0 client reads a body until the close)."""
        if self.transport is None:
            return
        sock = self.transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.abort()

    def is_closing(self) -> bool:
        return self.lost or self.transport is None or self.transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if self.transport is None:
            return default
        return self.transport.get_extra_info(name, default)
