"""A relay behind HAProxy (send-proxy-v2): its per-address limits and its rules act on the
client the header names, and the stream carries that client to the gateway at home."""

from __future__ import annotations

import dataclasses
import ssl
import time
from pathlib import Path

import pytest

from tests.front.peers import FRONT_SOURCE, Front
from tests.gateway.harness import make_gateway, read_response
from tests.tunnel.harness import Relay, start_connector


def test_relay_limits_and_rules_see_the_client_behind_the_front(tmp_path: Path) -> None:
    g = make_gateway(tmp_path)
    g.issue("phone")
    rules = tmp_path / "relay-rules.yaml"
    rules.write_text(
        "- {description: one address, expression: 'ip.src eq 127.0.40.66', action: block}\n"
    )
    relay = Relay.create(tmp_path)
    relay.start(
        "--proxy-protocol-from", f"{FRONT_SOURCE}/32", "--rules", str(rules),
        "--max-per-ip", "1", test_limits=True,
    )  # fmt: skip
    front = Front("haproxy", tmp_path / "haproxy", relay.port, "send-proxy-v2")
    try:
        start_connector(g, [relay], relay.token())
        front.start()
        behind = dataclasses.replace(g, port=front.port)
        # One open connection per client address: a second one from the same client is
        # dropped; another client's is not (all of them come from the front's one address).
        before = relay.status()["counters"]  # the front's own probe at its start counts too
        held = behind.connect("phone", source="127.0.40.2")
        held.sendall(b"GET / HTTP/1.1\r\nHost: ha.test\r\n\r\n")
        assert read_response(held, bytearray(), "GET").status == 200
        with pytest.raises((ssl.SSLError, OSError)):
            behind.request("/", cert="phone", source="127.0.40.2")
        assert behind.request("/", cert="phone", source="127.0.40.3").status == 200
        held.close()
        # The relay's rules on ip.src: the client's address.
        with pytest.raises((ssl.SSLError, OSError)):
            behind.request("/", cert="phone", source="127.0.40.66")
        counters = relay.status()["counters"]
        for counter in ("dropped_concurrency", "dropped_rule"):
            assert counters.get(counter, 0) - before.get(counter, 0) == 1, (counter, counters)
        assert [s.header("x-forwarded-for") for s in g.upstream.seen] == [
            ["127.0.40.2"],
            ["127.0.40.3"],
        ]
        deadline = time.monotonic() + 5
        while {e["client_ip"] for e in g.events() if e["path"]} != {"127.0.40.2", "127.0.40.3"}:
            assert time.monotonic() < deadline, g.events()
            time.sleep(0.2)
    finally:
        front.stop()
        g.stop()
        relay.stop()
        g.upstream.close()
