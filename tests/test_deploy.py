"""The shipped systemd units pass `systemd-analyze verify` (with hagate where they expect it)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


@pytest.mark.parametrize(
    "unit",
    [
        "hagate-relay.service",
        "hagate-connect.service",
        "hagate-serve.service",
        "hagate-audit.service",
        "hagate-audit.timer",
    ],
)
def test_systemd_unit_verifies(unit: str, tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze is not None, "systemd-analyze is needed (Debian package systemd)"
    hagate = Path(sys.executable).parent / "hagate"
    assert hagate.exists()
    text = (DEPLOY / unit).read_text().replace("/opt/hagate/bin/hagate", str(hagate))
    path = tmp_path / unit
    path.write_text(text)
    if unit.endswith(".timer"):  # a timer verifies with the service it starts beside it
        service = unit.replace(".timer", ".service")
        other = (DEPLOY / service).read_text().replace("/opt/hagate/bin/hagate", str(hagate))
        (tmp_path / service).write_text(other)
    else:
        assert "ExecStart=" + str(hagate) in text
    out = subprocess.run([analyze, "verify", str(path)], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout + out.stderr == "", out.stdout + out.stderr


def test_verify_catches_a_broken_unit(tmp_path: Path) -> None:
    """The check above can fail: a unit whose program is missing does not verify."""
    path = tmp_path / "hagate-relay.service"
    path.write_text(
        (DEPLOY / "hagate-relay.service")
        .read_text()
        .replace("/opt/hagate/bin/hagate", "/nonexistent/hagate")
    )
    out = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True, text=True)
    assert "not executable" in out.stdout + out.stderr


def unit_command(unit: str, hagate: Path) -> tuple[list[str], dict[str, str]]:
    """The ExecStart command line of a shipped unit (hagate where it is here), and the
    variables its Environment= lines set."""
    import shlex

    text = (DEPLOY / unit).read_text().replace("/opt/hagate/bin/hagate", str(hagate))
    env: dict[str, str] = {}
    command: list[str] = []
    for line in text.splitlines():
        if line.startswith("Environment="):
            name, _, value = line.removeprefix("Environment=").partition("=")
            env[name] = value
        elif line.startswith("ExecStart="):
            command = shlex.split(line.removeprefix("ExecStart="))
    return command, env


def test_the_connect_unit_reaches_a_relay_with_hagates_own_certificate(tmp_path: Path) -> None:
    """The connect unit's own command line, with the variables its environment file is
    documented to hold, connects to a real relay pinned by fingerprint; without the
    fingerprint it says what to pass, in one line per attempt."""
    import os
    import time

    from tests.gateway.harness import make_gateway
    from tests.tunnel.harness import Relay

    relay = Relay.create(tmp_path)
    relay.start()
    home = make_gateway(tmp_path / "home")
    hagate = Path(sys.executable).parent / "hagate"
    command, unit_env = unit_command("hagate-connect.service", hagate)
    command = [a.replace("relay.example.com:443", relay.address) for a in command]
    env = {
        **os.environ,
        **unit_env,
        "HAGATE_STATE_DIR": str(home.state),
        "HAGATE_TOKEN": relay.token(),
        "HAGATE_RELAY_FINGERPRINT": relay.fingerprint,
    }

    def run_until(text: str, err: Path) -> str:
        """Run the unit's command until its stderr says `text`; what it said."""
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=err.open("wb"))
        try:
            deadline = time.monotonic() + 20
            while text not in err.read_text():
                assert proc.poll() is None and time.monotonic() < deadline, err.read_text()
                time.sleep(0.2)
            return err.read_text()
        finally:
            proc.terminate()
            proc.wait(20)

    try:
        run_until("connected to relay", tmp_path / "connect.err")
        del env["HAGATE_RELAY_FINGERPRINT"]
        said = run_until(
            "pass --relay-fingerprint (printed by `hagate relay init`)", tmp_path / "c2.err"
        )
        assert "Traceback" not in said
    finally:
        relay.stop()
        home.upstream.close()
