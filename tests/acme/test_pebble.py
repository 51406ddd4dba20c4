"""Server certificates from pebble (a real ACME server) with tls-alpn-01, in port-forward mode
and through relay -> tunnel -> gateway; renewal under live connections; failures."""

from __future__ import annotations

import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from tests.acme.helpers import (
    acme_certificate,
    configure_acme,
    curl_verifies,
    fingerprint,
    issued_by_pebble,
    openssl_verifies,
    served,
    status,
    wait_for,
)
from tests.acme.pebble import Pebble
from tests.acme.refusing_proxy import RefusingProxy
from tests.conftest import run_hagate
from tests.gateway.harness import Gateway, make_gateway, read_response
from tests.net import free_port
from tests.tunnel.harness import Relay, start_connector

pytestmark = pytest.mark.slow


@pytest.fixture
def forwarded(tmp_path: Path) -> Iterator[tuple[Gateway, Pebble]]:
    """A port-forward gateway with tls.acme pointing at a pebble that validates on its port."""
    g = make_gateway(tmp_path)
    pebble = Pebble(tmp_path / "pebble", g.port)
    pebble.start()
    configure_acme(g, pebble.directory, pebble.https_ca)
    try:
        yield g, pebble
    finally:
        if g.proc is not None:
            g.stop()
        pebble.stop()
        g.upstream.close()


def test_port_forward_issuance_chain_verifies_with_curl_and_openssl(
    forwarded: tuple[Gateway, Pebble],
) -> None:
    g, pebble = forwarded
    g.start()
    cert = wait_for(lambda: acme_certificate(g.state), 30, "an ACME certificate")
    assert issued_by_pebble(cert)
    wait_for(
        lambda: fingerprint(served(g.port)) == fingerprint(cert), 5, "the new certificate served"
    )
    root = pebble.root_file()
    assert curl_verifies(pebble, g.port, root).endswith(" 0")
    out = openssl_verifies(g.port, root)
    assert "Verify return code: 0 (ok)" in out
    events = g.events()
    challenges = [e for e in events if e["action"] == "acme_challenge"]
    assert challenges and all("served" in e["reason"] for e in challenges)
    assert all(e["path"] is None and e["method"] is None for e in challenges)
    assert [e for e in events if e["action"] == "acme_renewed"]
    assert g.upstream.seen == []  # the CA's connections carried no HTTP to Home Assistant
    st = status(g.state)
    assert st["certificate"]["names"] == ["ha.test"]
    assert st["last_error"] is None and st["next_renewal"] > st["certificate"]["not_before"]
    key = g.state / "acme" / "account.key"
    assert key.stat().st_mode & 0o777 == 0o600
    assert (g.state / "acme" / "certificate.pem").stat().st_mode & 0o777 == 0o600


def test_relay_and_home_both_get_certificates_through_the_relay(tmp_path: Path) -> None:
    """`relay init --acme`: the relay's control certificate from the CA; the home's through
    relay -> tunnel -> gateway; the connector verifies the relay by CA, no pinned print."""
    relay_port = free_port()
    pebble = Pebble(tmp_path / "pebble", relay_port)
    pebble.start()
    g = make_gateway(tmp_path)
    configure_acme(g, pebble.directory, pebble.https_ca)
    relay_state = tmp_path / "relay"
    r = run_hagate(
        "relay",
        "init",
        "--hostname",
        "relay.test",
        "--acme",
        "--acme-directory",
        pebble.directory,
        "--acme-ca-bundle",
        pebble.https_ca,
        "--acme-email",
        "ops@relay.test",
        state=relay_state,
    )
    assert r.code == 0, r.err
    assert "no --relay-fingerprint" in r.out
    relay = Relay(relay_state, "relay.test", relay_port, r.out.strip().splitlines()[-1])
    try:
        relay.start()
        relay_cert = wait_for(lambda: acme_certificate(relay_state), 30, "the relay's certificate")
        assert issued_by_pebble(relay_cert)
        root = pebble.root_file()
        wait_for(
            lambda: fingerprint(served(relay_port, "relay.test")) == fingerprint(relay_cert),
            5,
            "the relay serving its ACME certificate",
        )
        assert "Verify return code: 0 (ok)" in openssl_verifies(relay_port, root, "relay.test")
        start_connector(g, [relay], relay.token(), pin=False, extra=("--relay-ca", str(root)))
        cert = wait_for(lambda: acme_certificate(g.state), 30, "the home's certificate")
        assert issued_by_pebble(cert)
        wait_for(
            lambda: fingerprint(served(relay_port)) == fingerprint(cert), 5, "home cert served"
        )
        assert curl_verifies(pebble, relay_port, root).endswith(" 0")
        assert "Verify return code: 0 (ok)" in openssl_verifies(relay_port, root)
        events = g.events()
        assert [e for e in events if e["action"] == "acme_challenge" and "served" in e["reason"]]
        st = status(relay_state)
        assert st["kind"] == "relay" and st["certificate"]["names"] == ["relay.test"]
        assert relay.status()["counters"]["acme_challenges"] >= 1
    finally:
        if g.proc is not None:
            g.stop()
        relay.stop()
        pebble.stop()
        g.upstream.close()


def test_connector_refuses_a_relay_its_ca_file_does_not_vouch_for(tmp_path: Path) -> None:
    relay = Relay.create(tmp_path)  # self-signed: no CA vouches for it
    g = make_gateway(tmp_path)
    other_ca = Pebble(tmp_path / "pebble", 1).https_ca
    try:
        relay.start()
        start_connector(
            g, [relay], relay.token(), pin=False, wait=False, extra=("--relay-ca", str(other_ca))
        )
        assert g.err_path is not None
        wait_for(lambda: "certificate verify failed" in g.err_path.read_text(), 15, "refusal")  # type: ignore[union-attr]
        assert not relay.status()["connectors"]
    finally:
        if g.proc is not None:
            g.stop()
        relay.stop()
        g.upstream.close()


def _client(g: Gateway, root: Path, cert: str) -> ssl.SSLSocket:
    ctx = ssl.create_default_context(cafile=str(root))
    ctx.load_cert_chain(g.certs_dir / f"{cert}.crt", g.certs_dir / f"{cert}.key")
    raw = socket.create_connection(("127.0.0.1", g.port), timeout=15)
    return ctx.wrap_socket(raw, server_hostname="ha.test")


def _get(sock: ssl.SSLSocket, path: str = "/") -> int:
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: ha.test\r\n\r\n".encode())
    return read_response(sock, bytearray()).status


def test_renewal_swaps_the_certificate_under_live_connections(
    forwarded: tuple[Gateway, Pebble],
) -> None:
    """`hagate acme renew --force` while a keep-alive connection and a websocket are open:
    both stay up on the certificate they started with, new connections get the new one."""
    g, pebble = forwarded
    g.start(workers=2)
    g.issue("phone")
    first = wait_for(lambda: acme_certificate(g.state), 30, "an ACME certificate")
    root = pebble.root_file()
    wait_for(lambda: fingerprint(served(g.port)) == fingerprint(first), 5, "first cert served")
    keep = _client(g, root, "phone")
    assert _get(keep) == 200
    ws = _client(g, root, "phone")
    ws.sendall(
        b"GET /ws HTTP/1.1\r\nHost: ha.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    assert read_response(ws, bytearray()).status == 101
    ws.sendall(b"before")
    assert ws.recv(100) == b"BEFORE"

    r = run_hagate("acme", "renew", "--force", state=g.state)
    assert r.code == 0, r.err
    second = acme_certificate(g.state)
    assert second is not None and fingerprint(second) != fingerprint(first)
    # Every worker serves it within a second or so; the kernel spreads new connections.
    for _ in range(8):
        wait_for(lambda: fingerprint(served(g.port)) == fingerprint(second), 5, "new cert served")
    assert fingerprint(
        x509.load_der_x509_certificate(keep.getpeercert(True) or b"")
    ) == fingerprint(first)
    assert _get(keep) == 200
    ws.sendall(b"after")
    assert ws.recv(100) == b"AFTER"
    keep.close()
    ws.close()
    assert pebble.issued() == 2
    st = status(g.state)
    assert [h["outcome"] for h in st["history"]] == ["renewed", "renewed"]
    assert "acme_renewed" in {e["action"] for e in g.events()}


def test_two_workers_renew_once_each_time_at_two_thirds_of_the_lifetime(tmp_path: Path) -> None:
    """Certificates that live 24 s: each is renewed at about 16 s, by one of the two
    workers, and the CA issues exactly one certificate per renewal."""
    g = make_gateway(tmp_path)
    pebble = Pebble(tmp_path / "pebble", g.port, validity=24)
    pebble.start()
    configure_acme(g, pebble.directory, pebble.https_ca)
    try:
        g.start(workers=2)
        first = wait_for(lambda: acme_certificate(g.state), 30, "an ACME certificate")
        lifetime = (first.not_valid_after_utc - first.not_valid_before_utc).total_seconds()
        second = wait_for(
            lambda: (
                (c := acme_certificate(g.state)) is not None
                and fingerprint(c) != fingerprint(first)
                and c
            ),
            lifetime,
            "a renewal",
        )
        renewed_at = time.time()
        begun = first.not_valid_before_utc.timestamp()
        assert begun + lifetime * 0.6 <= renewed_at <= begun + lifetime * 0.8 + 3
        wait_for(
            lambda: fingerprint(served(g.port)) == fingerprint(second), 5, "renewed cert served"
        )
        time.sleep(2)  # the other worker had its chance to renew too
        assert pebble.issued() == 2
        st = status(g.state)
        assert [h["outcome"] for h in st["history"]] == ["renewed", "renewed"]
    finally:
        g.stop()
        pebble.stop()
        g.upstream.close()


def test_rate_limited_renewal_keeps_the_old_certificate_and_waits_as_told(tmp_path: Path) -> None:
    """The CA answers the renewal's new order with 429 and Retry-After: the old certificate
    keeps serving, the error is in the status and the events, and the next order comes no
    sooner than the CA asked; it then succeeds."""
    g = make_gateway(tmp_path)
    pebble = Pebble(tmp_path / "pebble", g.port, validity=21)
    pebble.start()
    proxy = RefusingProxy(pebble, retry_after=6)
    configure_acme(g, proxy.directory, pebble.https_ca)
    try:
        g.start()
        first = wait_for(lambda: acme_certificate(g.state), 30, "an ACME certificate")
        proxy.refuse = 1
        wait_for(lambda: any(s == 429 for _, s in proxy.orders), 25, "the refused renewal")
        refused_at = next(t for t, s in proxy.orders if s == 429)
        st = wait_for(lambda: (s := status(g.state))["last_error"] and s, 5, "the error recorded")
        assert "rate limit" in st["last_error"] and "too many new orders" in st["last_error"]
        assert st["retry_after_until"] >= refused_at + 5.5
        assert fingerprint(served(g.port)) == fingerprint(first)  # the old one still serves
        wait_for(lambda: len(proxy.orders) >= 3, 20, "the retry")
        retried_at = proxy.orders[2][0]
        assert proxy.orders[2][1] == 201 and retried_at >= refused_at + 6
        second = wait_for(
            lambda: (
                (c := acme_certificate(g.state)) is not None
                and fingerprint(c) != fingerprint(first)
                and c
            ),
            10,
            "the renewed certificate",
        )
        wait_for(lambda: fingerprint(served(g.port)) == fingerprint(second), 5, "new cert served")
        errors = [e for e in g.events() if e["action"] == "acme_error"]
        assert errors and "rate limit" in errors[0]["reason"]
        assert status(g.state)["last_error"] is None
    finally:
        g.stop()
        proxy.close()
        pebble.stop()
        g.upstream.close()


def test_failing_challenge_keeps_the_old_certificate_and_backs_off(
    forwarded: tuple[Gateway, Pebble],
) -> None:
    """A CA that cannot reach the gateway (a fresh pebble validating on a port where nothing
    answers, which also no longer knows the account): the renewal fails in plain words, the
    old certificate keeps serving, and nobody asks the CA again before the backoff ends."""
    g, pebble = forwarded
    g.start()
    first = wait_for(lambda: acme_certificate(g.state), 30, "an ACME certificate")
    wait_for(lambda: fingerprint(served(g.port)) == fingerprint(first), 5, "first cert served")
    pebble.restart(tls_port=free_port())
    r = run_hagate("acme", "renew", "--force", state=g.state)
    assert r.code == 1
    assert "registering again" in r.err  # the new pebble did not know the account
    assert "renewal failed, the current certificate keeps serving" in r.err
    assert "could not validate ha.test with tls-alpn-01" in r.err
    assert "Traceback" not in r.err
    assert fingerprint(served(g.port)) == fingerprint(first)
    st = status(g.state)
    assert st["failures"] == 1 and "tls-alpn-01" in st["last_error"]
    assert st["not_before"] >= st["last_attempt"] + 60
    shown = run_hagate("acme", "status", state=g.state)
    assert "last error:" in shown.out and "retrying:      not before" in shown.out
    # Not due (pebble's certificates last years): without --force the CA is not asked.
    orders = pebble.log().count("POST /order-plz")
    again = run_hagate("acme", "renew", state=g.state)
    assert again.code == 0 and "not due before" in again.out
    assert pebble.log().count("POST /order-plz") == orders
    errors = [e for e in g.events() if e["action"] == "acme_error"]
    assert errors and "tls-alpn-01" in errors[-1]["reason"]


def test_renewer_backs_off_after_a_failed_challenge(tmp_path: Path) -> None:
    """The gateway's own renewer meets a CA that cannot reach it: hagate's CA's certificate
    keeps serving, the failure is an event, and the renewer does not ask again before the
    backoff it recorded."""
    g = make_gateway(tmp_path)
    pebble = Pebble(tmp_path / "pebble", free_port())  # nothing answers there
    pebble.start()
    configure_acme(g, pebble.directory, pebble.https_ca)
    try:
        g.start(workers=2)
        st = wait_for(lambda: (s := status(g.state))["last_error"] and s, 30, "the failure")
        assert "could not validate ha.test" in st["last_error"]
        assert st["not_before"] - st["last_attempt"] >= 60
        assert "hagate" in served(g.port).issuer.rfc4514_string().lower()
        time.sleep(6)  # both workers looked again meanwhile
        assert pebble.log().count("POST /order-plz") == 1
        assert status(g.state)["failures"] == 1
        errors = [e for e in g.events() if e["action"] == "acme_error"]
        assert len(errors) == 1
    finally:
        g.stop()
        pebble.stop()
        g.upstream.close()


@pytest.mark.parametrize("where", ["before-rename", "after-rename"])
def test_kill_9_while_writing_the_certificate_leaves_a_usable_pair(
    forwarded: tuple[Gateway, Pebble], where: str
) -> None:
    g, pebble = forwarded
    g.start()
    first = wait_for(lambda: acme_certificate(g.state), 30, "an ACME certificate")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.acme.pause_write", str(g.state), where],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line == b"PAUSED\n", proc.stderr.read() if proc.stderr else b""
    proc.kill()
    proc.wait(10)
    path = g.state / "acme" / "certificate.pem"
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(path)  # key and certificate load, and match
    on_disk = acme_certificate(g.state)
    assert on_disk is not None
    if where == "before-rename":
        assert fingerprint(on_disk) == fingerprint(first)
    else:
        assert fingerprint(on_disk) != fingerprint(first)
    wait_for(lambda: fingerprint(served(g.port)) == fingerprint(on_disk), 5, "the pair served")
    assert curl_verifies(pebble, g.port, pebble.root_file()).endswith(" 0")
    # The renewal lock died with the process: the next renewal is not blocked.
    r = run_hagate("acme", "renew", "--force", state=g.state)
    assert r.code == 0, r.err


def test_adding_tls_acme_and_reloading_gets_a_certificate_without_a_restart(tmp_path: Path) -> None:
    g = make_gateway(tmp_path)
    pebble = Pebble(tmp_path / "pebble", g.port)
    pebble.start()
    try:
        g.start()
        before = served(g.port)
        assert "hagate" in before.issuer.rfc4514_string().lower()
        configure_acme(g, pebble.directory, pebble.https_ca)
        assert g.proc is not None
        g.proc.send_signal(signal.SIGHUP)
        cert = wait_for(lambda: acme_certificate(g.state), 30, "an ACME certificate")
        wait_for(lambda: fingerprint(served(g.port)) == fingerprint(cert), 5, "served")
        assert g.proc.poll() is None  # the same process throughout
    finally:
        g.stop()
        pebble.stop()
        g.upstream.close()


def test_issuance_through_a_haproxy_front_with_proxy_protocol(tmp_path: Path) -> None:
    """tls-alpn-01 behind a front: pebble validates at HAProxy's port, HAProxy passes the
    connection to the gateway behind a PROXY v2 header, and the gateway reads the header,
    then answers the CA's `acme-tls/1` handshake; clients then get the certificate there."""
    from tests.front.peers import FRONT_SOURCE, Front

    g = make_gateway(tmp_path)
    front = Front("haproxy", tmp_path / "haproxy", g.port, "send-proxy-v2")
    pebble = Pebble(tmp_path / "pebble", front.port)
    g.configure(extra=f"\ngateway:\n  proxy_protocol:\n    trusted: [{FRONT_SOURCE}/32]\n")
    configure_acme(g, pebble.directory, pebble.https_ca)
    try:
        front.start()
        pebble.start()
        g.start()
        cert = wait_for(lambda: acme_certificate(g.state), 30, "an ACME certificate")
        assert issued_by_pebble(cert)
        wait_for(
            lambda: fingerprint(served(front.port)) == fingerprint(cert),
            5,
            "the new certificate served through the front",
        )
        assert curl_verifies(pebble, front.port, pebble.root_file()).endswith(" 0")
        challenges = [e for e in g.events() if e["action"] == "acme_challenge"]
        assert challenges and all("served" in e["reason"] for e in challenges)
        # pebble's address came in the header: the challenge is not the front's
        assert all(e["client_ip"] != FRONT_SOURCE for e in challenges)
    finally:
        if g.proc is not None:
            g.stop()
        front.stop()
        pebble.stop()
        g.upstream.close()
