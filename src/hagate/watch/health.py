"""`hagate health`: is what runs on this state directory alive and doing its job? For a
container's health check and for scripts: one line of words, and a yes or no.

Rules:
  1. The judges are pure functions of what the running processes last wrote (their pid and
     status files) and the time; `check` only gathers those.
  2. Alive is not enough: a status file older than a few of its own periods means a stuck
     process, and a connector with no relay for a minute cannot be reached.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from hagate import pidfile
from hagate.state import StateDir
from hagate.tunnel.relaystate import RELAY_CONFIG, STATUS
from hagate.watch.status import WRITE_EVERY, ProcessStatus, read_statuses

STALE_AFTER = 3 * WRITE_EVERY + 5  # a gateway's status file is rewritten every 5 s
RELAY_STALE_AFTER = 65.0  # the relay's is rewritten within 30 s even when nothing changed
NO_RELAY_AFTER = 60.0  # a connector without any relay this long cannot be reached


@dataclass(frozen=True)
class Health:
    ok: bool
    words: str


def judge_gateway(pid: int | None, statuses: list[ProcessStatus], now: float) -> Health:
    if pid is None:
        return Health(False, "no gateway runs on this state directory (hagate serve or connect)")
    if not statuses:
        return Health(False, f"the gateway (pid {pid}) has written no status yet")
    newest = max(s.updated for s in statuses)
    if now - newest > STALE_AFTER:
        return Health(
            False, f"the gateway (pid {pid}) last wrote its status {now - newest:.0f}s ago"
        )
    role = statuses[0].role
    if role == "connect":
        links = {relay: link for s in statuses for relay, link in s.relays.items()}
        up = sorted(relay for relay, (is_up, _) in links.items() if is_up)
        if up:
            return Health(True, f"connected to {', '.join(up)}")
        started = min(s.started for s in statuses)
        since = max((t for _, t in links.values()), default=started)
        if now - since > NO_RELAY_AFTER:
            return Health(False, f"no relay connected for {now - since:.0f}s")
        return Health(True, "connecting to the relays")
    return Health(True, f"serving ({len(statuses)} worker(s))")


def judge_relay(pid: int | None, written: float | None, now: float) -> Health:
    if pid is None:
        return Health(False, "no relay runs on this state directory")
    if written is None:
        return Health(False, f"the relay (pid {pid}) has written no status yet")
    if now - written > RELAY_STALE_AFTER:
        return Health(
            False, f"the relay (pid {pid}) last wrote its status {now - written:.0f}s ago"
        )
    return Health(True, f"relay running (pid {pid})")


def check(state: StateDir, now: float | None = None) -> Health:
    """The relay's health where this is a relay's state directory, else the gateway's."""
    now = time.time() if now is None else now
    if (state / RELAY_CONFIG).exists() or pidfile.running(state, pidfile.Kind.RELAY):
        try:
            written: float | None = float(json.loads((state / STATUS).read_text())["time"])
        except (OSError, ValueError, KeyError, TypeError):
            written = None
        return judge_relay(pidfile.running(state, pidfile.Kind.RELAY), written, now)
    return judge_gateway(pidfile.running(state), read_statuses(state), now)
