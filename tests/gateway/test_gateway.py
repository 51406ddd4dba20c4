"""`hagate serve` end to end with real TLS clients, observed at a recording upstream."""

from __future__ import annotations

import contextlib
import json
import select
import shlex
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hagate.events.store import read_events
from tests.conftest import run_hagate
from tests.gateway.harness import Gateway, RecordingUpstream, make_gateway, read_response

AUTH_SKIP_RULES = """\
  - description: Amazon refreshes tokens
    expression: http.request.uri.path eq "/auth/token"
    action: skip
  - description: Require a client certificate
    expression: (not cf.tls_client_auth.cert_verified)
    action: block
"""


@pytest.fixture
def gw(tmp_path: Path) -> Iterator[Gateway]:
    g = make_gateway(tmp_path)
    g.configure(
        gateway={"header_timeout": 2, "idle_timeout": 3, "response_timeout": 2, "drain_timeout": 5}
    )
    g.issue("phone")
    g.start()
    try:
        yield g
    finally:
        g.stop()
        g.upstream.close()


def test_with_certificate_the_request_reaches_upstream(gw: Gateway) -> None:
    r = gw.request("/api/states", cert="phone")
    assert r.status == 200 and json.loads(r.body)["path"] == "/api/states"
    assert r.header("x-upstream") == "yes"
    assert gw.upstream.paths() == ["/api/states"]


def test_without_certificate_403_and_upstream_sees_nothing(gw: Gateway) -> None:
    r = gw.request("/api/states")
    assert r.status == 403
    assert "client certificate" in r.body.decode() and r.header("x-request-id")
    assert r.header("x-hagate-page") == "blocked"  # the gateway's own page, not HA's
    assert "not cf.tls_client_auth" not in r.body.decode()  # never the expression
    html = gw.request("/", headers={"Accept": "text/html,*/*"})
    assert html.header(
        "content-type",
    ).startswith("text/html")  # type: ignore[union-attr]
    assert "<h1>A client certificate is required</h1>" in html.body.decode()
    assert gw.upstream.seen == []


def test_forwarded_headers_are_replaced_not_trusted(gw: Gateway) -> None:
    gw.request(
        "/x",
        cert="phone",
        headers={
            "X-Forwarded-For": "6.6.6.6",
            "Forwarded": "for=6.6.6.6",
            "X-Real-IP": "6.6.6.6",
            "X-Forwarded-Proto": "http",
            "X-Forwarded-Host": "evil.example",
            "Connection": "keep-alive, X-Secret",
            "X-Secret": "hop",
            "Keep-Alive": "timeout=5",
            "Proxy-Connection": "x",
        },
    )
    seen = gw.upstream.seen[0]
    assert seen.header("x-forwarded-for") == ["127.0.0.1"]
    assert seen.header("x-forwarded-proto") == ["https"]
    assert seen.header("x-forwarded-host") == ["ha.test"]
    assert seen.header("host") == ["ha.test"]
    for gone in ("forwarded", "x-real-ip", "x-secret", "keep-alive", "proxy-connection"):
        assert seen.header(gone) == [], gone


def test_every_pipelined_request_is_evaluated_on_its_own(gw: Gateway) -> None:
    gw.configure(
        rules="""\
  - description: Amazon refreshes tokens
    expression: http.request.uri.path eq "/auth/token"
    action: skip
  - description: No states for anyone
    expression: http.request.uri.path eq "/api/states"
    action: block
"""
    )
    gw.stop()
    gw.start()
    with gw.connect("phone") as sock:
        sock.sendall(
            b"POST /auth/token HTTP/1.1\r\nHost: ha.test\r\nContent-Length: 0\r\n\r\n"
            b"GET /api/states HTTP/1.1\r\nHost: ha.test\r\n\r\n"
            b"GET /auth/token HTTP/1.1\r\nHost: ha.test\r\n\r\n"
        )
        buf = bytearray()
        statuses = [read_response(sock, buf).status for _ in range(3)]
    assert statuses == [200, 403, 200]
    assert gw.upstream.paths() == ["/auth/token", "/auth/token"]


def test_a_client_without_a_certificate_is_closed_after_its_403(gw: Gateway) -> None:
    gw.configure(rules=AUTH_SKIP_RULES)
    gw.stop()
    gw.start()
    with gw.connect() as sock:
        sock.sendall(
            b"GET /auth/token HTTP/1.1\r\nHost: ha.test\r\n\r\n"
            b"GET /api/states HTTP/1.1\r\nHost: ha.test\r\n\r\n"
            b"GET /auth/token HTTP/1.1\r\nHost: ha.test\r\n\r\n"
        )
        buf = bytearray()
        first, blocked = read_response(sock, buf), read_response(sock, buf)
        assert (first.status, blocked.status) == (200, 403)
        assert blocked.header("connection") == "close"
        with pytest.raises(ConnectionError):
            read_response(sock, buf)  # nothing more is served on this connection
    assert gw.upstream.paths() == ["/auth/token"]


@pytest.mark.parametrize(
    "target",
    [
        "/auth/token/../../api/states",
        "/auth/token%2F..%2F..%2Fapi/states",
        "/auth/%2e%2e/api/states",
        "/auth/token/%2e%2e/%2e%2e/api/states",
        "//api/states",
        "/auth/token/..%2F..%2Fapi/states",
        "/auth/token%00/../api",
        "/auth/token/../../../api/states",
        "/auth//token/../../api/states",
        "/AUTH/TOKEN/../../api/states",
    ],
)
def test_a_skip_rule_for_auth_token_never_opens_another_path(gw: Gateway, target: str) -> None:
    gw.configure(rules=AUTH_SKIP_RULES)
    gw.stop()
    gw.start()
    r = gw.request(target)
    assert r.status in (400, 403), r
    assert gw.upstream.seen == []


@pytest.mark.parametrize(
    "raw",
    [
        b"POST / HTTP/1.1\r\nHost: ha.test\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: ha.test\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        b"POST / HTTP/1.1\r\nHost: ha.test\r\nContent-Length: 5x\r\n\r\nhello",
        b"POST / HTTP/1.1\r\nHost: ha.test\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: ha.test\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: ha.test\r\nX: a\r\n folded\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: ha.test\r\nContent-Length : 0\r\n\r\n",
        b"GET / HTTP/1.1\nHost: ha.test\n\n",
        b"GET / HTTP/1.1\r\nHost: ha.test\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n",
    ],
)
def test_smuggling_is_refused_with_400_and_the_connection_closed(gw: Gateway, raw: bytes) -> None:
    with gw.connect("phone") as sock:
        sock.sendall(raw + b"GET /second HTTP/1.1\r\nHost: ha.test\r\n\r\n")
        buf = bytearray()
        r = read_response(sock, buf)
        assert r.status == 400 and r.header("connection") == "close"
        sock.settimeout(3)
        with pytest.raises((ConnectionError, ssl.SSLError, OSError)):
            while True:
                if not sock.recv(1024):
                    raise ConnectionError("closed")
    assert gw.upstream.seen == []


def test_host_must_match_the_tls_name(gw: Gateway) -> None:
    r = gw.request("/", cert="phone", headers={"Host": "other.example"})
    assert r.status == 421
    assert gw.upstream.seen == []


def test_revocation_applies_on_an_open_keep_alive_connection(gw: Gateway) -> None:
    with gw.connect("phone") as sock:
        buf = bytearray()
        sock.sendall(b"GET /one HTTP/1.1\r\nHost: ha.test\r\n\r\n")
        assert read_response(sock, buf).status == 200
        assert run_hagate("cert", "revoke", "phone", state=gw.state).code == 0
        sock.sendall(b"GET /two HTTP/1.1\r\nHost: ha.test\r\n\r\n")
        r = read_response(sock, buf)
    assert r.status == 403 and "revoked" in r.body.decode()
    assert r.body.decode().startswith("This certificate has been revoked\n")
    assert "required" not in r.body.decode()
    assert gw.upstream.paths() == ["/one"]


def test_expired_certificate_is_told_in_plain_words(gw: Gateway) -> None:
    gw.issue_expired("old-phone")
    r = gw.request("/", cert="old-phone")
    assert r.status == 403
    assert "'old-phone' expired on" in r.body.decode()
    assert r.body.decode().startswith("This certificate has expired\n")
    assert gw.upstream.seen == []


def test_certificate_from_another_ca_fails_the_handshake_and_is_an_event(
    gw: Gateway, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    assert (
        run_hagate(
            "init", "--hostname", "ha.test", "--upstream", "http://127.0.0.1:1", state=other
        ).code
        == 0
    )
    assert run_hagate("cert", "issue", "intruder", "--pem-dir", gw.certs_dir, state=other).code == 0
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)), gw.connect("intruder") as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: ha.test\r\n\r\n")
        read_response(sock, bytearray())
    events = [e for e in gw.events() if e["action"] == "tls_error" and "CA" in e["reason"]]
    assert (
        events and events[0]["reason"] == "client certificate refused: not issued by this hagate CA"
    )
    assert events[0]["client_ip"] == "127.0.0.1" and events[0]["sni"] == "ha.test"


def test_a_device_that_does_not_trust_the_gateway_is_told_in_plain_words(gw: Gateway) -> None:
    # curl and Python without hagate's CA: each ends the handshake with its own alert
    # (OpenSSL calls them "unknown ca" and "certificate unknown").
    connect_to = f"ha.test:443:127.0.0.1:{gw.port}"
    curl = subprocess.run(
        ["curl", "-sS", "--connect-to", connect_to, "https://ha.test/"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert curl.returncode == 60, curl.stderr  # "SSL certificate problem"
    context = ssl.create_default_context()
    with (
        pytest.raises(ssl.SSLCertVerificationError),
        socket.create_connection(("127.0.0.1", gw.port)) as raw,
        context.wrap_socket(raw, server_hostname="ha.test"),
    ):
        pass
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        refused = [
            e
            for e in gw.events()
            if e["action"] == "tls_error" and "before the TLS" not in e["reason"]  # the start's
        ]
        if len(refused) >= 2:
            break
        time.sleep(0.2)
    assert [e["reason"] for e in refused] == [
        "the device does not trust the gateway's certificate (install hagate's CA on it, "
        "or configure ACME for a public certificate)"
    ] * 2


def test_garbage_instead_of_tls_is_an_event(gw: Gateway) -> None:
    with socket.create_connection(("127.0.0.1", gw.port)) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: ha.test\r\n\r\n")
        s.settimeout(5)
        with contextlib.suppress(ConnectionResetError):  # closed unread: a reset is fine
            assert s.recv(100) == b""
    reasons = [e["reason"] for e in gw.events() if e["action"] == "tls_error"]
    assert "not TLS (plain HTTP sent to the TLS port?)" in reasons


def test_limits_head_size_and_header_count(gw: Gateway) -> None:
    r = gw.request("/", cert="phone", headers={"X-Big": "a" * 20000})
    assert r.status == 431
    r = gw.request("/", cert="phone", headers={f"X-{i}": "v" for i in range(150)})
    assert r.status == 431
    assert gw.upstream.seen == []
    assert {e["status"] for e in gw.events() if e["action"] == "refused"} == {431}


def test_slowloris_is_cut_off_after_the_header_timeout(gw: Gateway) -> None:
    with gw.connect("phone") as sock:
        start = time.monotonic()
        sock.sendall(b"GET / HTTP/1.1\r\n")
        answer = b""
        try:
            while time.monotonic() - start < 10:  # a header line every 0.3 s, never the end
                readable, _, _ = select.select([sock], [], [], 0.3)
                if readable:
                    answer = sock.recv(65536)
                    break
                sock.sendall(b"X-A: b\r\n")
        except (ConnectionError, ssl.SSLError, OSError):
            pass
        elapsed = time.monotonic() - start
    assert 1.5 < elapsed < 4, elapsed  # header_timeout is 2 s
    assert answer.startswith(b"HTTP/1.1 408") or answer == b""
    assert gw.upstream.seen == []


def test_idle_keep_alive_connections_are_closed(gw: Gateway) -> None:
    with gw.connect("phone") as sock:
        buf = bytearray()
        sock.sendall(b"GET / HTTP/1.1\r\nHost: ha.test\r\n\r\n")
        assert read_response(sock, buf).status == 200
        sock.settimeout(10)
        start = time.monotonic()
        assert sock.recv(100) == b""
        assert 2 < time.monotonic() - start < 6


def test_upstream_slow_gives_504_and_down_gives_502(gw: Gateway) -> None:
    r = gw.request("/slow/4", cert="phone")
    assert r.status == 504 and "not answering" in r.body.decode()
    gw.upstream.close()
    r = gw.request("/", cert="phone")
    assert r.status == 502 and "cannot be reached" in r.body.decode()
    assert r.header("x-hagate-page") == "upstream"
    actions = [(e["status"], e["action"]) for e in gw.events()]
    assert (504, "upstream_error") in actions and (502, "upstream_error") in actions


def test_a_body_that_follows_its_head_late_still_arrives_whole(gw: Gateway) -> None:
    r = gw.request("/split", cert="phone")
    assert r.status == 200 and r.body == b"hello" and r.header("content-length") == "5"


def test_upstream_stopping_before_the_body_gives_502_or_504_and_an_event(gw: Gateway) -> None:
    r = gw.request("/cut", cert="phone")
    assert r.status == 502 and "cannot be reached" in r.body.decode()
    r = gw.request("/split/4", cert="phone")  # response_timeout is 2 s
    assert r.status == 504 and "not answering" in r.body.decode()
    rows = {e["path"]: e for e in gw.events() if e["path"] in ("/cut", "/split/4")}
    assert (rows["/cut"]["status"], rows["/cut"]["action"]) == (502, "upstream_error")
    assert "before the body" in rows["/cut"]["reason"]
    assert (rows["/split/4"]["status"], rows["/split/4"]["action"]) == (504, "upstream_error")


def test_a_response_cut_short_is_an_upstream_error_and_cuts_the_client(gw: Gateway) -> None:
    received = b""
    tcp = gw.tcp()
    with gw.context("phone").wrap_socket(
        tcp, server_hostname="ha.test", suppress_ragged_eofs=False
    ) as sock:
        sock.sendall(b"GET /partial HTTP/1.1\r\nHost: ha.test\r\n\r\n")
        with pytest.raises((ConnectionResetError, ssl.SSLError)):
            while data := sock.recv(65536):
                received += data
            raise AssertionError("the connection ended cleanly after a cut-short body")
    assert received.startswith(b"HTTP/1.1 200 ")
    deadline = time.monotonic() + 5
    while not (rows := [e for e in gw.events() if e["path"] == "/partial"]):
        assert time.monotonic() < deadline, "no event for the cut-short request"
        time.sleep(0.1)
    assert [(e["status"], e["action"], e["bytes_out"]) for e in rows] == [
        (200, "upstream_error", 10)
    ]
    assert "the client connection was cut" in rows[0]["reason"]


def test_bodies_stream_both_ways_chunked_and_with_expect_continue(gw: Gateway) -> None:
    with gw.connect("phone") as sock:
        buf = bytearray()
        sock.sendall(
            b"POST /up HTTP/1.1\r\nHost: ha.test\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n4;ext=1\r\ndefg\r\n0\r\nX-Trailer: t\r\n\r\n"
        )
        r = read_response(sock, buf)
        assert r.status == 200 and json.loads(r.body)["body_len"] == 7
        sock.sendall(
            b"POST /up2 HTTP/1.1\r\nHost: ha.test\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
        )
        interim = read_response(sock, buf)
        assert interim.status == 100
        sock.sendall(b"hello")
        r = read_response(sock, buf)
        assert r.status == 200 and json.loads(r.body)["body_len"] == 5
        sock.sendall(b"GET /chunked HTTP/1.1\r\nHost: ha.test\r\n\r\n")
        r = read_response(sock, buf)
        assert r.body == b"hello world"
        sock.sendall(b"HEAD /x HTTP/1.1\r\nHost: ha.test\r\n\r\n")
        r = read_response(sock, buf, "HEAD")
        assert r.status == 200 and r.body == b""
    assert [s.body for s in gw.upstream.seen[:2]] == [b"abcdefg", b"hello"]


def test_websocket_upgrade_becomes_a_byte_pipe(gw: Gateway) -> None:
    with gw.connect("phone") as sock:
        buf = bytearray()
        sock.sendall(
            b"GET /ws HTTP/1.1\r\nHost: ha.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        r = read_response(sock, buf)
        assert r.status == 101
        sock.sendall(b"ping through the pipe")
        got = bytes(buf)
        while len(got) < len(b"PING THROUGH THE PIPE"):
            got += sock.recv(100)
        assert got == b"PING THROUGH THE PIPE"
    seen = gw.upstream.seen[0]
    assert seen.header("upgrade") == ["websocket"] and seen.header("sec-websocket-key")


def test_sighup_reloads_rules_and_keeps_the_old_ones_when_broken(gw: Gateway) -> None:
    with gw.connect("phone") as sock:
        buf = bytearray()
        sock.sendall(b"GET /admin HTTP/1.1\r\nHost: ha.test\r\n\r\n")
        assert read_response(sock, buf).status == 200
        gw.configure(
            rules="  - {description: no admin, expression: 'starts_with(http.request.uri.path, \"/admin\")', action: block}\n"
        )
        assert gw.proc is not None
        gw.proc.send_signal(signal.SIGHUP)
        time.sleep(1)
        sock.sendall(b"GET /admin HTTP/1.1\r\nHost: ha.test\r\n\r\n")
        r = read_response(sock, buf)
        assert r.status == 403 and 'rule "no admin"' in r.body.decode()  # same connection
    (gw.state / "hagate.yaml").write_text("hostname: [broken\n")
    gw.proc.send_signal(signal.SIGHUP)
    time.sleep(1)
    assert gw.request("/admin", cert="phone").status == 403  # old rules still in force
    assert gw.request("/ok", cert="phone").status == 200
    assert gw.err_path is not None and "NOT reloaded" in gw.err_path.read_text()


def test_sighup_applies_a_new_upstream_and_names_what_needs_a_restart(gw: Gateway) -> None:
    assert gw.request("/before", cert="phone").status == 200  # leaves a pooled connection
    other = RecordingUpstream()
    try:
        cfg = gw.state / "hagate.yaml"
        text = cfg.read_text()
        old_upstream = f"http://127.0.0.1:{gw.upstream.port}"
        assert old_upstream in text
        text = text.replace(old_upstream, f"http://127.0.0.1:{other.port}")
        cfg.write_text(text.replace("  retention_days: 30\n", "  retention_days: 3\n"))
        assert gw.proc is not None
        gw.proc.send_signal(signal.SIGHUP)
        time.sleep(1)
        assert gw.request("/after", cert="phone").status == 200
        assert other.paths() == ["/after"]
        assert gw.upstream.paths() == ["/before"]
        assert gw.err_path is not None
        said = [line for line in gw.err_path.read_text().splitlines() if "reloaded" in line]
        assert said[-1] == (
            "hagate: config reloaded (1 rules); events.retention_days changed: restart to apply"
        )
    finally:
        other.close()


def test_sigterm_lets_in_flight_requests_finish(gw: Gateway) -> None:
    result: dict[str, int] = {}

    def slow() -> None:
        result["status"] = gw.request("/slow/1.5", cert="phone").status

    t = threading.Thread(target=slow)
    t.start()
    time.sleep(0.5)
    assert gw.stop() == 0
    t.join(10)
    assert result.get("status") == 200


def test_a_websocket_open_at_shutdown_still_gets_its_event(gw: Gateway) -> None:
    with gw.connect("phone") as sock:
        sock.sendall(
            b"GET /ws HTTP/1.1\r\nHost: ha.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        assert read_response(sock, bytearray()).status == 101
        sock.sendall(b"hello")
        time.sleep(0.3)
        assert gw.stop() == 0  # waits out drain_timeout (5 s), then ends the websocket
    rows = [e for e in gw.events() if e["path"] == "/ws"]
    assert [(e["status"], e["action"], e["reason"]) for e in rows] == [
        (101, "allow", "cut short: the gateway stopped")
    ]
    assert rows[0]["bytes_in"] == 5 and rows[0]["duration_ms"] >= 4000


def test_events_and_log_lines_describe_each_decision(gw: Gateway) -> None:
    gw.request("/api/", cert="phone", headers={"User-Agent": "curl/8"})
    page = gw.request("/api/", headers={"User-Agent": "nobody"})
    events = gw.events()
    ok = next(e for e in events if e["action"] == "allow")
    blocked = next(e for e in events if e["action"] == "block")
    assert ok["cert_name"] == "phone" and ok["status"] == 200 and ok["path"] == "/api/"
    assert ok["user_agent"] == "curl/8" and ok["sni"] == "ha.test" and ok["bytes_out"] > 0
    assert len(ok["cert_sha256"]) == 64 and ok["duration_ms"] >= 0 and ok["request_id"]
    assert blocked["rule"] == "Require a client certificate" and blocked["status"] == 403
    assert blocked["reason"] == "no client certificate was presented"
    assert blocked["bytes_out"] == len(page.body) > 0  # the gateway's own page counts as sent
    lines = gw.log_lines()
    assert {line["request_id"] for line in lines} >= {ok["request_id"], blocked["request_id"]}


def test_secrets_in_the_query_reach_home_assistant_but_not_the_event_log(gw: Gateway) -> None:
    camera = "/api/camera_proxy/camera.door?token=Camera0Secret&width=640"
    login = "/?auth_callback=1&code=OAuth0Code&state=abc"
    signed = "/api/media?authSig=eyJhbGciOi.Signed0Path.sig"
    for target in (camera, login, signed):
        assert gw.request(target, cert="phone").status == 200
    assert gw.request(camera).status == 403  # blocked requests are logged the same way
    assert [s.request_line.split(" ")[1] for s in gw.upstream.seen] == [camera, login, signed]
    logged = json.dumps(gw.events()) + json.dumps(gw.log_lines())
    for secret in ("Camera0Secret", "OAuth0Code", "Signed0Path"):
        assert secret not in logged
    paths = {e["path"] for e in gw.events()}
    assert "/api/camera_proxy/camera.door?token=REDACTED&width=640" in paths
    assert "/?auth_callback=1&code=REDACTED&state=abc" in paths
    assert "/api/media?authSig=REDACTED" in paths


def test_two_workers_share_the_port(tmp_path: Path) -> None:
    g = make_gateway(tmp_path)
    g.issue("phone")
    g.start(workers=2)
    try:
        statuses = [g.request(f"/{i}", cert="phone").status for i in range(20)]
        assert statuses == [200] * 20
    finally:
        assert g.stop() == 0
        g.upstream.close()
    # Read at once after the stop: each worker's event writer has written its rows and lines.
    rows = list(read_events(g.state / "events.sqlite3"))  # with the start-up probes' rows
    allowed = [r for r in rows if r["action"] == "allow"]
    assert sorted(r["path"] for r in allowed) == sorted(f"/{i}" for i in range(20))
    assert sorted(line["request_id"] for line in g.log_lines()) == sorted(
        r["request_id"] for r in rows
    )


def test_body_size_limit_gives_413_and_is_an_event(tmp_path: Path) -> None:
    g = make_gateway(tmp_path)
    g.configure(gateway={"max_body_bytes": 1000})
    g.issue("phone")
    g.start()
    try:
        assert g.request("/up", cert="phone", method="POST", body=b"x" * 1000).status == 200
        assert g.request("/up", cert="phone", method="POST", body=b"x" * 1001).status == 413
        with g.connect("phone") as sock:  # chunked: the limit is counted as the body streams
            sock.sendall(
                b"POST /up HTTP/1.1\r\nHost: ha.test\r\nTransfer-Encoding: chunked\r\n\r\n"
                + b"400\r\n"
                + b"y" * 1024
                + b"\r\n0\r\n\r\n"
            )
            r = read_response(sock, bytearray())
        assert r.status == 413
        assert [s.body for s in g.upstream.seen] == [b"x" * 1000]
        refused = sorted((e for e in g.events() if e["status"] == 413), key=lambda e: e["time"])
        # The first never reached HA; the chunked one had its head forwarded, and says so.
        assert [e["action"] for e in refused] == ["refused", "allow"]
        assert "Home Assistant had the head" in refused[1]["reason"]
    finally:
        g.stop()
        g.upstream.close()


def test_only_the_configured_name_is_served(gw: Gateway) -> None:
    r = gw.request("/", cert="phone", headers={"Host": "other.test"})
    assert r.status == 421 and r.header("x-hagate-page") == "wrong-host"
    ctx = gw.context("phone")
    ctx.check_hostname = False  # a client that ignores the name mismatch still gets nowhere
    with ctx.wrap_socket(gw.tcp(), server_hostname="other.test") as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: other.test\r\n\r\n")
        assert read_response(sock, bytearray()).status == 421
    assert gw.upstream.seen == []
    assert gw.request("/", cert="phone").header("x-hagate-page") is None  # HA's own answer


def test_the_curl_line_cert_issue_prints_works_as_printed(gw: Gateway) -> None:
    r = run_hagate("cert", "issue", "laptop", state=gw.state)
    assert r.code == 0, r.err
    line = next(x for x in r.out.splitlines() if x.strip().startswith("curl "))
    printed = shlex.split(line.strip())[1:]  # "curl   curl --cacert ...": the command itself
    assert printed[0] == "curl" and printed[-1] == "https://ha.test/"
    # As printed; only the name is pointed at this test's gateway (no DNS for ha.test here).
    connect_to = f"ha.test:443:127.0.0.1:{gw.port}"
    done = subprocess.run(
        [*printed, "-sS", "--connect-to", connect_to, "-o", "/dev/null", "-w", "%{http_code}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0 and done.stdout == "200", done.stderr
    assert gw.upstream.paths() == ["/"]


def test_revoking_a_certificate_cuts_its_open_websocket(gw: Gateway) -> None:
    from tests.conftest import run_hagate

    gw.issue("tablet")
    with gw.connect("tablet") as sock, gw.connect("phone") as other:
        buf, other_buf = bytearray(), bytearray()
        upgrade = (
            b"GET /ws HTTP/1.1\r\nHost: ha.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        sock.sendall(upgrade)
        other.sendall(upgrade)
        assert read_response(sock, buf).status == 101
        assert read_response(other, other_buf).status == 101
        assert run_hagate("cert", "revoke", "tablet", state=gw.state).code == 0
        revoked_at = time.monotonic()
        sock.settimeout(10)
        got = b""
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            while chunk := sock.recv(100):
                got += chunk
        assert time.monotonic() - revoked_at < 5  # cut, not left until it ends by itself
        # Another certificate's websocket goes on.
        other.sendall(b"still here")
        echoed = bytes(other_buf)
        while len(echoed) < len(b"STILL HERE"):
            echoed += other.recv(100)
        assert echoed == b"STILL HERE"
    rows = [e for e in gw.events() if e["cert_name"] == "tablet" and e["path"] == "/ws"]
    deadline = time.monotonic() + 5
    while not rows and time.monotonic() < deadline:
        time.sleep(0.2)
        rows = [e for e in gw.events() if e["cert_name"] == "tablet" and e["path"] == "/ws"]
    assert rows and "revoked while the connection was open" in (rows[0]["reason"] or "")
