"""The gateway's answer to a ClientHello offering acme-tls/1 (hostile cases included): the
validation certificate only for its own name and only while a challenge is pending, never
the real certificate, never HTTP to Home Assistant."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from hagate.acme.challenge import acme_identifier_digest, validation_pem
from hagate.acme.store import AcmeFiles
from hagate.state import StateDir
from tests.acme.helpers import configure_acme, served, wait_for
from tests.gateway.harness import Gateway, make_gateway


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    g = make_gateway(tmp_path)
    # A directory nobody answers at: the renewer fails and backs off; nothing else changes.
    configure_acme(g, "https://127.0.0.1:9/dir", g.state / "ca.crt")
    g.start()
    # Its first attempt fails at once and withdraws any challenge file as it ends: let it
    # finish before the tests publish theirs (it then backs off for a minute).
    wait_for(lambda: AcmeFiles(StateDir(g.state)).status().last_error, 15, "the first attempt")
    try:
        yield g
    finally:
        g.stop()
        g.upstream.close()


def acme_hello(port: int, sni: str, alpn: list[str]) -> ssl.SSLSocket:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(alpn)
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    return ctx.wrap_socket(raw, server_hostname=sni)


def publish(g: Gateway, name: str = "ha.test", key_authorization: str = "tok.thumb") -> None:
    AcmeFiles(StateDir(g.state)).publish_challenge(name, validation_pem(name, key_authorization))


def test_pending_challenge_is_answered_with_the_validation_certificate(gateway: Gateway) -> None:
    publish(gateway)
    with acme_hello(gateway.port, "ha.test", ["acme-tls/1"]) as tls:
        assert tls.selected_alpn_protocol() == "acme-tls/1"
        cert = x509.load_der_x509_certificate(tls.getpeercert(True) or b"")
        assert acme_identifier_digest(cert) is not None
        # No HTTP on such a connection: the gateway has closed it.
        with pytest.raises((ConnectionError, ssl.SSLError, OSError)):
            tls.sendall(b"GET / HTTP/1.1\r\nHost: ha.test\r\n\r\n")
            if not tls.recv(100):
                raise ConnectionResetError
    assert gateway.upstream.seen == []
    rows = [e for e in gateway.events() if e["action"] == "acme_challenge"]
    assert rows and "served" in rows[-1]["reason"] and rows[-1]["sni"] == "ha.test"


def test_ordinary_clients_never_get_the_validation_certificate(gateway: Gateway) -> None:
    publish(gateway)
    for alpn in (None, ["http/1.1"], ["h2", "http/1.1"]):
        assert acme_identifier_digest(served(gateway.port, alpn=alpn)) is None


@pytest.mark.parametrize(
    ("sni", "alpn"),
    [
        ("ha.test", ["acme-tls/1"]),  # nothing pending
        ("other.test", ["acme-tls/1"]),  # another name, even with one pending
        ("ha.test", ["http/1.1", "acme-tls/1"]),  # offered among others: still validation
    ],
)
def test_no_certificate_at_all_without_a_pending_challenge_for_that_name(
    gateway: Gateway, sni: str, alpn: list[str]
) -> None:
    if sni == "other.test":
        publish(gateway)
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        acme_hello(gateway.port, sni, alpn).close()
    rows = wait_for(
        lambda: [e for e in gateway.events() if e["action"] == "acme_challenge"], 5, "an event"
    )
    assert "closed" in rows[-1]["reason"]
    assert gateway.upstream.seen == []


def test_withdrawn_challenge_is_no_longer_answered(gateway: Gateway) -> None:
    publish(gateway)
    acme_hello(gateway.port, "ha.test", ["acme-tls/1"]).close()
    AcmeFiles(StateDir(gateway.state)).withdraw_challenge("ha.test")
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        acme_hello(gateway.port, "ha.test", ["acme-tls/1"]).close()


def test_without_tls_acme_acme_tls_1_is_refused(tmp_path: Path) -> None:
    g = make_gateway(tmp_path)
    g.start()
    try:
        publish(g)  # even a file left in the state directory is not served
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            acme_hello(g.port, "ha.test", ["acme-tls/1"]).close()
        rows = wait_for(
            lambda: [e for e in g.events() if e["action"] == "acme_challenge"], 5, "an event"
        )
        assert "no ACME here" in rows[-1]["reason"]
    finally:
        g.stop()
        g.upstream.close()


def test_a_gateway_stops_at_once_while_its_renewal_hangs_at_the_ca(tmp_path: Path) -> None:
    """A CA that accepts and never answers: the order waits on its network timeout (30 s),
    in a thread the gateway does not wait for when told to stop."""
    silent = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    threading.Thread(target=lambda: held.append(silent.accept()[0]), daemon=True).start()
    g = make_gateway(tmp_path)
    configure_acme(g, f"https://127.0.0.1:{silent.getsockname()[1]}/dir", g.state / "ca.crt")
    try:
        g.start()
        wait_for(lambda: held, 10, "the renewal connecting to the CA")
        started = time.monotonic()
        assert g.stop() == 0
        assert time.monotonic() - started < 8
    finally:
        silent.close()
        g.upstream.close()
