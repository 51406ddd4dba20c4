"""The relay's per-address limits, without the network."""

from __future__ import annotations

import time
from pathlib import Path

from hagate.state import StateDir
from hagate.tunnel.relay import Limits, Relay
from hagate.tunnel.relaystate import RelayState


def relay(tmp_path: Path, limits: Limits) -> Relay:
    return Relay(RelayState.initialise(StateDir(tmp_path / "relay"), "relay.test"), limits)


def test_rate_per_address_and_counting(tmp_path: Path) -> None:
    r = relay(tmp_path, Limits(per_ip_concurrent=100, per_ip_per_minute=5))
    assert [r._allowed("198.51.100.1") for _ in range(7)] == [True] * 5 + [False] * 2
    assert r._allowed("198.51.100.2")  # another address has its own budget
    assert r.counters["dropped_rate"] == 2


def test_concurrency_per_address(tmp_path: Path) -> None:
    r = relay(tmp_path, Limits(per_ip_concurrent=2, per_ip_per_minute=1000))
    r.per_ip["198.51.100.1"] = 2
    assert not r._allowed("198.51.100.1")
    assert r.counters["dropped_concurrency"] == 1


def test_the_rate_table_forgets_quiet_addresses(tmp_path: Path) -> None:
    r = relay(tmp_path, Limits())
    for i in range(10_000):
        r._allowed(f"2001:db8::{i:x}")
    assert len(r.recent) == 10_000
    r.prune(now=time.monotonic() + 61)
    assert len(r.recent) == 0


def test_relay_rules_drop_connections_by_address(tmp_path: Path) -> None:
    rules = tmp_path / "relay-rules.yaml"
    rules.write_text(
        "- {description: no docs nets, expression: 'ip.src in {192.0.2.0/24}', action: block}\n"
    )
    from hagate.tunnel.admission import load_admission

    r = Relay(
        RelayState.initialise(StateDir(tmp_path / "relay"), "relay.test"),
        admit=load_admission(rules, None, None),
    )
    assert not r._allowed("192.0.2.7") and r._allowed("198.51.100.7")
    assert r.counters["dropped_rule"] == 1


def test_relay_rules_may_only_use_what_a_relay_sees(tmp_path: Path) -> None:
    import pytest

    from hagate.errors import HagateError
    from hagate.tunnel.admission import load_admission

    rules = tmp_path / "relay-rules.yaml"
    rules.write_text("- {expression: 'http.host eq \"a\"', action: block}\n")
    with pytest.raises(HagateError, match="a relay sees only"):
        load_admission(rules, None, None)
