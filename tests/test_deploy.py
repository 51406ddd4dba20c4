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
