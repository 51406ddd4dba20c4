"""The gateway behind a front, its upstream the recording one: who the client is for the
caps, X-Forwarded-For and the events; headers split, slow, or sharing a packet with the
ClientHello; IPv6 and LOCAL headers; a reload that turns trust on; the audit's finding for a
front that sends no header."""

from __future__ import annotations

import dataclasses
import json
import signal
import socket
import ssl
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hagate.front.proxyheader import V2_SIGNATURE
from tests.conftest import run_hagate
from tests.front.peers import FRONT_SOURCE, Front
from tests.gateway.harness import Gateway, make_gateway, read_response
from tests.geo import write_asn_db

TRUST = (
    "\ngateway:\n  header_timeout: 3\n  max_connections_per_ip: 2\n"
    f"  proxy_protocol:\n    trusted: [{FRONT_SOURCE}/32]\n"
)

PORT_RULE = """\
  - description: Only what came in on the public port 443
    expression: cf.edge.server_port ne 443
    action: block
"""


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    g = make_gateway(tmp_path)
    g.issue("phone")
    yield g
    if g.proc is not None:
        g.stop()
    g.upstream.close()


def v2(src: str, sport: int, dport: int = 443) -> bytes:
    family = 0x11 if ":" not in src else 0x21
    dst = "127.0.0.1" if ":" not in src else "::1"
    kind = socket.AF_INET if ":" not in src else socket.AF_INET6
    body = socket.inet_pton(kind, src) + socket.inet_pton(kind, dst)
    body += struct.pack(">HH", sport, dport)
    return V2_SIGNATURE + bytes([0x21, family]) + struct.pack(">H", len(body)) + body


def as_front(g: Gateway) -> socket.socket:
    """A raw connection from the trusted front's address (a small fake front: these tests
    shape the header's bytes and timing themselves)."""
    return socket.create_connection(
        ("127.0.0.1", g.port), timeout=15, source_address=(FRONT_SOURCE, 0)
    )


def request_via_bio(g: Gateway, before: bytes, trickle: bool = False) -> str:
    """One GET /api/ after `before`: the status line the gateway answered."""
    with as_front(g) as sock:
        inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = g.context("phone").wrap_bio(inc, out, server_hostname="ha.test")
        with pytest.raises(ssl.SSLWantReadError):
            tls.do_handshake()
        hello = out.read()
        if trickle:
            for i in range(len(before)):
                sock.sendall(before[i : i + 1])
                time.sleep(0.005)
            sock.sendall(hello)
        else:
            sock.sendall(before + hello)  # the header and the ClientHello in one packet
        done = False
        while not done:
            try:
                tls.do_handshake()
                done = True
            except ssl.SSLWantReadError:
                pass
            pending = out.read()
            if pending:
                sock.sendall(pending)
            if not done:
                data = sock.recv(65536)
                assert data, "closed during the handshake"
                inc.write(data)
        tls.write(b"GET /api/ HTTP/1.1\r\nHost: ha.test\r\nConnection: close\r\n\r\n")
        sock.sendall(out.read())
        answer = b""
        while b"\r\n" not in answer:
            try:
                answer += tls.read(4096)
            except ssl.SSLWantReadError:
                data = sock.recv(65536)
                assert data, "closed before an answer"
                inc.write(data)
        return answer.split(b"\r\n")[0].decode()


def events_of(g: Gateway, ip: str) -> list[dict[str, object]]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        rows = [e for e in g.events() if e["client_ip"] == ip]
        if rows:
            return rows
        time.sleep(0.1)
    return []


def test_header_and_clienthello_in_one_packet_split_or_slow_all_name_the_client(
    gateway: Gateway,
) -> None:
    g = gateway
    g.configure(rules=PORT_RULE, extra=TRUST)
    asn_db = write_asn_db(g.tmp / "asn.mmdb", {"203.0.113.10/32": 64501})
    cfg = g.state / "hagate.yaml"
    cfg.write_text(cfg.read_text().replace("  asn_db:\n", f"  asn_db: {asn_db}\n"))
    g.start()
    # The port the client connected to is the header's (the gateway itself listens elsewhere)
    assert request_via_bio(g, v2("203.0.113.9", 40000, dport=8443)) == "HTTP/1.1 403 Forbidden"
    assert request_via_bio(g, v2("203.0.113.10", 40001)) == "HTTP/1.1 200 OK"
    assert request_via_bio(g, v2("203.0.113.11", 40002), trickle=True) == "HTTP/1.1 200 OK"
    v1 = b"PROXY TCP4 203.0.113.12 127.0.0.1 40003 443\r\n"
    assert request_via_bio(g, v1) == "HTTP/1.1 200 OK"
    assert request_via_bio(g, v1.replace(b".12", b".13"), trickle=True) == "HTTP/1.1 200 OK"
    assert request_via_bio(g, v2("2001:db8::14", 40004)) == "HTTP/1.1 200 OK"
    forwarded = [s.header("x-forwarded-for") for s in g.upstream.seen]
    assert forwarded == [
        ["203.0.113.10"],
        ["203.0.113.11"],
        ["203.0.113.12"],
        ["203.0.113.13"],
        ["2001:db8::14"],
    ]
    for ip in ("203.0.113.10", "203.0.113.13", "2001:db8::14"):
        rows = events_of(g, ip)
        assert rows and rows[0]["action"] == "allow", rows
    assert events_of(g, "203.0.113.10")[0]["asn"] == 64501  # GeoIP looks the client up
    assert not [e for e in g.events() if e["client_ip"] == FRONT_SOURCE and e["path"]]


def test_a_local_header_is_the_front_itself(gateway: Gateway) -> None:
    """LOCAL (a front's health check) and UNKNOWN carry no client: the front is the client."""
    g = gateway
    g.configure(extra=TRUST)
    g.start()
    assert request_via_bio(g, V2_SIGNATURE + b"\x20\x00\x00\x00") == "HTTP/1.1 200 OK"
    assert request_via_bio(g, b"PROXY UNKNOWN\r\n") == "HTTP/1.1 200 OK"
    assert [s.header("x-forwarded-for") for s in g.upstream.seen] == [[FRONT_SOURCE]] * 2


def test_the_per_address_cap_counts_the_client_not_the_front(gateway: Gateway) -> None:
    """max_connections_per_ip (2 here) applies to each client behind the front: a third
    connection of one client is refused, another client's goes on."""
    g = gateway
    g.configure(extra=TRUST)
    g.start()
    front = Front("haproxy", g.tmp / "haproxy", g.port, "send-proxy-v2")
    front.start()
    try:
        behind = dataclasses.replace(g, port=front.port)
        held = [behind.connect("phone", source="127.0.20.2") for _ in range(2)]
        for tls in held:
            tls.sendall(b"GET /api/ HTTP/1.1\r\nHost: ha.test\r\n\r\n")
            assert read_response(tls, bytearray(), "GET").status == 200
        with (
            pytest.raises((ssl.SSLError, OSError)),
            behind.connect("phone", source="127.0.20.2") as third,
        ):
            third.sendall(b"GET /api/ HTTP/1.1\r\nHost: ha.test\r\n\r\n")
            read_response(third, bytearray(), "GET")
        assert behind.request("/api/", cert="phone", source="127.0.20.3").status == 200
        refused = [e for e in events_of(g, "127.0.20.2") if e["action"] == "refused"]
        assert refused and "too many open connections from this address" in str(
            refused[0]["reason"]
        )
        for tls in held:
            tls.close()
    finally:
        front.stop()


def test_a_reload_turns_trust_on_and_the_audit_sees_the_front_before_it(
    gateway: Gateway,
) -> None:
    """A front without PROXY protocol: every request seems to come from the front, and the
    audit says so, naming the fix. Trust given in hagate.yaml and SIGHUP (no restart), the
    front switched to send-proxy-v2: the clients are themselves again and the finding goes."""
    g = gateway
    g.start()
    plain = Front("haproxy", g.tmp / "plain", g.port, "")
    plain.start()
    try:
        behind = dataclasses.replace(g, port=plain.port)
        with behind.connect("phone", source="127.0.21.2") as tls:
            for _ in range(60):
                tls.sendall(b"GET /api/ HTTP/1.1\r\nHost: ha.test\r\n\r\n")
                assert read_response(tls, bytearray(), "GET").status == 200
        time.sleep(1.5)  # the event writer's batch
        r = run_hagate("audit", "--json", state=g.state)
        found = {f["id"]: f for f in json.loads(r.out)["findings"]}
        assert "front-without-proxy-protocol" in found, r.out
        finding = found["front-without-proxy-protocol"]
        assert finding["severity"] == "high" and FRONT_SOURCE in finding["problem"]
        assert f"trusted: [{FRONT_SOURCE}/32]" in finding["fix"]
    finally:
        plain.stop()
    g.configure(extra=TRUST)
    assert g.proc is not None
    g.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    while b"config reloaded" not in (g.err_path.read_bytes() if g.err_path else b""):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert b"restart to apply" not in g.err_path.read_bytes()  # type: ignore[union-attr]
    proxied = Front("haproxy", g.tmp / "proxied", g.port, "send-proxy-v2")
    proxied.start()
    try:
        behind = dataclasses.replace(g, port=proxied.port)
        assert behind.request("/api/", cert="phone", source="127.0.21.3").status == 200
        assert events_of(g, "127.0.21.3")
        time.sleep(1.5)
        r = run_hagate("audit", "--json", state=g.state)
        ids = {f["id"] for f in json.loads(r.out)["findings"]}
        assert "front-without-proxy-protocol" not in ids
    finally:
        proxied.stop()
