"""Where a running gateway (`hagate serve`, `hagate connect`) or relay (`hagate relay run`)
can be found: to reload it, and to tell whether it runs.

Rules:
  1. One of each per state directory: the process that runs it holds an exclusive lock on
     `<kind>.lock` for as long as it runs; a second one is refused, told who holds it.
  2. Only the lock's holder writes its pid to `<kind>.pid`, and a process removes only a
     pidfile holding its own pid: a second instance that fails never breaks the first.
  3. A pid is believed (and signalled) only if that process is still a hagate of that kind
     for this state directory: a stale file left by a crash can never make us signal another
     program.
"""

from __future__ import annotations

import contextlib
import enum
import fcntl
import os
import signal
from collections.abc import Iterator
from pathlib import Path

from hagate.errors import HagateError
from hagate.state import StateDir, atomic_write


class Kind(enum.Enum):
    GATEWAY = "gateway"  # hagate serve, hagate connect (also as hagate app run)
    RELAY = "relay"  # hagate relay run

    @property
    def commands(self) -> frozenset[str]:
        return frozenset({"serve", "connect", "app"} if self is Kind.GATEWAY else {"run"})


def pid_path(state: StateDir, kind: Kind = Kind.GATEWAY) -> Path:
    return state / f"{kind.value}.pid"


@contextlib.contextmanager
def hold(state: StateDir, command: str, kind: Kind = Kind.GATEWAY) -> Iterator[None]:
    """Run as this state directory's one `kind`: the lock, then the pidfile, both let go at
    the end. A HagateError naming the holder when another one runs here."""
    fd = os.open(state / f"{kind.value}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        holder = running(state, kind)
        who = f"pid {holder}" if holder is not None else "another process"
        raise HagateError(
            f"a {kind.value} is already running on {state.path} ({who}); stop it first, or "
            f"give this {command} another --state-dir"
        ) from None
    try:
        write(state, kind)
        try:
            yield
        finally:
            remove(state, kind)
    finally:
        os.close(fd)  # the lock goes with the last descriptor (workers share it)


def write(state: StateDir, kind: Kind = Kind.GATEWAY) -> Path:
    path = pid_path(state, kind)
    atomic_write(path, f"{os.getpid()}\n".encode(), mode=0o644)
    return path


def remove(state: StateDir, kind: Kind = Kind.GATEWAY) -> None:
    path = pid_path(state, kind)
    with contextlib.suppress(OSError, ValueError):
        if int(path.read_text().strip()) == os.getpid():
            path.unlink()


def _is_ours(pid: int, state: StateDir, kind: Kind) -> bool:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    words = [a.decode(errors="replace") for a in argv if a]
    joined = " ".join(words)
    if "hagate" not in joined or not (kind.commands & set(words)):
        return False
    if kind is Kind.RELAY and "relay" not in words:
        return False
    # The state directory it runs on: --state-dir, else the environment's or the default.
    if "--state-dir" in words:
        i = words.index("--state-dir")
        return i + 1 < len(words) and Path(words[i + 1]).resolve() == state.path.resolve()
    return True


def running(state: StateDir, kind: Kind = Kind.GATEWAY) -> int | None:
    """The pid of the `kind` running on `state`, if there is one."""
    try:
        pid = int(pid_path(state, kind).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _is_ours(pid, state, kind) else None


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
