"""Shared fixtures: run the real `hagate` command in a subprocess, in a fresh state directory."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass
class Result:
    code: int
    out: str
    err: str


Run = Callable[..., Result]


def run_hagate(
    *args: str | os.PathLike[str], state: Path | None = None, input: str | None = None
) -> Result:
    cmd = [sys.executable, "-m", "hagate"]
    if state is not None:
        cmd += ["--state-dir", str(state)]
    cmd += [str(a) for a in args]
    env = {k: v for k, v in os.environ.items() if k != "HAGATE_STATE_DIR"}
    proc = subprocess.run(
        cmd, capture_output=True, text=True, input=input, env=env, timeout=120, check=False
    )
    # A user-facing command must never show a Python traceback.
    assert "Traceback" not in proc.stderr, proc.stderr
    return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def hagate() -> Run:
    return run_hagate


@dataclass
class Setup:
    state: Path
    tmp: Path
    password_file: Path

    def run(self, *args: str | os.PathLike[str], input: str | None = None) -> Result:
        return run_hagate(*args, state=self.state, input=input)


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    """A state directory after `hagate init --hostname ha.test`."""
    state = tmp_path / "state"
    r = run_hagate(
        "init", "--hostname", "ha.test", "--upstream", "http://127.0.0.1:8123", state=state
    )
    assert r.code == 0, r.err
    pw = tmp_path / "pw"
    pw.write_text("correct horse\n")
    return Setup(state, tmp_path, pw)


def init_state(path: Path, hostname: str = "ha.test") -> Path:
    """A state directory made by `hagate init`, its upstream a port nothing listens on."""
    from tests.net import free_port

    r = run_hagate(
        "init", "--hostname", hostname, "--upstream", f"http://127.0.0.1:{free_port()}",
        state=path,
    )  # fmt: skip
    assert r.code == 0, r.err
    return path
