"""A new user, by the README and docs/relay.md only, every command as the docs print it.

- The quick start: `make run` in a fresh copy of this checkout (nothing installed there yet),
  then every command it prints, each in a fresh shell without the venv on PATH.
- The relay and the home of docs/relay.md and the README's "by hand" commands, on one
  machine made to look like two: in a private network and mount namespace, where
  relay.example.com and ha.example.com are this machine, /etc, /opt and /var/lib are private,
  and the relay runs as its own user with the command line of deploy/hagate-relay.service.
  Home Assistant is the real one, pinned.

pip reads only the wheelhouse `make test` prepared (PIP_NO_INDEX, PIP_FIND_LINKS): the tests
make no traffic beyond loopback.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.docs import ROOT, sh_blocks

WHEELHOUSE = Path.home() / ".cache" / "hagate" / "wheelhouse"
OFFLINE_PIP = {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(WHEELHOUSE)}
# A fresh login shell's PATH: no venv, no pyenv.
PLAIN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def fresh_copy(target: Path) -> Path:
    """The checkout's files (tracked and new, not ignored) as a fresh clone would have them."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, (n.decode() for n in listed)):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def test_make_run_installs_what_running_needs_and_its_commands_work_as_printed(
    tmp_path: Path,
) -> None:
    assert (WHEELHOUSE / "setuptools").exists() or list(WHEELHOUSE.glob("setuptools-*.whl"))
    (quick,) = [b for b in sh_blocks("README.md", "Quick start") if b[0].startswith("make run")]
    run_line = quick[0].split("#")[0].strip()
    assert run_line == "make run"
    repo = fresh_copy(tmp_path / "hagate")
    env = {**os.environ, **OFFLINE_PIP}
    env.pop("VIRTUAL_ENV", None)
    env["PATH"] = ":".join(
        p for p in env["PATH"].split(":") if not p.startswith(str(ROOT / ".venv"))
    )
    proc = subprocess.Popen(
        shlex.split(run_line),
        cwd=repo,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    printed: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 600
        for line in proc.stdout:
            printed.append(line.rstrip("\n"))
            if line.startswith("Running; Ctrl-C"):
                break
            assert time.monotonic() < deadline, "\n".join(printed)
        else:
            raise AssertionError("make run ended early:\n" + "\n".join(printed))
        text = "\n".join(printed)
        # Only what running needs: no test tools in the venv.
        venv = repo / ".venv"
        assert (venv / "bin" / "hagate").exists()
        for tool in ("pytest", "mypy", "playwright", "ruff"):
            assert not (venv / "bin" / tool).exists(), tool
        # Every hagate command it shows (run, or to try) calls the venv's own script.
        shown = [x[2:] for x in printed if x.startswith("$ ")]
        more = [
            x.split("#")[0].strip()
            for x in printed[printed.index(next(p for p in printed if p.startswith("More"))) :]
            if x.startswith("  .venv/bin/hagate ")
        ]
        assert len(more) == 5, text
        assert all(c.startswith(("curl ", ".venv/bin/hagate ")) for c in shown), shown
        clean = {
            "PATH": PLAIN_PATH,
            "HOME": str(tmp_path),
            "LANG": "C.UTF-8",
        }

        def run(command: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                ["bash", "-c", command],
                cwd=repo,
                env=clean,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )

        curls = [c for c in shown if c.startswith("curl ")]
        assert len(curls) == 2
        with_cert, without = curls
        assert "hagate" in run(with_cert).stdout  # the demo upstream, through the chain
        assert "client certificate" in run(without).stdout  # the block page
        for command in more:
            done = run(command)
            assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
        # The revocation among them took: the phone's own request is refused now.
        assert "has been revoked" in run(with_cert).stdout
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            rest, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            rest, _ = proc.communicate()
    assert "Stopped." in rest, rest


@pytest.mark.skipif(os.geteuid() != 0, reason="namespaces, useradd and sudo need root")
def test_the_relay_and_home_of_the_docs_as_printed(tmp_path: Path) -> None:
    from tests.e2e.homeassistant import ensure_venv

    ensure_venv()  # outside the namespace, where the pinned Home Assistant may be fetched
    spec = {
        "checkout": str(fresh_copy(tmp_path / "work" / "hagate")),
        "work": str(tmp_path / "work"),
        "private": str(tmp_path / "private"),
        "readme": sh_blocks("README.md", "Quick start")[1],
        "install": sh_blocks("docs/relay.md", "Deploying a relay"),
        "home": sh_blocks("docs/relay.md", "The home side")[0],
        "unit": (ROOT / "deploy" / "hagate-relay.service").read_text(),
        "pip": OFFLINE_PIP,
        "path": PLAIN_PATH,
    }
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(spec))
    done = subprocess.run(
        [
            "unshare",
            "--net",
            "--mount",
            "--fork",
            "--propagation",
            "private",
            sys.executable,
            "-m",
            "tests.e2e.newuser",
            str(spec_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, f"{done.stdout[-6000:]}\n{done.stderr[-6000:]}"
    result = json.loads(done.stdout.strip().splitlines()[-1])
    # Home Assistant's own answer to a fresh install, through relay, tunnel and gateway.
    assert result["through_relay"] == "302 https://ha.example.com/onboarding.html", result
    assert "ha.example.com</b>: connected" in result["relay_page"], result
    assert result["relay_user"] == "hagate"
    connected = r"hagate relay: connector for ha\.example\.com from \S+ \(token \w+\)"
    assert re.search(connected, result["relay_log"]), result["relay_log"]
