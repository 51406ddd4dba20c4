"""`hagate health`'s judgement (pure) and the command on a real running gateway."""

from __future__ import annotations

import time
from pathlib import Path

from hagate.watch.health import (
    NO_RELAY_AFTER,
    RELAY_STALE_AFTER,
    STALE_AFTER,
    judge_gateway,
    judge_relay,
)
from hagate.watch.status import ProcessStatus
from tests.conftest import run_hagate
from tests.gateway.harness import make_gateway

NOW = 1_000_000.0


def status(role: str, updated: float, relays: dict[str, tuple[bool, float]]) -> ProcessStatus:
    return ProcessStatus(7, role, NOW - 600, updated, 0, 0, relays)


def test_a_gateway_is_healthy_while_its_status_is_fresh() -> None:
    assert judge_gateway(7, [status("serve", NOW - 2, {})], NOW).ok
    stale = judge_gateway(7, [status("serve", NOW - STALE_AFTER - 1, {})], NOW)
    assert not stale.ok and "ago" in stale.words
    assert not judge_gateway(None, [], NOW).ok
    assert not judge_gateway(7, [], NOW).ok


def test_a_connector_needs_a_relay() -> None:
    up = status("connect", NOW, {"relay.test:443": (True, NOW - 900)})
    assert judge_gateway(7, [up], NOW).words == "connected to relay.test:443"
    lately = status("connect", NOW, {"relay.test:443": (False, NOW - 5)})
    assert judge_gateway(7, [lately], NOW).ok  # a relay lost a moment ago: reconnecting
    gone = status("connect", NOW, {"relay.test:443": (False, NOW - NO_RELAY_AFTER - 1)})
    assert not judge_gateway(7, [gone], NOW).ok


def test_a_relay_is_healthy_while_its_status_is_fresh() -> None:
    assert judge_relay(9, NOW - 1, NOW).ok
    assert not judge_relay(9, NOW - RELAY_STALE_AFTER - 1, NOW).ok
    assert not judge_relay(9, None, NOW).ok and not judge_relay(None, NOW, NOW).ok


def test_the_command_on_a_running_gateway_and_after_it_stops(tmp_path: Path) -> None:
    g = make_gateway(tmp_path)
    r = run_hagate("health", state=g.state)
    assert r.code == 1 and r.out.startswith("unhealthy: no gateway runs")
    g.start()
    try:
        deadline = time.monotonic() + 15
        while (r := run_hagate("health", state=g.state)).code != 0:
            assert time.monotonic() < deadline, r
            time.sleep(0.5)
        assert r.out.strip() == "healthy: serving (1 worker(s))"
    finally:
        g.stop()
        g.upstream.close()
    assert run_hagate("health", state=g.state).code == 1
