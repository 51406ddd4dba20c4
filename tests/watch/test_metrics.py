"""The admin listener's metrics, scraped from a running `hagate serve`: two workers' counts
add up, and the listener answers /metrics and nothing else."""

from __future__ import annotations

import contextlib
import socket
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.gateway.harness import Gateway, make_gateway
from tests.net import free_port


def scrape(port: int, path: str = "/metrics") -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain")
        return str(r.read().decode())


def samples(text: str, name: str) -> dict[str, float]:
    """`name{labels} value` lines as {labels: value}."""
    out = {}
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            key, _, value = line.rpartition(" ")
            out[key[len(name) :]] = float(value)
    return out


def raw(port: int, data: bytes, timeout: float = 10) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, int]]:
    g = make_gateway(tmp_path_factory.mktemp("metrics"))
    admin_port = free_port()
    g.configure(extra=f'\nadmin:\n  listen: "127.0.0.1:{admin_port}"\n')
    g.issue("phone")
    g.start(workers=2)
    try:
        yield g, admin_port
    finally:
        g.stop()
        g.upstream.close()


def wait_for(port: int, name: str, total: float, timeout: float = 10) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    found: dict[str, float] = {}
    while time.monotonic() < deadline:
        found = samples(scrape(port), name)
        if sum(found.values()) >= total:
            return found
        time.sleep(0.2)
    return found


def test_two_workers_counts_add_up_to_the_requests_sent(two_workers: tuple[Gateway, int]) -> None:
    g, port = two_workers
    for _ in range(30):
        assert g.request("/api/states", cert="phone").status == 200
    for _ in range(12):
        assert g.request("/api/states").status == 403
    # Both workers served: each new connection may land on either (SO_REUSEPORT).
    rows = g.events()
    pids = {r["request_id"][:8] for r in rows}
    assert len(pids) == 2, "both workers should have served some of the 42 connections"
    found = wait_for(port, "hagate_requests_total", len(rows))
    # The harness's own probe that the port listens is a connection closed before TLS.
    requests = {k: v for k, v in found.items() if "tls_error" not in k}
    assert requests == {
        '{action="allow",status="200"}': 30.0,
        '{action="block",status="403"}': 12.0,
    }
    assert sum(found.values()) == len(rows)  # every event row is counted, once
    latency = samples(scrape(port), "hagate_upstream_latency_seconds_count")
    assert sum(latency.values()) == 30.0
    written = wait_for(port, "hagate_event_rows_written_total", len(rows))
    assert sum(written.values()) == len(rows)
    assert sum(samples(scrape(port), "hagate_event_rows_dropped_total").values()) == 0


def test_handshake_failures_are_counted_by_kind(two_workers: tuple[Gateway, int]) -> None:
    g, port = two_workers
    before = samples(scrape(port), "hagate_handshake_failures_total")
    with g.tcp() as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: ha.test\r\n\r\n")  # plain HTTP to the TLS port
        with contextlib.suppress(ConnectionError):
            s.recv(100)
    key = '{reason="not_tls"}'
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        after = samples(scrape(port), "hagate_handshake_failures_total")
        if after.get(key, 0) == before.get(key, 0) + 1:
            break
        time.sleep(0.2)
    assert after.get(key, 0) == before.get(key, 0) + 1


def test_certificate_expiry_and_audit_findings_are_exported(
    two_workers: tuple[Gateway, int],
) -> None:
    _, port = two_workers
    text = scrape(port)
    expiry = samples(text, "hagate_certificate_expiry_timestamp_seconds")
    assert set(expiry) == {
        '{issuer="hagate-ca",kind="client",name="phone"}',
        '{issuer="hagate-ca",kind="server",name="ha.test"}',
    }
    assert all(v > time.time() + 300 * 86400 for v in expiry.values())
    findings = samples(text, "hagate_audit_findings")
    assert set(findings) == {f'{{severity="{s}"}}' for s in ("info", "low", "medium", "high")}


def test_only_get_and_head_of_metrics_are_answered(two_workers: tuple[Gateway, int]) -> None:
    _, port = two_workers
    host = f"Host: 127.0.0.1:{port}\r\n"
    assert (
        raw(port, f"HEAD /metrics HTTP/1.1\r\n{host}Connection: close\r\n\r\n".encode()).split(
            b" ", 2
        )[1]
        == b"200"
    )
    for target in (
        "/",
        "/metrics/",
        "/metrics/../metrics",
        "//metrics",
        "/favicon.ico",
        "http://127.0.0.1/metrics",
        "/METRICS",
        "/metrics%2f",
    ):
        answer = raw(port, f"GET {target} HTTP/1.1\r\n{host}\r\n".encode())
        assert answer.split(b" ", 2)[1] == b"404", (target, answer[:80])
        assert b"hagate_requests_total" not in answer
    for method in ("POST", "PUT", "DELETE", "OPTIONS", "TRACE", "PATCH"):
        answer = raw(
            port, f"{method} /metrics HTTP/1.1\r\n{host}Content-Length: 0\r\n\r\n".encode()
        )
        assert answer.split(b" ", 2)[1] == b"405", (method, answer[:80])
    # CONNECT takes an authority, not a path: no route is found for it.
    answer = raw(port, f"CONNECT /metrics HTTP/1.1\r\n{host}\r\n".encode())
    assert answer.split(b" ")[1] in (b"404", b"405"), answer[:80]
    assert b"hagate_" not in answer
    answer = raw(port, b"BREW /metrics HTTP/1.1\r\n" + host.encode() + b"\r\n")
    assert answer.split(b" ")[1] in (b"400", b"405", b"501")
    assert b"hagate_" not in answer


def test_a_rebound_dns_name_cannot_read_the_metrics(two_workers: tuple[Gateway, int]) -> None:
    _, port = two_workers
    for host in ("evil.example", f"evil.example:{port}", "ha.test", ""):
        answer = raw(port, f"GET /metrics HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        assert answer.split(b" ", 2)[1] == b"421", (host, answer[:80])
    answer = raw(port, b"GET /metrics HTTP/1.0\r\n\r\n")  # no Host at all
    assert answer.split(b" ", 2)[1] == b"421"
    # The machine's own name is no rebinding: the hagate app is called by it on the Supervisor's network.
    mine = socket.gethostname()
    for host in (f"localhost:{port}", f"[::1]:{port}", "127.0.0.1", mine, f"{mine}:{port}"):
        answer = raw(
            port, f"GET /metrics HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
        )
        assert answer.split(b" ", 2)[1] == b"200", host


def test_oversized_and_slow_request_heads_are_cut_off(two_workers: tuple[Gateway, int]) -> None:
    _, port = two_workers
    # aiohttp answers both with 400 and its reason ("Got more than 8190 bytes", "Too many
    # headers"), then closes.
    answer = raw(port, b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n")
    assert answer.split(b" ", 2)[1] == b"400"
    many = "".join(f"X-{i}: {i}\r\n" for i in range(120))
    answer = raw(port, f"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n{many}\r\n".encode())
    assert answer.split(b" ", 2)[1] == b"400"
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\n")  # and then nothing: a slowloris
        started = time.monotonic()
        assert s.recv(100) == b""
        assert time.monotonic() - started < 15


@settings(max_examples=150, deadline=None)
@given(
    target=st.one_of(
        st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=30).map(
            lambda t: "/" + t
        ),
        st.sampled_from(["/metrics", "/metrics?x=1", "/metrics#", "/./metrics", "/%6detrics"]),
    )
)
def test_no_target_but_metrics_is_ever_served(
    two_workers: tuple[Gateway, int], target: str
) -> None:
    _, port = two_workers
    answer = raw(
        port, f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
    )
    served = target == "/metrics" or target.startswith("/metrics?")
    # The console's sign-in page is open too (200); the metrics are only at /metrics.
    assert (b"hagate_requests_total" in answer) == served, (target, answer[:60])
    if served:
        assert answer.split(b" ", 2)[1] == b"200"
    else:
        assert b"hagate_" not in answer


def test_the_admin_listener_is_off_unless_configured(tmp_path: Path) -> None:
    g = make_gateway(tmp_path)
    g.start()
    try:
        err = g.err_path.read_text() if g.err_path else ""
        assert "metrics on" not in err
        assert not (g.state / "metrics").exists()
    finally:
        g.stop()
        g.upstream.close()


def test_the_default_admin_listener_is_loopback() -> None:
    from hagate.config import DEFAULT_ADMIN_LISTEN, parse_config

    cfg = parse_config("hostname: ha.test\nupstream: http://127.0.0.1:8123\nadmin: {}\n", "x")
    assert cfg.admin is not None and cfg.admin.listen == DEFAULT_ADMIN_LISTEN
    assert DEFAULT_ADMIN_LISTEN.startswith("127.0.0.1:")
