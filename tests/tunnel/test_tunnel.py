"""Relay -> tunnel -> connector -> gateway, with real TLS clients and a recording upstream."""

from __future__ import annotations

import base64
import contextlib
import json
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hagate.state import StateDir
from hagate.tunnel.relaystate import RelayState
from tests.conftest import run_hagate
from tests.gateway.harness import Gateway, make_gateway, rss_kib
from tests.nginx import upstream
from tests.tunnel.harness import Relay, start_connector


def wait_served(g: Gateway, path: str, within: float) -> None:
    """Until a request for `path` through the tunnel is answered 200; fails after `within` s."""
    start = time.monotonic()
    while time.monotonic() - start < within:
        try:
            if g.request(path, cert="phone").status == 200:
                return
        except (OSError, ConnectionError, ssl.SSLError):
            time.sleep(0.1)
    raise AssertionError(f"{path} was not served within {within} s")


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[tuple[Gateway, Relay]]:
    """A running relay, and the home side's state with the phone's certificate: no connector."""
    relay = Relay.create(tmp_path)
    relay.start()
    g = make_gateway(tmp_path / "home")
    g.issue("phone")
    try:
        yield g, relay
    finally:
        g.stop()
        relay.stop()
        g.upstream.close()


@pytest.fixture
def chain(parts: tuple[Gateway, Relay]) -> tuple[Gateway, Relay]:
    g, relay = parts
    start_connector(g, [relay], relay.token())
    return parts


def test_requests_pass_through_the_relay_with_the_true_client_address(
    chain: tuple[Gateway, Relay],
) -> None:
    g, relay = chain
    r = g.request("/api/states", cert="phone", source="127.0.0.9")
    assert r.status == 200 and json.loads(r.body)["path"] == "/api/states"
    assert g.upstream.seen[0].header("x-forwarded-for") == ["127.0.0.9"]
    assert g.request("/api/states", source="127.0.0.9").status == 403
    assert g.upstream.paths() == ["/api/states"]
    events = g.events()
    assert {e["client_ip"] for e in events if e["action"] in ("allow", "block")} == {"127.0.0.9"}
    status = relay.status()
    assert status["counters"]["streams"] >= 2 and status["connectors"][0]["hostname"] == "ha.test"


def test_the_relay_never_terminates_client_tls(chain: tuple[Gateway, Relay]) -> None:
    g, relay = chain
    with g.connect("phone") as sock:
        der = sock.getpeercert(binary_form=True)
    home_cert = (g.state / "server.crt").read_text().split("-----END CERTIFICATE-----")[0]
    from cryptography import x509

    assert der is not None
    served = x509.load_der_x509_certificate(der)
    assert served == x509.load_pem_x509_certificate(
        (home_cert + "-----END CERTIFICATE-----\n").encode()
    )
    assert not any(p.suffix == ".key" and "server" in p.name for p in relay.state.iterdir())


def hello_bytes(sni: str) -> bytes:
    ctx = ssl.create_default_context()
    i, o = ssl.MemoryBIO(), ssl.MemoryBIO()
    c = ctx.wrap_bio(i, o, server_hostname=sni)
    with pytest.raises(ssl.SSLWantReadError):
        c.do_handshake()
    return o.read()


def closed_without_answer(port: int, payload: bytes) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(payload)
        try:
            return s.recv(100) == b""
        except ConnectionResetError:
            return True


def test_unknown_names_and_non_tls_are_closed_and_counted(chain: tuple[Gateway, Relay]) -> None:
    _, relay = chain
    assert closed_without_answer(relay.port, hello_bytes("other.test"))
    assert closed_without_answer(relay.port, b"GET / HTTP/1.1\r\nHost: ha.test\r\n\r\n")
    counters = relay.status()["counters"]
    assert counters["unknown_sni"] == 1 and counters["not_tls"] == 1


def test_a_token_for_another_host_cannot_serve_this_one(tmp_path: Path) -> None:
    relay = Relay.create(tmp_path)
    relay.start()
    g = make_gateway(tmp_path / "home")
    try:
        r = run_hagate(
            "connect", "--relay", relay.address, "--token", relay.token("other.test"),
            "--relay-fingerprint", relay.fingerprint, state=g.state,
        )  # fmt: skip
        errors = [line for line in r.err.splitlines() if line.startswith("error:")]
        assert r.code == 1 and len(errors) == 1, r.err
        assert "the connector token is for other.test, but this gateway serves ha.test" in r.err
        assert "hagate relay token --hostname ha.test" in r.err
        # Nothing registered with the relay: neither name has anybody behind it.
        assert closed_without_answer(relay.port, hello_bytes("ha.test"))
        assert closed_without_answer(relay.port, hello_bytes("other.test"))
        assert g.upstream.seen == []
    finally:
        relay.stop()
        g.upstream.close()


def test_forged_and_revoked_tokens_are_refused(tmp_path: Path) -> None:
    relay = Relay.create(tmp_path)
    other = Relay.create(tmp_path, "other-relay.test")
    relay.start()
    g = make_gateway(tmp_path / "home")
    try:
        start_connector(g, [relay], relay.token())
        token_id = relay.status()["connectors"][0]["token"]
        assert run_hagate("relay", "revoke-token", token_id, state=relay.state).code == 0
        deadline = time.monotonic() + 12
        while relay.status()["connectors"] and time.monotonic() < deadline:
            pass
        assert relay.status()["connectors"] == []  # dropped, and its reconnections refused
        assert relay.status()["counters"].get("refused_connectors", 0) >= 1
        said = (relay.state / "relay.err").read_text()  # each line names the token
        assert f"(token {token_id}) gone: its token was revoked" in said
        assert f"refused a connector from 127.0.0.1: the token {token_id} has been revoked" in said
        g.stop()
        forged = other.token()  # signed by another relay's key
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            start_connector(g, [relay], forged)
        assert time.monotonic() - start < 30
        assert g.err_path is not None and "refused us" in g.err_path.read_text()
    finally:
        g.stop()
        relay.stop()
        g.upstream.close()


def curl_relay(relay: Relay, name: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "curl",
            "-sS",
            "-k",
            "--connect-to",
            f"{name}:443:127.0.0.1:{relay.port}",
            f"https://{name}/",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_a_browser_at_the_relays_own_name_sees_which_homes_are_down(
    chain: tuple[Gateway, Relay],
) -> None:
    g, relay = chain
    page = curl_relay(relay, relay.name)
    assert page.returncode == 0, page.stderr
    assert "<b>ha.test</b>: connected (1 connector)" in page.stdout
    g.stop()
    deadline = time.monotonic() + 15
    while "not connected" not in (page := curl_relay(relay, relay.name)).stdout:
        assert time.monotonic() < deadline, page.stdout
        time.sleep(0.2)
    assert "<b>ha.test</b>: <b>not connected</b> since " in page.stdout
    # The home's own name cannot be answered (no key for it here), nor an unknown one.
    for name in ("ha.test", "nobody.test"):
        refused = curl_relay(relay, name)
        assert refused.returncode == 35 and refused.stdout == "", refused  # TLS cut short
    # A connector still gets in at the relay's name (it offers no ALPN).
    start_connector(g, [relay], relay.token(), wait=False)
    wait_served(g, "/back", within=15)


def test_the_connector_reconnects_after_a_relay_restart(chain: tuple[Gateway, Relay]) -> None:
    g, relay = chain
    assert g.request("/before", cert="phone").status == 200
    relay.stop()
    relay.start()
    wait_served(g, "/after", within=5)
    assert "/after" in g.upstream.paths()


def short_lived_token(relay: Relay, seconds: float, hostname: str = "ha.test") -> str:
    """A token of the relay's own key that expires in `seconds` (`relay token` counts in days)."""
    body = json.dumps(
        {"h": hostname, "e": int(time.time() + seconds), "i": "short0123456789"},
        separators=(",", ":"),
    ).encode()
    key = RelayState.load(StateDir(relay.state)).signing_key()

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    return f"hg1.{b64(body)}.{b64(key.sign(body))}"


def test_a_connector_is_dropped_when_its_token_expires_and_refused_after(
    parts: tuple[Gateway, Relay],
) -> None:
    g, relay = parts
    start_connector(g, [relay], short_lived_token(relay, 6))
    assert g.request("/while-valid", cert="phone").status == 200
    deadline = time.monotonic() + 20  # expiry in 6 s, looked at every 5 s
    while relay.status()["connectors"]:
        assert time.monotonic() < deadline, "the relay kept a connector past its token"
    assert g.err_path is not None
    deadline = time.monotonic() + 10
    while "expired" not in g.err_path.read_text():  # reconnections are refused, and said
        assert time.monotonic() < deadline
        time.sleep(0.2)


def test_connect_with_an_expired_token_or_a_bad_fingerprint_is_a_plain_error(
    tmp_path: Path,
) -> None:
    relay = Relay.create(tmp_path)
    g = make_gateway(tmp_path / "home")
    r = run_hagate(
        "connect",
        "--relay",
        relay.address,
        "--token",
        short_lived_token(relay, -60),
        state=g.state,
    )
    assert (
        r.code == 1 and "expired on" in r.err and "hagate relay token --hostname ha.test" in r.err
    )
    r = run_hagate(
        "connect",
        "--relay",
        relay.address,
        "--token",
        relay.token(),
        "--relay-fingerprint",
        relay.fingerprint[:-2],  # one byte short
        state=g.state,
    )
    assert r.code == 1 and "bad --relay-fingerprint" in r.err
    g.upstream.close()


def test_a_relay_whose_certificate_is_not_the_pinned_one_is_never_used(
    parts: tuple[Gateway, Relay],
) -> None:
    g, relay = parts
    relay.fingerprint = "ab" * 32  # well-formed, but another certificate's
    start_connector(g, [relay], relay.token(), wait=False)
    assert g.err_path is not None
    deadline = time.monotonic() + 10
    while "not the pinned one" not in g.err_path.read_text():
        assert time.monotonic() < deadline, g.err_path.read_text()
        time.sleep(0.1)
    assert "check --relay-fingerprint" in g.err_path.read_text()
    assert relay.status()["connectors"] == []


def test_a_hung_relay_is_noticed_within_a_minute_and_served_again_once_it_is_back(
    chain: tuple[Gateway, Relay],
) -> None:
    g, relay = chain
    assert relay.proc is not None and g.err_path is not None
    assert g.request("/before", cert="phone").status == 200
    relay.proc.send_signal(signal.SIGSTOP)  # alive to TCP, silent to the tunnel
    try:
        start = time.monotonic()
        while "relay silent" not in g.err_path.read_text():
            # DEAD_AFTER (45 s) of silence, seen at the next heartbeat (every 15 s).
            assert time.monotonic() - start < 65, "the connector did not notice the hung relay"
            time.sleep(0.2)
    finally:
        relay.proc.send_signal(signal.SIGCONT)
    wait_served(g, "/after", within=20)
    assert "/after" in g.upstream.paths()


def test_without_a_connector_clients_are_closed_and_relay_fds_return(
    chain: tuple[Gateway, Relay],
) -> None:
    g, relay = chain
    g.stop()
    time.sleep(0.5)
    before = relay.open_fds()
    hello = hello_bytes("ha.test")
    for _ in range(10_000):
        with socket.create_connection(("127.0.0.1", relay.port), timeout=10) as s:
            s.sendall(hello)
            with contextlib.suppress(ConnectionResetError):
                assert s.recv(100) == b""
    time.sleep(1)
    after = relay.open_fds()
    assert after <= before + 2, (before, after)
    counters = relay.status()["counters"]
    assert counters.get("unknown_sni", 0) + counters.get("no_connector", 0) >= 10_000


def test_two_relays_either_serves_and_one_stopping_leaves_the_other(tmp_path: Path) -> None:
    first, second = Relay.create(tmp_path, "relay1.test"), Relay.create(tmp_path, "relay2.test")
    # One key for both relays, as a deployment with two relays shares it.
    for name in ("relay-signing.key", "relay.crt", "relay.key"):
        (second.state / name).write_bytes((first.state / name).read_bytes())
    second.fingerprint = first.fingerprint
    first.start()
    second.start()
    g = make_gateway(tmp_path / "home")
    g.issue("phone")
    try:
        start_connector(g, [first, second], first.token())
        for relay in (first, second):
            g.port = relay.port
            assert g.request(f"/via-{relay.name}", cert="phone").status == 200
        first.stop()
        g.port = second.port
        assert g.request("/after-stop", cert="phone").status == 200
    finally:
        g.stop()
        first.stop()
        second.stop()
        g.upstream.close()


def test_a_client_that_stops_reading_stalls_only_its_own_stream(tmp_path: Path) -> None:
    nginx = upstream(tmp_path / "nginx", 1 << 30)
    relay = Relay.create(tmp_path)
    relay.start()
    g = make_gateway(tmp_path / "home")
    g.upstream.close()
    cfg = g.state / "hagate.yaml"
    cfg.write_text(
        cfg.read_text().replace(f"127.0.0.1:{g.upstream.port}", f"127.0.0.1:{nginx.port}")
    )
    g.issue("phone")
    try:
        start_connector(g, [relay], relay.token())
        stalled = g.connect("phone")
        stalled.sendall(b"GET /big.bin HTTP/1.1\r\nHost: ha.test\r\n\r\n")
        stalled.recv(100)  # the download has started; now this client reads nothing more
        time.sleep(1)
        assert relay.proc is not None
        start = time.monotonic()
        for i in range(20):
            assert g.request("/small.txt", cert="phone").status == 200, i
        assert time.monotonic() - start < 10
        peak = rss_kib(relay.proc.pid)
        assert peak < 150 * 1024, peak
        stalled.close()
    finally:
        g.stop()
        relay.stop()
        nginx.stop()


def test_connector_workers_each_take_their_share(tmp_path: Path) -> None:
    relay = Relay.create(tmp_path)
    relay.start()
    g = make_gateway(tmp_path / "home")
    g.issue("phone")
    try:
        start_connector(g, [relay], relay.token(), workers=2)
        assert [g.request(f"/{i}", cert="phone").status for i in range(10)] == [200] * 10
        connectors = relay.status()["connectors"]
        assert len(connectors) == 2
        assert all(c["opened"] >= 3 for c in connectors), connectors  # round robin over both
        assert len(g.upstream.seen) == 10
    finally:
        assert g.stop() == 0
        relay.stop()
        g.upstream.close()


def test_the_relay_gives_connectors_no_session_tickets(tmp_path: Path) -> None:
    """A connector's session lasts for hours and a restarted relay has new ticket keys, so
    tickets would only cost the relay work in the rush after a restart."""
    relay = Relay.create(tmp_path)
    relay.start()
    try:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # only the tickets are looked at here
        raw = socket.create_connection(("127.0.0.1", relay.port), timeout=1)
        with ctx.wrap_socket(raw, server_hostname=relay.name) as tls:
            assert tls.version() == "TLSv1.3"
            with contextlib.suppress(TimeoutError):
                tls.recv(1)  # tickets come after the handshake; the relay waits for HELLO
            assert tls.session is not None and not tls.session.has_ticket
    finally:
        relay.stop()
