"""The request path's defects and weaknesses, each pinned: Home Assistant's framing errors are
Home Assistant's (and never corrupt the answer), slow uploads are not cut by the response
timeout, trickling bodies are, open connections are capped, and memory comes back."""

from __future__ import annotations

import contextlib
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.gateway.harness import Gateway, make_gateway, read_response


@pytest.fixture
def gw(tmp_path: Path) -> Iterator[Gateway]:
    g = make_gateway(tmp_path)
    g.configure(
        gateway={
            "header_timeout": 2,
            "idle_timeout": 5,
            "response_timeout": 2,
            "body_timeout": 1.5,
            "max_connections": 12,
            "max_connections_per_ip": 4,
        }
    )
    g.issue("phone")
    g.start()
    yield g
    g.stop()
    g.upstream.close()


def rows_for(gw: Gateway, path: str, count: int = 1) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 8
    while len(rows := [e for e in gw.events() if e["path"] == path]) < count:
        assert time.monotonic() < deadline, f"no event for {path}"
        time.sleep(0.2)
    return rows


def curl(gw: Gateway, path: str, *extra: str) -> tuple[int, bytes, str]:
    done = subprocess.run(
        [
            "curl", "-sS", "--max-time", "20", *extra,
            "--cacert", str(gw.state / "ca.crt"),
            "--cert", str(gw.certs_dir / "phone.crt"), "--key", str(gw.certs_dir / "phone.key"),
            "--resolve", f"ha.test:{gw.port}:127.0.0.1",
            f"https://ha.test:{gw.port}{path}",
        ],
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    return done.returncode, done.stdout, done.stderr.decode()


@pytest.mark.parametrize(
    ("kind", "reason", "sent"),
    [
        ("size", "malformed chunk size line", b""),
        ("long", "chunk data longer than its size", b"abc"),  # the chunk's 3 bytes streamed
        ("line", "chunk size line too long", b""),
        ("trailers", "trailers too large", b""),
    ],
)
@pytest.mark.parametrize("version", ["--http1.1", "--http1.0"])
def test_a_framing_error_of_home_assistant_cuts_the_client_and_is_its_fault(
    gw: Gateway, kind: str, reason: str, sent: bytes, version: str
) -> None:
    code, body, err = curl(gw, f"/badchunk/{kind}", version)
    # curl sees a broken transfer (not a whole body), and nothing was written after the head
    # but the good chunk data: no error page inside the body, for either client.
    assert code != 0, (code, body, err)
    assert body == b"hello world" + sent
    (row,) = rows_for(gw, f"/badchunk/{kind}")
    assert (row["action"], row["status"]) == ("upstream_error", 200)
    assert reason in row["reason"] and "Home Assistant" in row["reason"]
    assert "the client connection was cut" in row["reason"]


def test_a_whole_chunked_answer_still_ends_cleanly(gw: Gateway) -> None:
    for version in ("--http1.1", "--http1.0"):
        code, body, err = curl(gw, "/chunked", version)
        assert (code, body) == (0, b"hello world"), err


def test_nothing_is_written_after_the_head_on_a_framing_error(gw: Gateway) -> None:
    ctx = gw.context("phone")
    for version in ("HTTP/1.1", "HTTP/1.0"):
        with ctx.wrap_socket(
            gw.tcp(), server_hostname="ha.test", suppress_ragged_eofs=False
        ) as sock:
            sock.sendall(f"GET /badchunk/size {version}\r\nHost: ha.test\r\n\r\n".encode())
            received = b""
            with pytest.raises((ConnectionResetError, ssl.SSLError)):
                while data := sock.recv(65536):
                    received += data
        assert received.count(b"HTTP/1.1 ") == 1, received
        assert received.endswith(b"hello\r\n6\r\n world\r\n" if version == "HTTP/1.1" else b"world")


def send_slowly(sock: ssl.SSLSocket, body: bytes, pieces: int, pause: float) -> None:
    step = -(-len(body) // pieces)
    for i in range(0, len(body), step):
        sock.sendall(body[i : i + step])
        time.sleep(pause)


def test_an_upload_longer_than_the_response_timeout_is_answered(gw: Gateway) -> None:
    body = b"x" * 40_000
    with gw.connect("phone") as sock:
        sock.sendall(
            b"POST /upload HTTP/1.1\r\nHost: ha.test\r\nContent-Length: %d\r\n\r\n" % len(body)
        )
        start = time.monotonic()
        send_slowly(sock, body, 8, 0.6)  # 4.8 s: more than response_timeout (2 s)
        r = read_response(sock, bytearray())
    assert time.monotonic() - start > 4
    assert r.status == 200 and b'"body_len": 40000' in r.body
    assert gw.upstream.seen[-1].body == body


def test_a_chunked_upload_longer_than_the_response_timeout_is_answered(gw: Gateway) -> None:
    with gw.connect("phone") as sock:
        sock.sendall(
            b"POST /upload HTTP/1.1\r\nHost: ha.test\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        for _ in range(6):
            sock.sendall(b"5\r\nhello\r\n")
            time.sleep(0.6)
        sock.sendall(b"0\r\n\r\n")
        r = read_response(sock, bytearray())
    assert r.status == 200 and gw.upstream.seen[-1].body == b"hello" * 6


def test_home_assistant_still_has_only_the_response_timeout_once_the_body_is_sent(
    gw: Gateway,
) -> None:
    with gw.connect("phone") as sock:
        sock.sendall(b"POST /slow/5 HTTP/1.1\r\nHost: ha.test\r\nContent-Length: 4\r\n\r\n")
        time.sleep(1)
        start = time.monotonic()
        sock.sendall(b"data")
        r = read_response(sock, bytearray())
    assert r.status == 504 and 1.5 < time.monotonic() - start < 4


def test_a_trickling_body_gets_408_and_home_assistants_connection_is_closed(
    gw: Gateway,
) -> None:
    with gw.connect("phone") as sock:
        sock.sendall(b"POST /upload HTTP/1.1\r\nHost: ha.test\r\nContent-Length: 100\r\n\r\nab")
        start = time.monotonic()
        r = read_response(sock, bytearray())
        elapsed = time.monotonic() - start
    assert r.status == 408 and 1.2 < elapsed < 3.5, elapsed  # body_timeout is 1.5 s
    assert r.header("connection") == "close"
    (row,) = rows_for(gw, "/upload")
    assert row["status"] == 408 and row["action"] == "allow"
    assert "stalled" in row["reason"] and "Home Assistant had the head" in row["reason"]
    assert not gw.upstream.seen  # Home Assistant never got a whole request


def test_a_body_that_keeps_coming_is_not_cut_by_the_body_timeout(gw: Gateway) -> None:
    body = b"y" * 3000
    with gw.connect("phone") as sock:
        sock.sendall(
            b"POST /upload HTTP/1.1\r\nHost: ha.test\r\nContent-Length: %d\r\n\r\n" % len(body)
        )
        send_slowly(sock, body, 6, 1.0)  # 6 s in all, 1 s between pieces (timeout 1.5 s)
        r = read_response(sock, bytearray())
    assert r.status == 200 and gw.upstream.seen[-1].body == body


def tls_connections(gw: Gateway, count: int, source: str | None = None) -> list[ssl.SSLSocket]:
    return [gw.connect("phone", source=source) for _ in range(count)]


def served(sock: ssl.SSLSocket) -> bool:
    try:
        sock.sendall(b"GET /ok HTTP/1.1\r\nHost: ha.test\r\n\r\n")
        return read_response(sock, bytearray()).status == 200
    except (OSError, ConnectionError):
        return False


def refused_at_once(gw: Gateway, source: str | None = None) -> bool:
    """A new connection is closed before its handshake completes."""
    try:
        with gw.connect("phone", source=source) as sock:
            return not served(sock)
    except (OSError, ssl.SSLError):
        return True


def test_open_connections_are_capped_per_address_and_the_others_are_still_served(
    gw: Gateway,
) -> None:
    held = tls_connections(gw, 4)  # max_connections_per_ip: 4
    try:
        time.sleep(0.3)
        assert refused_at_once(gw)
        # Another address is still served, and so is every connection already open.
        with gw.connect("phone", source="127.0.0.2") as other:
            assert served(other)
        assert all(served(s) for s in held)
    finally:
        held.pop().close()
    time.sleep(0.3)
    with gw.connect("phone") as again:  # a place came free
        assert served(again)
    for s in held:
        s.close()
    rows = [e for e in gw.events() if e["action"] == "refused" and e["client_ip"] == "127.0.0.1"]
    assert rows and "too many open connections from this address" in rows[0]["reason"]


def test_open_connections_are_capped_in_total(gw: Gateway) -> None:
    held: list[ssl.SSLSocket] = []
    try:
        for n in range(2, 5):  # 3 addresses x 4 = the total cap of 12
            held += tls_connections(gw, 4, source=f"127.0.0.{n}")
        time.sleep(0.3)
        assert refused_at_once(gw, source="127.0.0.9")
        assert served(held[0])
    finally:
        for s in held:
            s.close()
    time.sleep(0.3)
    with gw.connect("phone", source="127.0.0.9") as sock:
        assert served(sock)
    assert any(
        e["action"] == "refused" and "too many open connections (12)" in (e["reason"] or "")
        for e in gw.events()
    )


def test_a_refusal_reads_nothing_and_costs_no_handshake(gw: Gateway) -> None:
    held = [gw.tcp() for _ in range(4)]  # plain TCP, no TLS: they count as open too
    try:
        time.sleep(0.3)
        with contextlib.closing(gw.tcp()) as sock:
            sock.settimeout(5)
            sock.sendall(b"\x16\x03\x01")  # the start of a ClientHello
            with contextlib.suppress(ConnectionResetError):
                assert sock.recv(100) == b""  # closed without a byte
    finally:
        for s in held:
            s.close()


def test_memory_comes_back_after_a_flood_of_connections(tmp_path: Path) -> None:
    from tests.gateway.harness import rss_kib

    g = make_gateway(tmp_path)
    g.configure(gateway={"max_connections": 4000, "max_connections_per_ip": 4000})
    g.issue("phone")
    g.start()
    try:
        assert g.proc is not None
        ctx = g.context("phone")
        with g.connect("phone") as sock:
            assert served(sock)
        time.sleep(0.5)
        idle = rss_kib(g.proc.pid)
        held = []
        for _ in range(1500):
            s = ctx.wrap_socket(
                socket.create_connection(("127.0.0.1", g.port), timeout=30),
                server_hostname="ha.test",
            )
            s.sendall(b"POST /upload HTTP/1.1\r\nHost: ha.test\r\nContent-Length: 10\r\n\r\nab")
            held.append(s)
        time.sleep(1)
        flooded = rss_kib(g.proc.pid)
        for s in held:
            s.close()
        deadline = time.monotonic() + 15
        while (after := rss_kib(g.proc.pid)) > 2 * idle and time.monotonic() < deadline:
            time.sleep(0.5)
        assert flooded > 2 * idle, (idle, flooded)  # the flood did cost memory
        assert after <= 2 * idle, (idle, flooded, after)
    finally:
        g.stop()
        g.upstream.close()


@pytest.mark.parametrize(
    ("cipher", "agreed"),
    [
        ("ECDHE-ECDSA-AES128-GCM-SHA256", True),
        ("ECDHE-ECDSA-CHACHA20-POLY1305", True),
        ("ECDHE-ECDSA-AES128-SHA", False),  # CBC
        ("ECDHE-ECDSA-AES256-SHA384", False),  # CBC
    ],
)
def test_tls_1_2_offers_no_cbc_suites(gw: Gateway, cipher: str, agreed: bool) -> None:
    done = subprocess.run(
        [
            "openssl", "s_client", "-connect", f"127.0.0.1:{gw.port}",
            "-servername", "ha.test", "-tls1_2", "-cipher", cipher,
        ],
        input=b"",
        capture_output=True,
        timeout=30,
    )  # fmt: skip
    out = done.stdout.decode(errors="replace")
    assert (f"Cipher is {cipher}" in out) == agreed, out[-800:]
