"""The relay-capacity harness itself: a small swarm of homes against a real relay, and the
stream client that times them (bench/swarm.py, bench/relay_capacity.py)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.relay_capacity import client_hello, open_stream, percentile, streams
from bench.swarm import hostname, source

from hagate.clienthello import parse_client_hello
from tests.tunnel.harness import Relay


def test_a_client_hello_names_the_home() -> None:
    hello = parse_client_hello(client_hello("home-7.test"))
    assert hello is not None and hello.sni == "home-7.test"


def test_every_home_has_its_own_loopback_address() -> None:
    addresses = {source(i) for i in range(5000)}
    assert len(addresses) == 5000
    assert all(a.startswith("127.") for a in addresses)


def test_percentiles() -> None:
    values = [float(i) for i in range(1, 101)]
    assert percentile(values, 50) == 50.5 and percentile(values, 99) == 99.01
    assert percentile([3.0], 99) == 3.0


def test_a_swarm_connects_every_home_and_answers_streams_to_each(tmp_path: Path) -> None:
    relay = Relay.create(tmp_path)
    relay.start()
    swarm = subprocess.Popen(
        [sys.executable, "-m", "bench.swarm", str(relay.state), str(relay.port), "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert relay.wait_for(3, timeout=30) < 30
        status = relay.status()
        assert sorted(c["hostname"] for c in status["connectors"]) == [
            hostname(i) for i in range(3)
        ]
        assert len({c["address"] for c in status["connectors"]}) == 3  # an address each
        for i in range(3):
            seconds = asyncio.run(open_stream(relay.port, client_hello(hostname(i))))
            assert 0 < seconds < 5
        latencies, failures = asyncio.run(streams(relay.port, 3, 20, 100.0))
        assert failures == 0 and len(latencies) == 20
        # A name no home holds gets no answer.
        started = time.monotonic()
        try:
            asyncio.run(open_stream(relay.port, client_hello("nobody.test"), timeout=5))
            raise AssertionError("a stream to an unknown name was answered")
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # closed, or reset: either way no home answered
        assert time.monotonic() - started < 5
    finally:
        swarm.send_signal(signal.SIGTERM)
        out, _ = swarm.communicate(timeout=30)
        relay.stop()
    assert swarm.returncode == 0
    assert b"all up" in out
