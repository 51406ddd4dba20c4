"""Where a running gateway (`hagate serve`, `hagate connect`) can be found, to reload it.

Rules:
  1. The process that owns the listener writes its pid to `gateway.pid` in the state
     directory when it starts and removes it when it stops.
  2. A pid is signalled only if that process is still a hagate gateway for this state
     directory: a stale file left by a crash can never make us signal another program.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

from hagate.state import StateDir, atomic_write

PID_NAME = "gateway.pid"


def write(state: StateDir) -> Path:
    path = state / PID_NAME
    atomic_write(path, f"{os.getpid()}\n".encode(), mode=0o644)
    return path


def remove(state: StateDir) -> None:
    path = state / PID_NAME
    with contextlib.suppress(OSError, ValueError):
        if int(path.read_text().strip()) == os.getpid():
            path.unlink()


def _is_our_gateway(pid: int, state: StateDir) -> bool:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    words = [a.decode(errors="replace") for a in argv if a]
    joined = " ".join(words)
    if "hagate" not in joined or not ({"serve", "connect"} & set(words)):
        return False
    # The state directory it runs on: --state-dir, else the environment's or the default.
    if "--state-dir" in words:
        i = words.index("--state-dir")
        return i + 1 < len(words) and Path(words[i + 1]).resolve() == state.path.resolve()
    return True


def running(state: StateDir) -> int | None:
    """The pid of the gateway running on `state`, if there is one."""
    try:
        pid = int((state / PID_NAME).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _is_our_gateway(pid, state) else None


def reload_running(state: StateDir) -> list[int]:
    """SIGHUP to the gateway running on `state`, if there is one; the pids signalled."""
    pid = running(state)
    if pid is None:
        return []
    try:
        os.kill(pid, signal.SIGHUP)
    except OSError:
        return []
    return [pid]
