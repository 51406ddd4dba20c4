"""Real fronts before hagate, a real Home Assistant behind it: HAProxy in TCP mode with
send-proxy (v1) and send-proxy-v2, and nginx's stream module with proxy_protocol on, each in
front of the gateway (`hagate serve` with gateway.proxy_protocol) and in front of a relay
(`--proxy-protocol-from`). The client's own address, not the front's, is what the rules, the
event log and Home Assistant's ban see."""

from __future__ import annotations

import dataclasses
import json
import socket
import ssl
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from hagate.front.proxyheader import V2_SIGNATURE
from tests.e2e.homeassistant import HomeAssistant
from tests.front.peers import FRONT_SOURCE, Front
from tests.gateway.harness import Gateway, make_gateway, read_response
from tests.tunnel.harness import Relay, start_connector

pytestmark = pytest.mark.slow

# target -> front -> the 127.0.<n>.x network its clients use (apart from the other e2e tests)
NETS = {
    "serve": {"haproxy-v1": 10, "haproxy-v2": 11, "nginx": 12},
    "relay": {"haproxy-v1": 13, "haproxy-v2": 14, "nginx": 15},
}
BLOCKED = 66  # 127.0.<n>.66 is blocked by a rule on ip.src


def _rules() -> str:
    blocked = " ".join(f"127.0.{n}.{BLOCKED}" for nets in NETS.values() for n in nets.values())
    return f"""\
  - description: One address blocked by a rule on ip.src
    expression: ip.src in {{{blocked}}}
    action: block
  - description: Require a client certificate
    expression: (not cf.tls_client_auth.cert_verified)
    action: block
"""


@dataclass
class Fronted:
    target: str  # "serve" or "relay"
    gateway: Gateway  # its port: the gateway's own, or the relay's
    relay: Relay | None
    fronts: dict[str, Front]

    def through(self, front: str) -> Gateway:
        """The gateway as clients of one front reach it."""
        n = NETS[self.target][front]
        return dataclasses.replace(self.gateway, port=self.fronts[front].port, net=n)


@pytest.fixture(scope="module", params=list(NETS))
def fronted(
    request: pytest.FixtureRequest,
    home_assistant: HomeAssistant,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Fronted]:
    target: str = request.param
    tmp = tmp_path_factory.mktemp(f"fronted-{target}")
    g = make_gateway(tmp)
    g.upstream.close()
    cfg = g.state / "hagate.yaml"
    cfg.write_text(
        cfg.read_text().replace(f"http://127.0.0.1:{g.upstream.port}", home_assistant.url)
    )
    trusted = (
        f"\ngateway:\n  header_timeout: 3\n  proxy_protocol:\n    trusted: [{FRONT_SOURCE}/32]\n"
    )
    g.configure(rules=_rules(), extra=trusted if target == "serve" else "")
    g.issue("phone")
    relay: Relay | None = None
    if target == "serve":
        g.start()
    else:
        relay = Relay.create(tmp)
        relay.start("--proxy-protocol-from", f"{FRONT_SOURCE}/32")
        start_connector(g, [relay], relay.token())
    fronts = {
        "haproxy-v1": Front("haproxy", tmp / "haproxy-v1", g.port, "send-proxy"),
        "haproxy-v2": Front("haproxy", tmp / "haproxy-v2", g.port, "send-proxy-v2"),
        "nginx": Front("nginx", tmp / "nginx", g.port),
    }
    for front in fronts.values():
        front.start()
    if not home_assistant.access_token:
        home_assistant.onboard(f"https://ha.test:{g.port}")
    try:
        yield Fronted(target, g, relay, fronts)
    finally:
        for front in fronts.values():
            front.stop()
        g.stop()
        if relay is not None:
            relay.stop()


def _events_from(g: Gateway, ip: str, count: int = 1) -> list[dict[str, object]]:
    deadline = time.monotonic() + 10
    rows: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        rows = [e for e in g.events() if e["client_ip"] == ip]
        if len(rows) >= count:
            return rows
        time.sleep(0.2)
    return rows


def _login_fails(g: Gateway, source: str) -> None:
    client = f"https://ha.test:{g.port}/"
    flow = g.request(
        "/auth/login_flow",
        cert="phone",
        method="POST",
        source=source,
        body=json.dumps(
            {"client_id": client, "handler": ["homeassistant", None], "redirect_uri": client}
        ).encode(),
        headers={"Content-Type": "application/json"},
    )
    assert flow.status == 200, flow
    bad = g.request(
        f"/auth/login_flow/{json.loads(flow.body)['flow_id']}",
        cert="phone",
        method="POST",
        source=source,
        body=json.dumps({"username": "owner", "password": "wrong", "client_id": client}).encode(),
        headers={"Content-Type": "application/json"},
    )
    assert json.loads(bad.body)["errors"] == {"base": "invalid_auth"}


@pytest.mark.parametrize("front", ["haproxy-v1", "haproxy-v2", "nginx"])
def test_the_client_address_reaches_rules_events_and_home_assistant(
    fronted: Fronted, front: str, home_assistant: HomeAssistant
) -> None:
    g = fronted.through(front)
    token = {"Authorization": f"Bearer {home_assistant.access_token}"}
    one, two, blocked = g.addr(2), g.addr(3), g.addr(BLOCKED)
    assert g.request("/api/", cert="phone", headers=token, source=one).status == 200
    assert g.request("/api/", cert="phone", headers=token, source=two).status == 200
    # A rule by address acts on the address the front named, even with a certificate.
    refused = g.request("/api/", cert="phone", headers=token, source=blocked)
    assert refused.status == 403
    for ip, action in ((one, "allow"), (two, "allow"), (blocked, "block")):
        rows = _events_from(g, ip)
        assert rows and rows[-1]["action"] == action, rows
    assert not [e for e in g.events() if e["client_ip"] == FRONT_SOURCE and e["path"]]
    # Home Assistant bans the client that failed to log in, not the front and not the gateway.
    attacker = g.addr(4)
    for _ in range(3):
        _login_fails(g, attacker)
    deadline = time.monotonic() + 5
    while attacker not in home_assistant.banned() and time.monotonic() < deadline:
        time.sleep(0.2)
    banned = home_assistant.banned()
    assert attacker in banned
    assert FRONT_SOURCE not in banned and "127.0.0.1" not in banned
    assert g.request("/api/", cert="phone", headers=token, source=attacker).status == 403
    assert g.request("/api/", cert="phone", headers=token, source=g.addr(5)).status == 200


def _direct(fronted: Fronted, source: str) -> socket.socket:
    """A raw TCP connection straight to the gateway (or relay) behind the fronts."""
    return socket.create_connection(
        ("127.0.0.1", fronted.gateway.port), timeout=15, source_address=(source, 0)
    )


def _closed_without_tls(sock: socket.socket) -> bool:
    """The other side closed the connection without answering."""
    try:
        return sock.recv(100) == b""
    except ConnectionResetError:
        return True


def _v2(src: str, sport: int = 1234, tlvs: bytes = b"") -> bytes:
    body = socket.inet_aton(src) + socket.inet_aton("127.0.0.1") + struct.pack(">HH", sport, 443)
    body += tlvs
    return V2_SIGNATURE + b"\x21\x11" + struct.pack(">H", len(body)) + body


def _refusals(fronted: Fronted) -> list[str]:
    """What the gateway's events (serve) or the relay's log and counters (relay) say."""
    if fronted.target == "serve":
        return [str(e["reason"]) for e in fronted.gateway.events() if e["action"] == "refused"]
    assert fronted.relay is not None
    return (fronted.relay.state / "relay.err").read_text().splitlines()


def test_a_forged_header_from_an_untrusted_address_is_refused(
    fronted: Fronted, home_assistant: HomeAssistant
) -> None:
    """A client that writes its own PROXY header (claiming to be an allowed address) straight
    to the port is refused: only the listed fronts are believed."""
    for header in (_v2("127.0.0.5"), b"PROXY TCP4 127.0.0.5 127.0.0.1 1234 443\r\n"):
        with _direct(fronted, "127.0.0.1") as sock:
            ctx = fronted.gateway.context("phone")
            sock.sendall(header)
            with (
                pytest.raises((ssl.SSLError, OSError)),
                ctx.wrap_socket(sock, server_hostname="ha.test") as tls,
            ):
                tls.sendall(b"GET /api/ HTTP/1.1\r\nHost: ha.test\r\n\r\n")
                assert read_response(tls, bytearray(), "GET").status != 200
    if fronted.target == "serve":
        rows = [e for e in fronted.gateway.events() if e["client_ip"] == "127.0.0.1"]
        assert any("PROXY protocol header from an address that is not a trusted" in str(
            e["reason"]) for e in rows), rows  # fmt: skip
        assert not [e for e in fronted.gateway.events() if e["client_ip"] == "127.0.0.5"]
    else:
        assert fronted.relay is not None
        assert fronted.relay.status()["counters"].get("proxy_untrusted", 0) >= 2


@pytest.mark.parametrize(
    ("what", "sent", "words"),
    [
        ("garbage", b"GET / HTTP/1.1\r\n\r\n", "sent none"),
        ("a ClientHello without a header", b"\x16\x03\x01\x00\x05hello", "sent none"),
        ("a truncated v2 header, then silence", V2_SIGNATURE + b"\x21\x11\x00\x0c\x7f", "within"),
        (
            "a v2 header with a lying TLV",
            _v2("127.0.0.5", tlvs=b"\x04\x00\x40" + b"\x00" * 4),
            "TLV",
        ),
        ("a v1 header over 107 bytes", b"PROXY TCP4 " + b"1" * 120, "107 bytes"),
        ("an unknown version", V2_SIGNATURE + b"\x31\x11\x00\x0c" + b"\x00" * 12, "version 3"),
    ],
)
def test_a_trusted_front_that_sends_garbage_is_refused_without_harm(
    fronted: Fronted, what: str, sent: bytes, words: str
) -> None:
    """A connection from the front's address with a bad or missing header is refused with
    words that say so, while a good connection through a real front, open meanwhile, goes on."""
    g = fronted.through("haproxy-v2")
    with g.connect("phone", source=g.addr(6)) as good:
        good.sendall(b"GET /manifest.json HTTP/1.1\r\nHost: ha.test\r\n\r\n")
        assert read_response(good, bytearray(), "GET").status == 200
        started = time.monotonic()
        with _direct(fronted, FRONT_SOURCE) as bad:
            bad.sendall(sent)
            assert _closed_without_tls(bad)
        assert time.monotonic() - started < 8  # the header deadline (3 s; the relay's 5 s)
        good.sendall(b"GET /manifest.json HTTP/1.1\r\nHost: ha.test\r\n\r\n")
        assert read_response(good, bytearray(), "GET").status == 200
    deadline = time.monotonic() + 5
    while not any(words in line for line in _refusals(fronted)):
        assert time.monotonic() < deadline, (what, _refusals(fronted)[-5:])
        time.sleep(0.2)
