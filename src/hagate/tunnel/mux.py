"""Many streams over one tunnel connection, each with its own flow control.

Rules:
  1. A stream never sends more DATA than its peer has granted (INITIAL_WINDOW, then WINDOW
     frames). The receiver grants more only once the bytes have been written on to their
     destination, so a client that stops reading holds at most one window of memory in the
     relay and stalls only its own stream.
  2. DATA frames are at most `CHUNK` bytes and streams take turns on the shared connection,
     so one large download cannot starve the others (measured in bench/framing_bench.py).
  3. Any protocol violation (FrameError, DATA beyond the window) closes the whole tunnel
     connection: the other side is broken or hostile.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import Callable, Coroutine
from typing import Any

from hagate.tunnel.frames import (
    INITIAL_WINDOW,
    Frame,
    FrameDecoder,
    FrameError,
    FrameType,
    encode,
    window_increment,
    window_payload,
)

CHUNK = 65536  # bench/framing_bench.py: 64 KiB frames beat 4 and 16 KiB on speed and fairness
GRANT_THRESHOLD = INITIAL_WINDOW // 4


class StreamReset(ConnectionError):
    """The stream was reset by the peer or the tunnel went away."""


class Stream:
    def __init__(self, mux: Mux, stream_id: int, meta: dict[str, Any] | None = None) -> None:
        self.mux = mux
        self.id = stream_id
        self.meta = meta or {}
        self.send_window = INITIAL_WINDOW
        self._window_open = asyncio.Event()
        self._window_open.set()
        self._inbound: list[bytes] = []
        self._inbound_bytes = 0
        self._readable = asyncio.Event()
        self._eof = False
        self._reset = False
        self._fin_sent = False
        self._ungranted = 0

    # -- receiving ------------------------------------------------------------------------

    def _deliver(self, data: bytes) -> None:
        if self._inbound_bytes + len(data) > INITIAL_WINDOW + GRANT_THRESHOLD:
            raise FrameError(f"stream {self.id}: DATA beyond the granted window")
        self._inbound.append(data)
        self._inbound_bytes += len(data)
        self._readable.set()

    def _end(self, reset: bool) -> None:
        self._eof = True
        self._reset = self._reset or reset
        self._readable.set()
        self._window_open.set()

    async def read(self) -> bytes:
        """The next piece of data; b"" once the peer has finished sending."""
        while not self._inbound:
            if self._reset:
                raise StreamReset(f"stream {self.id} was reset")
            if self._eof:
                return b""
            self._readable.clear()
            await self._readable.wait()
        data = self._inbound.pop(0)
        self._inbound_bytes -= len(data)
        return data

    def consumed(self, n: int) -> None:
        """`n` bytes have been passed on: grant the peer that much more window."""
        self._ungranted += n
        if self._ungranted >= GRANT_THRESHOLD and not self._eof:
            self.mux.send(FrameType.WINDOW, self.id, window_payload(self._ungranted))
            self._ungranted = 0

    # -- sending --------------------------------------------------------------------------

    def _grant(self, n: int) -> None:
        self.send_window += n
        self._window_open.set()

    async def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            while self.send_window <= 0:
                if self._reset:
                    raise StreamReset(f"stream {self.id} was reset")
                self._window_open.clear()
                await self._window_open.wait()
            if self._reset:
                raise StreamReset(f"stream {self.id} was reset")
            n = min(len(view), CHUNK, self.send_window)
            # The usual case, all of it in one frame, goes out without a copy.
            self.mux.send(FrameType.DATA, self.id, data if n == len(data) else bytes(view[:n]))
            self.send_window -= n
            view = view[n:]
            await self.mux.drain()

    def finish(self) -> None:
        """Half-close: no more data from this side."""
        if not self._fin_sent and not self._reset:
            self._fin_sent = True
            self.mux.send(FrameType.FIN, self.id)
            self.mux._maybe_forget(self)

    def reset(self) -> None:
        if not self._reset:
            self._reset = True
            self._end(reset=True)
            if not self.mux.closed:
                self.mux.send(FrameType.RESET, self.id)
            self.mux.streams.pop(self.id, None)

    @property
    def done(self) -> bool:
        return (self._eof and self._fin_sent) or self._reset


OpenHandler = Callable[[Stream], Coroutine[Any, Any, None]]


class Mux:
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        on_open: OpenHandler | None = None,
        first_stream: int = 1,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.on_open = on_open
        self.streams: dict[int, Stream] = {}
        self.decoder = FrameDecoder()
        self.next_id = first_stream
        self.closed = False
        self.last_received = time.monotonic()
        self.tasks: set[asyncio.Task[None]] = set()
        self.opened = 0

    def send(self, frame_type: FrameType, stream: int, payload: bytes = b"") -> None:
        if not self.closed:
            self.writer.write(encode(frame_type, stream, payload))

    async def drain(self) -> None:
        if self.closed:
            raise StreamReset("the tunnel is closed")
        await self.writer.drain()

    def open_stream(self, meta: dict[str, Any]) -> Stream:
        stream = Stream(self, self.next_id, meta)
        self.next_id += 1
        self.streams[stream.id] = stream
        self.send(FrameType.OPEN, stream.id, json.dumps(meta).encode())
        self.opened += 1
        return stream

    def _maybe_forget(self, stream: Stream) -> None:
        if stream.done:
            self.streams.pop(stream.id, None)

    async def run(self) -> None:
        """Read and dispatch frames until the connection ends; then every stream is reset."""
        try:
            while data := await self.reader.read(65536):
                self.last_received = time.monotonic()
                for frame in self.decoder.feed(data):
                    self._dispatch(frame)
        finally:
            self.close()

    def _dispatch(self, frame: Frame) -> None:
        t = frame.type
        if t is FrameType.PING:
            self.send(FrameType.PONG, 0, frame.payload)
            return
        if t in (FrameType.PONG, FrameType.HELLO, FrameType.WELCOME, FrameType.REFUSED):
            return
        if t is FrameType.OPEN:
            if self.on_open is None or frame.stream in self.streams:
                raise FrameError("unexpected OPEN")
            try:
                meta = json.loads(frame.payload)
            except ValueError:
                raise FrameError("malformed OPEN") from None
            opened = Stream(self, frame.stream, meta if isinstance(meta, dict) else {})
            self.streams[frame.stream] = opened
            self.opened += 1
            task = asyncio.create_task(self.on_open(opened))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
            return
        stream = self.streams.get(frame.stream)
        if stream is None:
            return  # a frame for a stream already gone: harmless, dropped
        if t is FrameType.DATA:
            stream._deliver(frame.payload)
        elif t is FrameType.WINDOW:
            stream._grant(window_increment(frame.payload))
        elif t is FrameType.FIN:
            stream._end(reset=False)
            self._maybe_forget(stream)
        elif t is FrameType.RESET:
            stream._end(reset=True)
            self.streams.pop(stream.id, None)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for stream in list(self.streams.values()):
            stream._end(reset=True)
        self.streams.clear()
        self.writer.close()


async def pump_in(reader: asyncio.StreamReader, stream: Stream) -> None:
    """Socket -> stream, then FIN."""
    try:
        while data := await reader.read(CHUNK):
            await stream.write(data)
        stream.finish()
    except (ConnectionError, StreamReset):
        stream.reset()


async def pump_out(stream: Stream, writer: asyncio.StreamWriter) -> None:
    """Stream -> socket, granting window as the socket takes the bytes."""
    try:
        while data := await stream.read():
            writer.write(data)
            await writer.drain()
            stream.consumed(len(data))
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, StreamReset):
        stream.reset()


async def splice(
    stream: Stream, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Both directions between a socket and a stream, until both are done."""
    inbound = asyncio.create_task(pump_in(reader, stream))
    outbound = asyncio.create_task(pump_out(stream, writer))
    try:
        await asyncio.gather(inbound, outbound)
    finally:
        for t in (inbound, outbound):
            t.cancel()
        writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer.wait_closed(), 1)
        stream.mux.streams.pop(stream.id, None)


TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT = 10, 5, 3  # silence -> probes -> dead in ~25 s
TCP_USER_TIMEOUT_MS = 30_000  # unacknowledged data for 30 s: the connection is dead


def keepalive(sock: socket.socket | None) -> None:
    """TCP keepalive and a user timeout on a tunnel connection (Linux; elsewhere: none)."""
    if sock is None:
        return
    options = [
        (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1),
        (socket.IPPROTO_TCP, getattr(socket, "TCP_KEEPIDLE", None), TCP_KEEPIDLE),
        (socket.IPPROTO_TCP, getattr(socket, "TCP_KEEPINTVL", None), TCP_KEEPINTVL),
        (socket.IPPROTO_TCP, getattr(socket, "TCP_KEEPCNT", None), TCP_KEEPCNT),
        (socket.IPPROTO_TCP, getattr(socket, "TCP_USER_TIMEOUT", None), TCP_USER_TIMEOUT_MS),
    ]
    for level, option, value in options:
        if option is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(level, option, value)
