"""Suggestions from evidence made through relay -> tunnel -> gateway in front of the real Home
Assistant: the iOS app and Amazon blocked, then let in by the suggested presets, narrowly."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import run_hagate
from tests.e2e.homeassistant import HomeAssistant
from tests.gateway.harness import Gateway, make_gateway
from tests.geo import write_asn_db
from tests.tunnel.harness import Relay, start_connector

IOS = "Home Assistant/2026.1 (io.robbie.HomeAssistant; build:2026.1; iOS 17.5.1)"
PHONE_NET, AMAZON = "127.0.9.4", "127.0.9.30"


@pytest.fixture
def relayed(home_assistant: HomeAssistant, tmp_path: Path) -> Iterator[Gateway]:
    """Only the certificate rule, behind a relay, with the real HA upstream."""
    g = make_gateway(tmp_path)
    g.upstream.close()
    g.net = 9
    cfg = g.state / "hagate.yaml"
    asn_db = write_asn_db(tmp_path / "asn.mmdb", {f"{PHONE_NET}/32": 3320, f"{AMAZON}/32": 16509})
    text = cfg.read_text().replace(f"http://127.0.0.1:{g.upstream.port}", home_assistant.url)
    cfg.write_text(text.replace("  asn_db:\n", f"  asn_db: {asn_db}\n"))
    relay = Relay.create(tmp_path)
    relay.start()
    start_connector(g, [relay], relay.token())
    if not home_assistant.access_token:  # run alone, before the package's gateways onboarded HA
        home_assistant.onboard(f"https://ha.test:{g.port}")
    try:
        yield g
    finally:
        g.stop()
        relay.stop()


def test_suggested_presets_let_in_the_app_and_amazon_and_nothing_more(
    relayed: Gateway, home_assistant: HomeAssistant
) -> None:
    g = relayed
    api = {"Authorization": f"Bearer {home_assistant.access_token}", "User-Agent": IOS}
    assert g.request("/api/", headers=api, source=PHONE_NET).status == 403
    token = g.request(
        "/auth/token",
        method="POST",
        body=b"grant_type=refresh_token&refresh_token=x",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        source=AMAZON,
    )
    assert token.status == 403
    deadline = time.monotonic() + 10
    found: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        r = run_hagate("events", "suggest", "--json", state=g.state)
        found = [json.loads(line) for line in r.out.splitlines()]
        if {"ios-companion", "alexa"} <= {s["kind"] for s in found}:
            break
        time.sleep(0.3)
    kinds = [s["kind"] for s in found]
    # bound-apps comes first (what the docs recommend); this household chose the network.
    assert kinds[:3] == ["bound-apps", "ios-companion", "alexa"], found
    for _ in range(2):  # apply the iOS suggestion, then Amazon's (now second of what is left)
        r = run_hagate("events", "suggest", "--apply", "2", state=g.state)
        assert r.code == 0, r.err
    deadline = time.monotonic() + 10
    while g.request("/api/", headers=api, source=PHONE_NET).status != 200:
        assert time.monotonic() < deadline, "the app was not let in"
        time.sleep(0.3)
    ok = g.request("/api/", headers=api, source=PHONE_NET)
    assert json.loads(ok.body) == {"message": "API running."}
    # Amazon now reaches HA's own /auth/token (which refuses the made-up token), and nothing else.
    token = g.request(
        "/auth/token",
        method="POST",
        body=b"grant_type=refresh_token&refresh_token=x",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        source=AMAZON,
    )
    assert token.status == 400 and "error" in json.loads(token.body)
    assert (
        g.request(
            "/api/",
            method="POST",
            body=b"{}",
            headers={"Authorization": api["Authorization"]},
            source=AMAZON,
        ).status
        == 403
    )
    assert (
        g.request("/api/", headers={"Authorization": api["Authorization"]}, source=PHONE_NET).status
        == 403
    )
