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


class FakeMux:
    def __init__(self, last_received: float) -> None:
        self.last_received = last_received
        self.closed = False

    def close(self) -> None:
        self.closed = True


def test_one_sweep_drops_revoked_expired_and_silent_connectors(tmp_path: Path) -> None:
    from hagate.tunnel.relay import DEAD_AFTER, Connector

    r = relay(tmp_path, Limits())
    r.rs.revoke("revoked-id")

    def add(name: str, token_id: str, expires: float, last: float) -> FakeMux:
        mux = FakeMux(last)
        r.connectors[name].append(Connector(name, token_id, "198.51.100.1", mux, expires))  # type: ignore[arg-type]
        return mux

    now, wall = 1000.0, 2_000_000_000.0
    fine = add("a.test", "good", wall + 60, now - 1)
    revoked = add("b.test", "revoked-id", wall + 60, now - 1)
    expired = add("c.test", "old", wall - 1, now - 1)
    silent = add("d.test", "quiet", wall + 60, now - DEAD_AFTER - 1)
    r.sweep(now=now, wall=wall)
    assert not fine.closed
    assert revoked.closed and expired.closed and silent.closed
    assert r.counters["dead_connectors"] == 1


def test_the_status_file_is_rewritten_only_for_a_change(tmp_path: Path) -> None:
    import json

    from hagate.tunnel.relay import STATUS_REFRESH, Connector

    r = relay(tmp_path, Limits())
    first = r.status_bytes(now=0.0)
    assert first is not None and json.loads(first)["connectors"] == []
    assert r.status_bytes(now=1.0) is None  # nothing happened
    r.connectors["a.test"].append(Connector("a.test", "t1", "198.51.100.1", FakeMux(0.0), 2e9))  # type: ignore[arg-type]
    r.connectors["a.test"][0].mux.streams = {}
    r.connectors["a.test"][0].mux.opened = 0
    r._version += 1  # as _control does when a home comes
    data = r.status_bytes(now=2.0)
    assert data is not None
    status = json.loads(data)
    assert [c["hostname"] for c in status["connectors"]] == ["a.test"]
    assert status == {**r.status(), "time": status["time"]}
    r.counters["streams"] += 1
    assert json.loads(r.status_bytes(now=3.0) or b"{}")["counters"] == {"streams": 1}
    assert r.status_bytes(now=4.0) is None
    assert r.status_bytes(now=3.0 + STATUS_REFRESH) is not None  # refreshed anyway, now and then
