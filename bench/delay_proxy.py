"""A slow link in user space: a TCP proxy on loopback that behaves like a mobile connection.

This machine's kernel has no netem, so the benchmark's links are emulated here. Each direction
of the link is one queue shared by every connection through the proxy (one phone's link):
bytes leave at the link's rate, in order, and arrive a one-way delay (half the round trip)
later. A new connection is charged one round trip before its first byte, as TCP's handshake
would: the client's first byte reaches the server 1.5 round trips after it connected, and the
answer is back after 2, as on a real network.

What it does not model: loss, TCP's slow start and receive windows. The proxy reads from the
sender as fast as the sender writes (up to `BUFFER` bytes queued per connection and direction),
so a sender never waits on the window; the link's rate is what bounds a transfer.

The proxy counts what a browser run costs: connections, TLS handshakes (connections whose
first bytes are a TLS ClientHello) and bytes each way.

Usage: python -m bench.delay_proxy LISTEN_PORT TARGET_PORT RTT_MS MBIT
It prints `ready`, then answers lines on stdin: `stats` (a JSON line of the counters) and
`reset` (zeroes them, then prints `ok`), `drop` (breaks every open connection, then prints
`ok`); it stops when stdin closes. `ProxyProcess` drives it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass

from hagate.clienthello import MAX_HELLO, ClientHelloError, parse_client_hello

BUFFER = 1 << 20  # bytes queued per connection and direction before reading pauses
CHUNK = 16384


@dataclass(frozen=True)
class Link:
    name: str
    rtt: float  # seconds, round trip
    mbit: float  # each direction

    @property
    def rate(self) -> float:
        """Bytes per second."""
        return self.mbit * 1e6 / 8


LINKS = (Link("60 ms, 20 Mbit/s", 0.060, 20.0), Link("150 ms, 5 Mbit/s", 0.150, 5.0))


def opens_tls(first: bytes) -> bool | None:
    """Whether a connection's first bytes are a TLS ClientHello (hagate's own parser, the one
    the relay routes with); None while more bytes are needed to tell."""
    try:
        return parse_client_hello(first) is not None or None
    except ClientHelloError:
        return False


class Direction:
    """One direction of the link: a FIFO at the link's rate, then the propagation delay."""

    def __init__(self, delay: float, rate: float) -> None:
        self.delay = delay
        self.rate = rate
        self.busy_until = 0.0

    def arrival(self, now: float, size: int, not_before: float = 0.0) -> float:
        """When `size` bytes offered at `now` arrive at the far end, if they may not leave
        before `not_before` (a new connection's handshake). That wait does not hold the link
        for other connections."""
        start = max(now, self.busy_until)
        self.busy_until = start + size / self.rate
        return max(self.busy_until, not_before) + self.delay


@dataclass
class Counters:
    connections: int = 0
    tls_handshakes: int = 0
    bytes_up: int = 0  # client to server
    bytes_down: int = 0


class DelayProxy:
    def __init__(self, link: Link, target: tuple[str, int]) -> None:
        self.link = link
        self.target = target
        self.up = Direction(link.rtt / 2, link.rate)
        self.down = Direction(link.rtt / 2, link.rate)
        self.counters = Counters()
        self.server: asyncio.Server | None = None
        self.open: set[asyncio.StreamWriter] = set()  # both ends of every open connection

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self.server = await asyncio.start_server(self._accept, host, port)
        bound: int = self.server.sockets[0].getsockname()[1]
        return bound

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 2)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        opened = loop.time()
        self.counters.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        # The client's first byte leaves one round trip after connect (SYN, SYN-ACK).
        first_allowed = opened + self.link.rtt
        self.open |= {writer, up_writer}

        def abort() -> None:  # one side failed: drop both, as a broken path would
            for w in (writer, up_writer):
                w.transport.abort()

        try:
            await asyncio.gather(
                self._pipe(reader, up_writer, self.up, first_allowed, True, abort),
                self._pipe(up_reader, writer, self.down, 0.0, False, abort),
                return_exceptions=True,
            )
        except asyncio.CancelledError:
            pass  # the proxy is stopping with this connection open
        finally:
            for w in (writer, up_writer):
                w.close()
                self.open.discard(w)

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        direction: Direction,
        not_before: float,
        upstream: bool,
        abort: Callable[[], None],
    ) -> None:
        loop = asyncio.get_running_loop()
        queue: deque[tuple[float, bytes]] = deque()
        queued = 0
        more = asyncio.Event()
        room = asyncio.Event()
        room.set()
        done = False
        hello: bytearray | None = bytearray() if upstream else None

        async def deliver() -> None:
            try:
                await delivery()
            except (OSError, RuntimeError):
                abort()
                room.set()

        async def delivery() -> None:
            nonlocal queued
            while True:
                while not queue:
                    if done:
                        return
                    more.clear()
                    await more.wait()
                at, data = queue.popleft()
                wait = at - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not data:  # the sender's end: pass the half-close on
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                writer.write(data)
                queued -= len(data)
                if queued < BUFFER:
                    room.set()
                await writer.drain()

        delivering = asyncio.ensure_future(deliver())
        try:
            while True:
                try:
                    data = await reader.read(CHUNK)
                except OSError:
                    data = b""
                if hello is not None and data:
                    hello += data
                    tls = opens_tls(bytes(hello))
                    if tls is not None or len(hello) > MAX_HELLO:
                        self.counters.tls_handshakes += bool(tls)
                        hello = None
                if upstream:
                    self.counters.bytes_up += len(data)
                else:
                    self.counters.bytes_down += len(data)
                queue.append((direction.arrival(loop.time(), len(data), not_before), data))
                queued += len(data)
                more.set()
                if not data or delivering.done():
                    break
                if queued >= BUFFER:
                    room.clear()
                    await room.wait()
        finally:
            done = True
            more.set()
            with contextlib.suppress(Exception):
                await delivering

    def stats(self) -> dict[str, int]:
        return asdict(self.counters)

    def reset(self) -> None:
        self.counters = Counters()

    def drop(self) -> None:
        """Break every open connection, as a phone that lost its network does: both ends see
        a reset, nothing more crosses."""
        for w in list(self.open):
            w.transport.abort()


async def serve(port: int, target: int, link: Link) -> None:
    proxy = DelayProxy(link, ("127.0.0.1", target))
    await proxy.start(port=port)
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    while line := (await stdin.readline()).strip():
        if line == b"stats":
            print(json.dumps(proxy.stats()), flush=True)
        elif line == b"reset":
            proxy.reset()
            print("ok", flush=True)
        elif line == b"drop":
            proxy.drop()
            print("ok", flush=True)
        else:
            print(json.dumps({"error": f"unknown command {line.decode(errors='replace')}"}))
    await proxy.close()


def main(argv: list[str]) -> None:
    port, target, rtt_ms, mbit = int(argv[0]), int(argv[1]), float(argv[2]), float(argv[3])
    link = Link(f"{rtt_ms:g} ms, {mbit:g} Mbit/s", rtt_ms / 1000, mbit)
    import uvloop

    uvloop.run(serve(port, target, link))


class ProxyProcess:
    """The proxy in its own process (so a busy benchmark process cannot skew its timing),
    driven through its stdin and stdout."""

    def __init__(self, port: int, target: int, link: Link) -> None:
        self.port = port
        self.link = link
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.delay_proxy",
                str(port),
                str(target),
                f"{link.rtt * 1000:g}",
                f"{link.mbit:g}",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        if self._line() != "ready":
            raise RuntimeError(f"the delay proxy for port {target} did not start")

    def _line(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().strip()

    def _say(self, command: str) -> str:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._line()

    def stats(self) -> dict[str, int]:
        stats: dict[str, int] = json.loads(self._say("stats"))
        return stats

    def reset(self) -> None:
        if self._say("reset") != "ok":
            raise RuntimeError("the delay proxy did not reset")

    def drop(self) -> None:
        if self._say("drop") != "ok":
            raise RuntimeError("the delay proxy did not drop its connections")

    def stop(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


if __name__ == "__main__":
    main(sys.argv[1:])
