"""One gateway and one relay per state directory: a second is refused and says who runs, a
failed second instance never breaks the first, and `relay status` tells a running relay by
its pidfile, not by the age of its status file."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from hagate import pidfile
from hagate.state import StateDir
from tests.conftest import run_hagate
from tests.gateway.harness import make_gateway
from tests.net import free_port
from tests.tunnel.harness import Relay


def test_a_second_gateway_on_the_same_state_is_refused_and_the_first_keeps_running(
    tmp_path: Path,
) -> None:
    g = make_gateway(tmp_path)
    g.issue("phone")
    g.start()
    try:
        assert g.proc is not None
        state = StateDir(g.state)
        assert pidfile.running(state) == g.proc.pid
        second = run_hagate("serve", "--listen", f"127.0.0.1:{free_port()}", state=g.state)
        assert second.code == 1
        assert "already running" in second.err and f"pid {g.proc.pid}" in second.err
        assert len(second.err.strip().splitlines()) == 1, second.err
        relay = Relay.create(tmp_path)
        connect = run_hagate(
            "connect", "--relay", relay.address, "--token", relay.token(),
            "--relay-fingerprint", relay.fingerprint, state=g.state,
        )  # fmt: skip
        assert connect.code == 1 and "already running" in connect.err
        # The first gateway's pidfile is intact, so a reload still reaches it.
        assert pidfile.running(state) == g.proc.pid
        assert pidfile.reload_running(state) == [g.proc.pid]
        assert g.request("/", cert="phone").status == 200
    finally:
        g.stop()
        g.upstream.close()
    assert pidfile.running(StateDir(g.state)) is None  # gone with the gateway


def test_a_second_gateway_on_a_taken_port_leaves_the_first_ones_pidfile(
    tmp_path: Path,
) -> None:
    g = make_gateway(tmp_path / "a")
    g.start()
    other = make_gateway(tmp_path / "b")
    try:
        assert g.proc is not None
        taken = run_hagate("serve", "--listen", f"127.0.0.1:{g.port}", state=other.state)
        assert taken.code != 0 and "Traceback" not in taken.err
        assert pidfile.running(StateDir(g.state)) == g.proc.pid
        assert not (other.state / "gateway.pid").exists()
    finally:
        g.stop()
        g.upstream.close()
        other.upstream.close()


def test_relay_status_says_running_by_the_pidfile_and_not_running_after(
    tmp_path: Path,
) -> None:
    relay = Relay.create(tmp_path)
    relay.start()
    try:
        deadline = time.monotonic() + 10
        while not (relay.state / "relay-status.json").exists():
            assert time.monotonic() < deadline
            time.sleep(0.1)
        shown = run_hagate("relay", "status", state=relay.state)
        assert shown.code == 0, shown.err
        assert relay.proc is not None and f"running (pid {relay.proc.pid})" in shown.out
        assert "not running" not in shown.out
        second = subprocess.run(
            [sys.executable, "-m", "hagate", "--state-dir", str(relay.state), "relay", "run",
             "--listen", f"127.0.0.1:{free_port()}"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert second.returncode == 1 and "a relay is already running" in second.stderr
    finally:
        relay.stop()
    shown = run_hagate("relay", "status", state=relay.state)
    assert "not running" in shown.out
