"""The WAN benchmark's slow link (bench/delay_proxy.py): delay each way, one round trip per
new connection, a rate shared by all connections, half-closes, and its counters."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
import time
from pathlib import Path

from bench.delay_proxy import DelayProxy, Direction, Link, ProxyProcess, opens_tls
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import run_hagate
from tests.net import free_port


def test_bytes_leave_at_the_rate_and_arrive_a_one_way_delay_later() -> None:
    d = Direction(delay=0.05, rate=1000.0)
    assert d.arrival(0.0, 100) == 0.1 + 0.05
    # The link is busy until 0.1: the next 100 bytes queue behind, even if offered earlier.
    assert d.arrival(0.05, 100) == 0.2 + 0.05
    # An idle link sends at once; a connection's first byte waits for its handshake.
    assert d.arrival(1.0, 0) == 1.05
    assert d.arrival(2.0, 10, not_before=3.0) == 3.05
    assert d.busy_until == 2.01  # the wait for the handshake does not hold the link


async def echo_server() -> tuple[asyncio.Server, int]:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.write(b"bye")  # after the client's half-close, the answer still gets back
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def through(link: Link) -> tuple[DelayProxy, asyncio.Server, int]:
    server, port = await echo_server()
    proxy = DelayProxy(link, ("127.0.0.1", port))
    return proxy, server, await proxy.start()


def test_a_new_connection_pays_a_round_trip_and_each_exchange_one_more() -> None:
    async def main() -> tuple[float, float, bytes]:
        proxy, server, port = await through(Link("100 ms", 0.100, 1000.0))
        start = time.monotonic()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"hello")
        assert await reader.readexactly(5) == b"hello"
        first = time.monotonic() - start
        start = time.monotonic()
        writer.write(b"again")
        assert await reader.readexactly(5) == b"again"
        second = time.monotonic() - start
        writer.write_eof()
        tail = await reader.read()
        writer.close()
        await proxy.close()
        server.close()
        return first, second, tail

    first, second, tail = asyncio.run(main())
    assert 0.2 <= first < 0.4  # the handshake's round trip, then the request's
    assert 0.1 <= second < 0.2
    assert tail == b"bye"


def test_the_rate_bounds_a_transfer_and_is_shared_by_connections() -> None:
    size = 250_000

    async def one(port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"x" * size)
        writer.write_eof()
        got = await reader.read()
        assert len(got) == size + 3
        writer.close()

    async def main() -> tuple[float, float, dict[str, int]]:
        # 8 Mbit/s is 1 MB/s each way; echoed bytes cross the link twice (once each way).
        proxy, server, port = await through(Link("10 ms", 0.010, 8.0))
        start = time.monotonic()
        await one(port)
        alone = time.monotonic() - start
        start = time.monotonic()
        await asyncio.gather(one(port), one(port))
        shared = time.monotonic() - start
        stats = proxy.stats()
        await proxy.close()
        server.close()
        return alone, shared, stats

    alone, shared, stats = asyncio.run(main())
    assert 0.25 <= alone < 1.0
    assert 0.5 <= shared < 2.0  # two connections share the one link
    assert stats == {
        "connections": 3,
        "tls_handshakes": 0,
        "bytes_up": 3 * size,
        "bytes_down": 3 * (size + 3),
    }


def test_tls_handshakes_are_counted_and_reset(tmp_path: Path) -> None:
    state = tmp_path / "state"
    r = run_hagate("init", "--hostname", "ha.test", "--upstream", "http://127.0.0.1:1", state=state)
    assert r.code == 0, r.err
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(state / "server.crt", state / "server.key")
    client_ctx = ssl.create_default_context(cafile=str(state / "ca.crt"))

    async def main() -> tuple[dict[str, int], dict[str, int]]:
        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(await reader.readexactly(4))
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=server_ctx)
        proxy = DelayProxy(Link("2 ms", 0.002, 100.0), ("127.0.0.1", server_port(server)))
        port = await proxy.start()
        for _ in range(2):
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=client_ctx, server_hostname="ha.test"
            )
            writer.write(b"ping")
            assert await reader.readexactly(4) == b"ping"
            writer.close()
        plain = await asyncio.open_connection("127.0.0.1", port)
        plain[1].write(b"GET / HTTP/1.1\r\n\r\n")
        await plain[1].drain()
        await asyncio.sleep(0.05)
        plain[1].close()
        before = proxy.stats()
        proxy.reset()
        after = proxy.stats()
        await proxy.close()
        server.close()
        return before, after

    before, after = asyncio.run(main())
    assert before["connections"] == 3 and before["tls_handshakes"] == 2
    assert before["bytes_up"] > 2 * 500 and before["bytes_down"] > 2 * 1000  # hellos, certs
    assert after == {"connections": 0, "tls_handshakes": 0, "bytes_up": 0, "bytes_down": 0}


def server_port(server: asyncio.Server) -> int:
    port: int = server.sockets[0].getsockname()[1]
    return port


def test_a_failed_target_drops_the_client() -> None:
    async def main() -> bytes:
        proxy = DelayProxy(Link("2 ms", 0.002, 100.0), ("127.0.0.1", free_port()))
        port = await proxy.start()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        got = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        await proxy.close()
        return got

    assert asyncio.run(main()) == b""


def client_hello() -> bytes:
    ctx = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="ha.test")
    with contextlib.suppress(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


def test_a_client_hello_is_told_from_plain_bytes() -> None:
    hello = client_hello()
    assert opens_tls(hello) is True
    assert opens_tls(hello[:20]) is None  # more bytes needed
    assert opens_tls(b"GET / HTTP/1.1\r\n") is False
    assert opens_tls(b"") is None


@given(st.binary(max_size=600))
def test_any_first_bytes_get_an_answer(data: bytes) -> None:
    assert opens_tls(data) in (True, False, None)
    if len(data) >= 5 and data[0] != 22:
        assert opens_tls(data) is False


def test_the_proxy_process_reports_its_counters() -> None:
    loop = asyncio.new_event_loop()
    server, echo_port = loop.run_until_complete(echo_server())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    proxy = ProxyProcess(free_port(), echo_port, Link("20 ms", 0.020, 10.0))
    try:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as s:
            s.sendall(b"abc")
            s.shutdown(socket.SHUT_WR)
            got = b""
            while data := s.recv(100):
                got += data
        assert got == b"abcbye"
        assert proxy.stats() == {
            "connections": 1,
            "tls_handshakes": 0,
            "bytes_up": 3,
            "bytes_down": 6,
        }
        proxy.reset()
        assert proxy.stats()["connections"] == 0
        # A connection open when the link drops is broken, and the next one works.
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as s:
            s.sendall(b"x")
            assert s.recv(1) == b"x"
            proxy.drop()
            with contextlib.suppress(ConnectionResetError):
                assert s.recv(1) == b""
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as s:
            s.sendall(b"y")
            assert s.recv(1) == b"y"
        assert proxy.stats()["connections"] == 2
    finally:
        proxy.stop()
        loop.call_soon_threadsafe(server.close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
    assert proxy.proc.returncode == 0
