"""The alert ledger and the alerter, without Home Assistant (the real one is in
tests/e2e/test_watch.py): deduplication, the bounded queue, bursts, and the token kept out
of every message."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from hagate.config import AlertSettings
from hagate.errors import HagateError
from hagate.state import StateDir
from hagate.watch.alerts import Alert, Alerter, post_event, read_token
from hagate.watch.ledger import LEDGER_NAME, Ledger
from tests.net import free_port

TOKEN = "eyJhbGciOiJIUzI1NiJ9.secret-token-value.sig"


@pytest.fixture
def state(tmp_path: Path) -> StateDir:
    s = StateDir(tmp_path / "state")
    s.path.mkdir(mode=0o700)
    return s


def settings(tmp_path: Path, url: str, **kw: float) -> AlertSettings:
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    return AlertSettings(url=url, token_file=str(token), **kw)  # type: ignore[arg-type]


def test_the_same_kind_and_subject_is_admitted_once_per_interval_across_processes(
    state: StateDir,
) -> None:
    one, two = Ledger(state / LEDGER_NAME), Ledger(state / LEDGER_NAME)  # two workers
    try:
        assert one.admit("blocked_burst", "198.51.100.1", {"n": 1}, 3600, 10, now=1000)
        assert not two.admit("blocked_burst", "198.51.100.1", {"n": 2}, 3600, 10, now=1500)
        assert two.admit("blocked_burst", "198.51.100.2", {"n": 3}, 3600, 10, now=1500)
        assert two.admit("revoked_certificate", "198.51.100.1", {}, 3600, 10, now=1500)
        assert one.admit("blocked_burst", "198.51.100.1", {"n": 4}, 3600, 10, now=4601)
        assert [d for _, d in one.pending()] == [{"n": 1}, {"n": 3}, {}, {"n": 4}]
    finally:
        one.close()
        two.close()


def test_the_queue_is_bounded_oldest_dropped_and_counted(state: StateDir) -> None:
    ledger = Ledger(state / LEDGER_NAME)
    try:
        for i in range(7):
            assert ledger.admit("k", f"s{i}", {"i": i}, 3600, 3, now=1000)
        assert [d["i"] for _, d in ledger.pending()] == [4, 5, 6]
        assert ledger.dropped() == 4 and ledger.queued() == 3
        first = ledger.pending()[0][0]
        ledger.delivered(first)
        assert [d["i"] for _, d in ledger.pending()] == [5, 6]
    finally:
        ledger.close()


def test_a_certificates_places_first_known_and_new(state: StateDir) -> None:
    ledger = Ledger(state / LEDGER_NAME)
    try:
        assert ledger.place("sha", 3320, "DE") is None  # its first use: not news
        assert ledger.place("sha", 3320, "DE") == set()
        assert ledger.place("sha", 6805, "DE") == {"asn"}
        assert ledger.place("sha", 1136, "NL") == {"asn", "country"}
        assert ledger.place("sha", 3320, "NL") == set()  # both seen before, apart
        assert ledger.place("other", 1136, "NL") is None
    finally:
        ledger.close()
    assert (state / LEDGER_NAME).stat().st_mode & 0o077 == 0


def test_a_burst_is_one_alert_and_slow_blocks_are_none(tmp_path: Path, state: StateDir) -> None:
    a = Alerter(
        state,
        settings(tmp_path, "http://127.0.0.1:1", burst_requests=3, burst_seconds=60),
        "ha.test",
    )

    def block(ip: str, t: float) -> None:
        a.observe(
            "block",
            ip,
            64500,
            "US",
            None,
            None,
            False,
            False,
            "Require a client certificate",
            now=t,
        )

    for t in (0.0, 1.0):
        block("198.51.100.7", t)
    assert a._queue.empty()
    block("198.51.100.7", 2.0)
    block("198.51.100.7", 3.0)
    alert = a._queue.get_nowait()
    assert isinstance(alert, Alert) and alert.kind == "blocked_burst"
    assert (
        alert.subject == "198.51.100.7" and alert.fields["rule"] == "Require a client certificate"
    )
    assert a._queue.empty()
    for t in (0.0, 70.0, 140.0, 210.0):  # one a minute is no burst
        block("203.0.113.9", t)
    assert a._queue.empty()


def test_allowed_requests_and_unrevoked_certificates_are_not_alerts(
    tmp_path: Path, state: StateDir
) -> None:
    a = Alerter(state, settings(tmp_path, "http://127.0.0.1:1", burst_requests=1), "ha.test")
    a.observe("allow", "198.51.100.7", None, None, "phone", "sha", True, False, None, now=0)
    a.observe("block", "", None, None, None, None, False, False, None, now=0)  # a note
    assert a._queue.empty()
    a.observe("block", "198.51.100.8", None, None, "old", "sha2", False, True, "cert", now=0)
    kinds = sorted(a._queue.get_nowait().kind for _ in range(2))  # type: ignore[union-attr]
    assert kinds == ["blocked_burst", "revoked_certificate"]


class Refusing(BaseHTTPRequestHandler):
    seen: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        Refusing.seen.append(self.headers.get("Authorization", ""))
        self.send_response(401)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def refusing() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Refusing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_refused_token_is_said_once_without_the_token_and_alerts_stay_queued(
    tmp_path: Path, state: StateDir, refusing: str
) -> None:
    warn = io.StringIO()
    a = Alerter(state, settings(tmp_path, refusing), "ha.test", warn=warn).start()
    try:
        for i in range(3):
            a.offer(Alert("tunnel_down", f"s{i}", f"message {i}"))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(Refusing.seen) < 2:
            time.sleep(0.05)
    finally:
        a.close()
    assert Refusing.seen and all(h == f"Bearer {TOKEN}" for h in Refusing.seen)
    said = warn.getvalue()
    assert "refused the token (401)" in said and said.count("refused the token") == 1
    assert TOKEN not in said and "secret-token-value" not in said
    ledger = Ledger(state / LEDGER_NAME)
    assert ledger.queued() == 3  # kept for when the token is fixed
    ledger.close()


def test_an_unreachable_home_assistant_keeps_alerts_queued(tmp_path: Path, state: StateDir) -> None:
    result = post_event(f"http://127.0.0.1:{free_port()}", TOKEN, {"kind": "x"})
    assert not result.ok and result.retry and TOKEN not in (result.error or "")


def test_a_token_file_must_hold_one_token(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("two words\n")
    with pytest.raises(HagateError, match="must hold one long-lived access token"):
        read_token(str(path))
    with pytest.raises(HagateError, match="cannot read the token file"):
        read_token(str(tmp_path / "missing"))
    path.write_text(f"  {TOKEN}\n")
    assert read_token(str(path)) == TOKEN


def test_a_full_queue_drops_the_oldest_says_so_and_counts_it(
    tmp_path: Path, state: StateDir
) -> None:
    warn = io.StringIO()
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens: Home Assistant is down
    a = Alerter(state, settings(tmp_path, url, queue=2), "ha.test", warn=warn).start()
    try:
        for i in range(4):
            a.offer(Alert("blocked_burst", f"198.51.100.{i}", f"burst {i}"))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "dropped in all" not in warn.getvalue():
            time.sleep(0.05)
    finally:
        a.close()
    ledger = Ledger(state / LEDGER_NAME)
    try:
        assert [d["subject"] for _, d in ledger.pending()] == ["198.51.100.2", "198.51.100.3"]
        assert ledger.dropped() == 2
    finally:
        ledger.close()
    assert "the queue is full (2 alerts wait for Home Assistant)" in warn.getvalue()
    assert "is unreachable" in warn.getvalue()
    from hagate.watch.admin import StateCollector

    families = {f.name: f.samples[0].value for f in StateCollector(state)._alerts()}
    assert families == {"hagate_alerts_queued": 2, "hagate_alerts_dropped": 2}


def test_a_bound_credential_used_from_a_new_place_is_an_alert_naming_its_certificate(
    tmp_path: Path, state: StateDir
) -> None:
    a = Alerter(state, settings(tmp_path, "http://127.0.0.1:1"), "ha.test")
    ledger = Ledger(state / LEDGER_NAME)
    try:
        # The certificate itself at home, then its login from elsewhere without it.
        a.observe("allow", "192.0.2.1", 3320, "DE", "phone", "sha", True, False, None, now=0)
        a.observe("skip", "198.51.100.7", 64500, "NL", None, None, False, False, "bound apps",
                  now=1, bound_to=("phone", "sha"))  # fmt: skip
        # The same place again, and a blocked request carrying nothing bound: no news.
        a.observe("skip", "198.51.100.8", 64500, "NL", None, None, False, False, "bound apps",
                  now=2, bound_to=("phone", "sha"))  # fmt: skip
        a.observe("block", "203.0.113.9", 64501, "US", None, None, False, False, "cert", now=3)
        while not a._queue.empty():
            a._handle(ledger, a._queue.get_nowait())  # type: ignore[arg-type]
        alerts = [d for _, d in ledger.pending()]
    finally:
        ledger.close()
    assert [d["kind"] for d in alerts] == ["new_location"], alerts
    assert alerts[0]["certificate"] == "phone"
    assert alerts[0]["message"].startswith(
        "A Home Assistant login or webhook bound to the certificate 'phone' was used without it"
        " from a new country NL and network AS64500 for the first time (198.51.100.7"
    )
