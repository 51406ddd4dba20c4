"""The gateway's Channel: buffered reads with deadlines and bounded buffering, over real sockets."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

import pytest
import uvloop

from hagate.gateway.channel import Channel, LimitOverrun


@pytest.fixture(params=["uvloop", "asyncio"], autouse=True)
def loop_kind(request: pytest.FixtureRequest) -> str:
    LOOP[0] = request.param
    return str(request.param)


LOOP = ["uvloop"]


def run(test: Callable[[Channel, socket.socket], Awaitable[None]], limit: int = 1 << 16) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair()
        ours.setblocking(False)
        channel = Channel(loop, limit)
        await loop.connect_accepted_socket(lambda: channel, ours)
        try:
            await test(channel, theirs)
        finally:
            channel.close()
            theirs.close()

    if LOOP[0] == "uvloop":
        uvloop.run(main())
    else:
        asyncio.run(main())


def test_reads_what_is_there_and_waits_for_the_rest() -> None:
    async def test(ch: Channel, peer: socket.socket) -> None:
        peer.sendall(b"GET / HTTP/1.1\r\n")
        loop = asyncio.get_running_loop()
        loop.call_later(0.05, peer.sendall, b"Host: a\r\n\r\nrest")
        assert await ch.readuntil(b"\r\n\r\n", 100, ch.deadline(5)) == (
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
        )
        assert await ch.readexactly(4) == b"rest"

    run(test)


def test_a_deadline_raises_timeout_and_keeps_the_buffer() -> None:
    async def test(ch: Channel, peer: socket.socket) -> None:
        peer.sendall(b"partial head")
        with pytest.raises(TimeoutError):
            await ch.readuntil(b"\r\n\r\n", 100, ch.deadline(0.1))
        assert bytes(ch.buffer) == b"partial head"
        peer.sendall(b"\r\n\r\n")
        assert await ch.readuntil(b"\r\n\r\n", 100) == b"partial head\r\n\r\n"

    run(test)


def test_no_separator_within_the_limit_is_an_overrun() -> None:
    async def test(ch: Channel, peer: socket.socket) -> None:
        peer.sendall(b"x" * 200)
        with pytest.raises(LimitOverrun):
            await ch.readuntil(b"\r\n\r\n", 100, ch.deadline(5))

    run(test)


def test_eof_ends_reads_cleanly() -> None:
    async def test(ch: Channel, peer: socket.socket) -> None:
        peer.sendall(b"abc")
        peer.shutdown(socket.SHUT_WR)
        assert await ch.read(10, ch.deadline(5)) == b"abc"
        assert await ch.read(10, ch.deadline(5)) == b""
        assert not await ch.wait_data(ch.deadline(5))
        with pytest.raises(asyncio.IncompleteReadError):
            await ch.readexactly(1)
        assert ch.at_eof()

    run(test)


def test_a_fast_sender_is_paused_at_the_limit() -> None:
    """A peer that sends more than the reader consumes fills the channel up to its limit,
    then the kernel's buffers; the channel's own memory stays bounded."""

    async def test(ch: Channel, peer: socket.socket) -> None:
        peer.setblocking(False)
        sent = 0
        chunk = b"y" * 65536
        for _ in range(200):  # bounded: at most 13 MB offered
            try:
                sent += peer.send(chunk)
            except BlockingIOError:
                await asyncio.sleep(0.01)
                try:
                    sent += peer.send(chunk)
                except BlockingIOError:
                    break
        await asyncio.sleep(0.1)
        assert sent > 4 * ch.limit  # the peer really did send far more than the limit
        # Bounded by the limit plus one read of the transport (asyncio reads up to 256 KiB).
        assert ch.limit <= len(ch.buffer) <= ch.limit + 262144
        assert ch.transport is not None and not ch.transport.is_reading()
        received = 0
        while received < sent:
            received += len(await ch.read(65536, ch.deadline(5)))
        assert received == sent

    run(test, limit=1 << 16)


def test_after_the_connection_is_lost_drain_raises() -> None:
    async def test(ch: Channel, peer: socket.socket) -> None:
        peer.close()
        assert await ch.read(10, ch.deadline(5)) == b""
        await asyncio.sleep(0.05)
        ch.write(b"dropped")  # no error: the write is dropped
        ch.abort()
        await asyncio.sleep(0.05)
        with pytest.raises(ConnectionError):
            await ch.drain()

    run(test)


def test_deadlines_fire_on_time_and_finished_waits_leave_nothing_behind() -> None:
    from hagate.gateway.channel import SWEEP

    async def test(ch: Channel, peer: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(TimeoutError):
            await ch.read(10, ch.deadline(0.3))
        late = loop.time() - started - 0.3
        assert 0 <= late <= SWEEP + 0.1
        loop.call_later(0.05, peer.sendall, b"x")
        assert await ch.read(10, ch.deadline(5)) == b"x"
        assert not ch._sweeper.waiting  # the answered wait was taken off the list
        with pytest.raises(TimeoutError):  # a deadline already past fails at once
            await ch.read(10, ch.deadline(-1))

    run(test)


def test_a_half_closed_tcp_peer_can_still_be_answered() -> None:
    async def test(ch: Channel, peer: socket.socket) -> None:
        peer.sendall(b"question")
        peer.shutdown(socket.SHUT_WR)
        assert await ch.read(100, ch.deadline(5)) == b"question"
        assert await ch.read(100, ch.deadline(5)) == b""
        ch.write(b"answer")
        await ch.drain()
        await asyncio.sleep(0.05)
        peer.settimeout(5)
        assert peer.recv(100) == b"answer"

    run(test)


def test_a_read_of_everything_buffered_is_not_changed_by_later_data() -> None:
    async def test(ch: Channel, peer: socket.socket) -> None:
        peer.sendall(b"first")
        assert await ch.wait_data(ch.deadline(5))
        whole = await ch.read(100)  # all of the buffer: handed over, not copied
        assert whole == b"first"
        peer.sendall(b"second")
        assert await ch.read(100, ch.deadline(5)) == b"second"
        assert whole == b"first"
        peer.sendall(b"0123456789")
        await asyncio.sleep(0.05)
        assert await ch.read(4) == b"0123" and await ch.read(100) == b"456789"

    run(test)


def test_take_and_take_until_answer_from_the_buffer_without_waiting() -> None:
    async def test(ch: Channel, peer: socket.socket) -> None:
        assert ch.take(10) is None and ch.take_until(b"\r\n\r\n", 100) is None
        peer.sendall(b"GET / HTTP/1.1\r\n\r\nbody")
        assert await ch.wait_data(ch.deadline(5))
        while b"body" not in ch.buffer:
            await asyncio.sleep(0.01)
        assert ch.take_until(b"\r\n\r\n", 100) == b"GET / HTTP/1.1\r\n\r\n"
        assert ch.take_until(b"\r\n\r\n", 100) is None  # nothing more, and nothing consumed
        assert ch.take(2) == b"bo" and ch.take(10) == b"dy"
        peer.sendall(b"x" * 50 + b"\r\n\r\n")
        while len(ch.buffer) < 54:
            await asyncio.sleep(0.01)
        with pytest.raises(LimitOverrun):
            ch.take_until(b"\r\n\r\n", 20)
        peer.shutdown(socket.SHUT_WR)
        assert await ch.read(100) == b"x" * 50 + b"\r\n\r\n"
        while not ch.eof:
            await asyncio.sleep(0.01)
        assert ch.take(10) == b""  # at EOF: empty, not None

    run(test)


def test_take_exactly_takes_all_n_bytes_or_nothing() -> None:
    async def test(ch: Channel, peer: socket.socket) -> None:
        assert ch.take_exactly(3) is None
        peer.sendall(b"abcdefgh")
        while len(ch.buffer) < 8:
            await asyncio.sleep(0.01)
        assert ch.take_exactly(9) is None and bytes(ch.buffer) == b"abcdefgh"  # nothing taken
        assert ch.take_exactly(3) == b"abc"  # the rest stays: the next message's
        rest = ch.take_exactly(5)
        assert rest == b"defgh" and ch.buffer == b""  # all of it: handed over
        peer.sendall(b"ij")
        while len(ch.buffer) < 2:
            await asyncio.sleep(0.01)
        assert rest == b"defgh" and ch.take_exactly(2) == b"ij"

    run(test)


def test_a_separator_split_across_arrivals_is_found() -> None:
    async def test(ch: Channel, peer: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        peer.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r")
        loop.call_later(0.05, peer.sendall, b"\nrest")
        assert await ch.readuntil(b"\r\n\r\n", 100, ch.deadline(5)) == (
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
        )

    run(test)
