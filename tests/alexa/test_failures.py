"""The bundled handler, run as Lambda runs it (python3.13 -I -S, unpacked, cold then warm),
against a small TLS server that fails on cue: the retry rule, the deadline, the errors."""

from __future__ import annotations

import contextlib
import glob
import socket
import ssl
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hagate.alexa.directives import directive
from hagate.alexa.invoke import Invocation, run_bundle
from tests.alexa.helpers import assert_error
from tests.conftest import Setup
from tests.e2e.homeassistant import find_python313
from tests.net import free_port

ANSWER = (
    b'{"event": {"header": {"namespace": "Alexa", "name": "Response", "messageId": "m1",'
    b' "payloadVersion": "3"}, "payload": {}}}'
)


class Fake:
    """A TLS server with hagate's server certificate; each request gets the next action."""

    def __init__(self, cert: Path, key: Path, actions: list[str]) -> None:
        self.actions = actions
        self.requests: list[bytes] = []
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.acceptor = threading.Thread(target=self._accept, daemon=True)
        self.acceptor.start()

    def _accept(self) -> None:
        while True:
            try:
                raw, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw: socket.socket) -> None:
        try:
            conn = self.ctx.wrap_socket(raw, server_side=True)
        except (OSError, ssl.SSLError):
            return
        buf = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                head, _, buf = buf.partition(b"\r\n\r\n")
                length = int(
                    next(
                        line.split(b":")[1]
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length")
                    )
                )
                while len(buf) < length:
                    buf += conn.recv(65536)
                self.requests.append(buf[:length])
                buf = buf[length:]
                action = self.actions.pop(0) if self.actions else "answer"
                if action == "close":
                    return
                if action == "hang":
                    time.sleep(30)
                    return
                if action == "partial":
                    conn.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"ev')
                    return
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%b" % (len(ANSWER), ANSWER)
                )
                if action == "answer-then-close":
                    time.sleep(0.2)
                    return

    def close(self) -> None:
        # close() alone leaves the acceptor blocked in accept(2) on a file descriptor number
        # the next test's server may be given: it then took that server's connections and
        # answered with this test's certificate. shutdown() wakes it; it is gone before the
        # number is free.
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.acceptor.join(5)
        assert not self.acceptor.is_alive()
        self.sock.close()


@pytest.fixture
def make_bundle(setup: Setup) -> Iterator[Any]:
    token = setup.tmp / "token"
    token.write_text("long-lived-token\n")

    def make(port: int, deadline: float = 6.5) -> Path:
        out = setup.tmp / f"alexa-{port}.zip"
        r = setup.run(
            "alexa",
            "bundle",
            "--out",
            out,
            "--url",
            f"https://ha.test:{port}",
            "--connect-address",
            "127.0.0.1",
            "--deadline",
            str(deadline),
            "--long-lived-token-file",
            token,
        )
        assert r.code == 0, r.err
        return out

    yield make


@pytest.fixture
def fake(setup: Setup) -> Iterator[Any]:
    made: list[Fake] = []

    def start(actions: list[str]) -> Fake:
        made.append(Fake(setup.state / "server.crt", setup.state / "server.key", actions))
        return made[-1]

    yield start
    for f in made:
        f.close()


def interpreters() -> dict[str, str]:
    """Lambda's Pythons this machine has (3.13 always: the e2e tests need it), and this one."""
    found = {"3.13": find_python313(), "venv": sys.executable}
    for candidate in sorted(glob.glob(str(Path.home() / ".pyenv/versions/3.12*/bin/python3.12"))):
        found["3.12"] = candidate
    return found


def run(
    bundle: Path, n: int, sleeps: list[float] | None = None, python: str | None = None
) -> list[Invocation]:
    event = directive("turn-on", "input_boolean.kitchen_light")
    results = run_bundle(bundle, [event] * n, python=python or find_python313(), sleeps=sleeps)
    assert all(r.raised is None for r in results)
    return results


@pytest.mark.parametrize("python", sorted(interpreters()))
def test_warm_invocations_reuse_one_connection(make_bundle: Any, fake: Any, python: str) -> None:
    """On each Python: TLS 1.3 session tickets make a kept socket readable, and http.client
    refuses a request while the last answer is open; neither may cost a new connection."""
    f = fake([])
    results = run(make_bundle(f.port), 3, python=interpreters()[python])
    assert [r.response["event"]["header"]["name"] for r in results] == ["Response"] * 3
    assert [r.log[0]["reused"] for r in results] == [False, True, True]
    assert [r.log[0]["retried"] for r in results] == [False, False, False]
    assert [r.log[0]["connect_ms"] is None for r in results] == [False, True, True]
    assert results[0].log[0]["connect_ms"] is not None and results[1].log[0]["connect_ms"] is None
    assert len(f.requests) == 3 and b"long-lived-token" not in b"".join(f.requests)


def test_a_kept_connection_that_fails_before_any_answer_byte_is_retried_once(
    make_bundle: Any, fake: Any
) -> None:
    f = fake(["answer", "close"])
    results = run(make_bundle(f.port), 2)
    assert results[1].response["event"]["header"]["name"] == "Response", (
        results[1].response,
        results[1].log,
    )
    assert results[1].log[0]["retried"] is True
    assert len(f.requests) == 3  # the directive went out once more, on a new connection


def test_no_retry_once_bytes_of_the_answer_were_read(make_bundle: Any, fake: Any) -> None:
    f = fake(["answer", "partial"])
    results = run(make_bundle(f.port), 2)
    assert_error(results[1].response, "ENDPOINT_UNREACHABLE")
    assert results[1].log[0]["retried"] is False
    assert len(f.requests) == 2  # AdjustBrightness is never sent twice


def test_a_connection_closed_while_idle_is_replaced_before_sending(
    make_bundle: Any, fake: Any
) -> None:
    f = fake(["answer-then-close"])
    results = run(make_bundle(f.port), 2, sleeps=[0, 1.0])
    assert results[1].response["event"]["header"]["name"] == "Response", (
        results[1].response,
        results[1].log,
    )
    assert results[1].log[0]["retried"] is False and results[1].log[0]["connect_ms"] is not None
    assert len(f.requests) == 2


def test_a_server_that_never_answers_gives_unreachable_within_the_deadline(
    make_bundle: Any, fake: Any
) -> None:
    f = fake(["hang"])
    results = run(make_bundle(f.port, deadline=1.5), 1)
    event = assert_error(results[0].response, "ENDPOINT_UNREACHABLE")
    assert "deadline" in event["payload"]["message"]
    assert 1400 < results[0].ms < 2200


def test_a_listener_that_never_does_tls_gives_unreachable_within_the_deadline(
    make_bundle: Any,
) -> None:
    silent = socket.create_server(("127.0.0.1", 0))
    try:
        results = run(make_bundle(silent.getsockname()[1], deadline=1.5), 1)
    finally:
        silent.close()
    assert_error(results[0].response, "ENDPOINT_UNREACHABLE")
    assert results[0].ms < 2200


def test_nothing_listening_gives_unreachable_at_once(make_bundle: Any) -> None:
    results = run(make_bundle(free_port()), 1)
    event = assert_error(results[0].response, "ENDPOINT_UNREACHABLE")
    assert "nothing answers" in event["payload"]["message"] and results[0].ms < 1000


def test_a_server_certificate_from_another_ca_is_refused(make_bundle: Any, tmp_path: Path) -> None:
    from hagate.pki import certs

    ca = certs.create_ca("other")
    server = certs.issue_server(ca, "ha.test")
    (tmp_path / "s.crt").write_bytes(certs.cert_pem(server.cert))
    (tmp_path / "s.key").write_bytes(certs.key_pem(server.key))
    f = Fake(tmp_path / "s.crt", tmp_path / "s.key", [])
    try:
        results = run(make_bundle(f.port), 1)
    finally:
        f.close()
    event = assert_error(results[0].response, "ENDPOINT_UNREACHABLE")
    assert "not trusted" in event["payload"]["message"] and not f.requests
