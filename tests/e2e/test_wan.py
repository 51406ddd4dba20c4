"""The frontend benchmark's harness against the real Home Assistant, through hagate in both
modes: Chromium over the delay proxy logs in and reaches the live dashboard, and a client
resumes its TLS session and gets its websocket back (bench/wan_bench.py)."""

from __future__ import annotations

import ssl
from pathlib import Path

from bench.delay_proxy import Link, ProxyProcess
from bench.wan_bench import P12_PASSWORD, POLICY, browse, wakes

from tests.conftest import run_hagate
from tests.e2e.homeassistant import HomeAssistant
from tests.gateway.harness import Gateway
from tests.net import free_port
from tests.nss import auto_select, nss_database

LINK = Link("20 ms, 50 Mbit/s", 0.020, 50.0)


def test_chromium_logs_in_over_a_slow_link_to_the_live_dashboard(
    gateway: Gateway, home_assistant: HomeAssistant, tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    password = tmp_path / "pw"
    password.write_text(P12_PASSWORD + "\n")
    p12 = tmp_path / "browser.p12"
    r = run_hagate(
        "cert", "issue", "wan-browser", "--p12", p12, "--password-file", password,
        state=gateway.state,
    )  # fmt: skip
    assert r.code == 0, r.err
    nss_home = tmp_path / "nss"
    nss_database(nss_home, gateway.state / "ca.crt", p12, P12_PASSWORD)
    proxy = ProxyProcess(free_port(), gateway.port, LINK)
    try:
        base = f"https://ha.test:{proxy.port}"
        with auto_select([base], POLICY), sync_playwright() as playwright:
            run = browse(playwright, base, nss_home, tmp_path / "run", proxy)
    finally:
        proxy.stop()
    # Each phase crossed the link at least for a new connection and a request.
    assert run.login_page > 2 * LINK.rtt and run.dashboard > LINK.rtt
    assert run.requests > 30
    assert run.connections >= 2 and run.tls_handshakes == run.connections
    assert run.bytes_down > 500_000
    # Back in the same browser after the link dropped: cached, so far less, but connected.
    assert LINK.rtt < run.revisit < run.login_page + run.dashboard
    assert run.revisit_connections >= 1
    # The gateway saw the browser's certificate on the login and on the websocket.
    events = [e for e in gateway.events() if e["cert_name"] == "wan-browser"]
    seen = {(e["path"].split("?")[0], e["status"]) for e in events}
    assert any(path.startswith("/auth/login_flow") and status == 200 for path, status in seen)
    assert ("/api/websocket", 101) in seen


def test_a_phone_waking_up_resumes_its_tls_session_and_gets_its_websocket_back(
    gateway: Gateway, home_assistant: HomeAssistant
) -> None:
    ctx = ssl.create_default_context(cafile=str(gateway.state / "ca.crt"))
    ctx.load_cert_chain(gateway.certs_dir / "phone.crt", gateway.certs_dir / "phone.key")
    token = home_assistant.long_lived_token(f"wan-test-{gateway.net}")
    before = len(phone_websockets(gateway))
    proxy = ProxyProcess(free_port(), gateway.port, LINK)
    try:
        woken = wakes(proxy.port, ctx, token)
        stats = proxy.stats()
    finally:
        proxy.stop()
    assert all(not w.resumed for w in woken["full"])
    assert all(w.resumed for w in woken["resumed"])  # the gateway accepts its own tickets
    for w in woken["full"] + woken["resumed"]:
        # The link's round trip for TCP, then at least one for TLS; auth_ok after two more.
        assert w.handshake >= 2 * LINK.rtt
        assert w.websocket >= w.handshake + 2 * LINK.rtt
    assert stats["connections"] == stats["tls_handshakes"] == 1 + 2 * len(woken["full"])
    # Every websocket, resumed or not, was let in as the phone's, by its certificate.
    assert len(phone_websockets(gateway)) - before == 1 + 2 * len(woken["full"])


def phone_websockets(gateway: Gateway) -> list[dict[str, object]]:
    return [
        e
        for e in gateway.events()
        if e["cert_name"] == "phone" and e["path"] == "/api/websocket" and e["status"] == 101
    ]
