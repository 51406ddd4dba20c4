"""A running relay (`hagate relay run`) and a connector (`hagate connect`) for tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import run_hagate
from tests.gateway.harness import Gateway
from tests.net import free_port, wait_listening


@dataclass
class Relay:
    state: Path
    name: str
    port: int
    fingerprint: str
    proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def create(cls, tmp: Path, name: str = "relay.test") -> Relay:
        state = tmp / f"relay-{name}"
        r = run_hagate("relay", "init", "--hostname", name, state=state)
        assert r.code == 0, r.err
        return cls(state, name, free_port(), r.out.strip().splitlines()[-1])

    def token(self, hostname: str = "ha.test", days: int = 30) -> str:
        r = run_hagate(
            "relay", "token", "--hostname", hostname, "--days", str(days), state=self.state
        )
        assert r.code == 0 and r.out.count("\n") == 1, r
        return r.out.strip()

    def start(self, *extra: str, test_limits: bool = True) -> None:
        """Run `hagate relay run` on the relay's port. `test_limits` lifts the per-address
        connection rate, for tests that connect many times from one address; without it the
        relay runs with its defaults."""
        self.err = (self.state / "relay.err").open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hagate",
                "--state-dir",
                str(self.state),
                "relay",
                "run",
                "--listen",
                f"127.0.0.1:{self.port}",
                *(["--rate-per-ip", "100000"] if test_limits else []),
                *extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=self.err,
        )
        wait_listening(self.port, self.proc)

    def stop(self, timeout: float = 20) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout)

    def status(self) -> dict[str, Any]:
        time.sleep(1.2)  # the relay writes its status every second
        data: dict[str, Any] = json.loads((self.state / "relay-status.json").read_text())
        return data

    def read_status(self) -> dict[str, Any]:
        """The status file as it is now (empty while there is none)."""
        try:
            data: dict[str, Any] = json.loads((self.state / "relay-status.json").read_text())
        except (OSError, ValueError):
            return {"connectors": [], "counters": {}}
        return data

    def connected(self, since: float = 0.0) -> int:
        """Connected homes, as a status file written after `since` (Unix time) says."""
        status = self.read_status()
        connectors, written = status["connectors"], status.get("time", 0)
        if not isinstance(written, int | float) or written < since:
            return 0  # the last relay's file: this one has not written its own yet
        return len(connectors) if isinstance(connectors, list) else 0

    def wait_for(self, n: int, timeout: float, since: float = 0.0) -> float:
        """Seconds until `n` homes are connected."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.connected(since) >= n:
                return time.monotonic() - started
            time.sleep(0.2)
        raise TimeoutError(f"only {self.connected(since)} of {n} homes connected in {timeout:.0f}s")

    def open_fds(self) -> int:
        assert self.proc is not None
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def address(self) -> str:
        return f"{self.name}:{self.port}@127.0.0.1"


def start_connector(
    g: Gateway,
    relays: list[Relay],
    token: str,
    pin: bool = True,
    hostname: str = "ha.test",
    workers: int = 1,
    wait: bool = True,
    extra: tuple[str, ...] = (),
) -> None:
    """Run `hagate connect` for the gateway's state; clients then reach it via the relay
    (once it has connected, which this waits for unless `wait` is False)."""
    g.log_path = g.tmp / "connector.log"
    g.err_path = g.tmp / "connector.err"
    args = [
        sys.executable,
        "-m",
        "hagate",
        "--state-dir",
        str(g.state),
        "connect",
        "--token",
        token,
        "--log-format",
        "json",
        "--workers",
        str(workers),
    ]
    for r in relays:
        args += ["--relay", r.address]
    if pin:
        args += ["--relay-fingerprint", relays[0].fingerprint]
    args += extra
    g.proc = subprocess.Popen(args, stdout=g.log_path.open("wb"), stderr=g.err_path.open("wb"))
    g.port = relays[0].port
    if wait:
        wait_connected(relays, hostname, count=workers)


def wait_connected(relays: list[Relay], hostname: str, timeout: float = 15, count: int = 1) -> None:
    deadline = time.monotonic() + timeout
    for r in relays:
        while time.monotonic() < deadline:
            path = r.state / "relay-status.json"
            if path.exists():
                try:
                    data = json.loads(path.read_text())
                except ValueError:
                    data = {"connectors": []}
                if sum(c["hostname"] == hostname for c in data["connectors"]) >= count:
                    break
            time.sleep(0.1)
        else:
            raise TimeoutError(f"no connector for {hostname} at relay {r.name}")
