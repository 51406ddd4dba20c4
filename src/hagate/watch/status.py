"""What a running gateway says about itself, for `hagate audit` and the alerts: a small JSON
file per process under the state directory's `run/`, rewritten every few seconds.

Rules:
  1. Each process writes only its own file (`run/<pid>.json`), atomically, so readers never
     see half of one and writers never contend.
  2. A reader believes a file only while its process is alive: a crashed gateway's last
     words are not the current state.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hagate.state import StateDir, atomic_write
from hagate.watch.findings import Finding, Severity

RUN_DIR = "run"
WRITE_EVERY = 5.0
RELAY_DOWN_AFTER = 300.0


@dataclass
class Links:
    """The connector's relays: up or down, and since when (Unix seconds)."""

    relays: dict[str, tuple[bool, float]] = field(default_factory=dict)

    def set(self, relay: str, up: bool, now: float | None = None) -> None:
        current = self.relays.get(relay)
        if current is None or current[0] != up:
            self.relays[relay] = (up, now if now is not None else time.time())

    def any_up(self) -> bool:
        return any(up for up, _ in self.relays.values())

    def all_down_since(self) -> float | None:
        """When the last relay went down, while every one is down; None while any is up."""
        if not self.relays or self.any_up():
            return None
        return max(since for _, since in self.relays.values())


@dataclass(frozen=True)
class ProcessStatus:
    pid: int
    role: str  # serve or connect
    started: float
    updated: float
    events_written: int
    events_dropped: int
    relays: dict[str, tuple[bool, float]]

    def to_json(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "role": self.role,
            "started": self.started,
            "updated": self.updated,
            "events": {"written": self.events_written, "dropped": self.events_dropped},
            "relays": {k: {"up": up, "since": since} for k, (up, since) in self.relays.items()},
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> ProcessStatus:
        return cls(
            pid=int(obj["pid"]),
            role=str(obj["role"]),
            started=float(obj["started"]),
            updated=float(obj["updated"]),
            events_written=int(obj["events"]["written"]),
            events_dropped=int(obj["events"]["dropped"]),
            relays={k: (bool(v["up"]), float(v["since"])) for k, v in dict(obj["relays"]).items()},
        )


def write_status(state: StateDir, status: ProcessStatus) -> None:
    directory = state / RUN_DIR
    directory.mkdir(mode=0o700, exist_ok=True)
    atomic_write(directory / f"{status.pid}.json", json.dumps(status.to_json()).encode())


def remove_status(state: StateDir, pid: int) -> None:
    with contextlib.suppress(OSError):
        (state / RUN_DIR / f"{pid}.json").unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_statuses(state: StateDir) -> list[ProcessStatus]:
    """The statuses of the gateway processes running now."""
    out = []
    directory: Path = state / RUN_DIR
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        try:
            status = ProcessStatus.from_json(json.loads(path.read_text()))
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if _alive(status.pid):
            out.append(status)
    return out


def judge_statuses(statuses: list[ProcessStatus], now: float) -> list[Finding]:
    out = []
    dropped = sum(s.events_dropped for s in statuses)
    if dropped:
        out.append(
            Finding(
                "events-dropped",
                Severity.MEDIUM,
                f"The event writer dropped {dropped} rows since the gateway started: the event "
                "log has gaps, so reviews and alerts miss requests.",
                "Check the disk of the state directory (full? slow?); the gateway says more on "
                "stderr. Restarting the gateway resets the count.",
            )
        )
    down: dict[str, float] = {}
    for s in statuses:
        for relay, (up, since) in s.relays.items():
            if not up and now - since > RELAY_DOWN_AFTER:
                down[relay] = min(since, down.get(relay, since))
    for relay, since in sorted(down.items()):
        minutes = int((now - since) // 60)
        out.append(
            Finding(
                f"relay-down:{relay}",
                Severity.HIGH,
                f"The connector has been cut off from the relay {relay} for {minutes} minutes: "
                "the home cannot be reached through it.",
                f"Check the relay (`hagate relay status` on {relay.rsplit(':', 1)[0]}) and "
                "this host's network; hagate connect's stderr says why it cannot connect.",
            )
        )
    return out
