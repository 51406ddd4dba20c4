"""Status files of running gateways and what the audit reads in them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hagate.state import StateDir
from hagate.watch.status import (
    Links,
    ProcessStatus,
    judge_statuses,
    read_statuses,
    write_status,
)


def status(
    pid: int, dropped: int = 0, relays: dict[str, tuple[bool, float]] | None = None
) -> ProcessStatus:
    return ProcessStatus(pid, "connect", 0.0, 100.0, 10, dropped, relays or {})


def test_links_say_when_every_relay_went_down() -> None:
    links = Links()
    assert links.all_down_since() is None  # no relays: port-forward mode
    links.set("a:443", False, now=10)
    links.set("b:443", False, now=12)
    assert links.all_down_since() == 12
    links.set("a:443", True, now=20)
    assert links.all_down_since() is None
    links.set("a:443", False, now=30)
    links.set("a:443", False, now=40)  # still down: since stays
    assert links.all_down_since() == 30


def test_dropped_rows_and_a_relay_down_for_five_minutes_are_findings() -> None:
    assert judge_statuses([status(1)], now=1000) == []
    found = judge_statuses([status(1, dropped=7)], now=1000)
    assert [f.id for f in found] == ["events-dropped"] and "7 rows" in found[0].problem
    down = status(1, relays={"relay.example:443": (False, 1000.0), "b:443": (True, 0.0)})
    assert judge_statuses([down], now=1000 + 299) == []
    found = judge_statuses([down], now=1000 + 301)
    assert [f.id for f in found] == ["relay-down:relay.example:443"]
    assert found[0].severity.label == "high"


def test_only_running_processes_are_believed(tmp_path: Path) -> None:
    state = StateDir(tmp_path)
    write_status(state, status(os.getpid(), dropped=1))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    write_status(state, status(dead.pid, dropped=5))
    (tmp_path / "run" / "999999999.json").write_text("{broken")
    assert [s.pid for s in read_statuses(state)] == [os.getpid()]
