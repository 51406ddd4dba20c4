"""The log line per request: made from the event row, written by the event writer process."""

from __future__ import annotations

import json
import time
from pathlib import Path

from hagate.events.logline import json_line, text_formatter
from hagate.events.store import EventStore, connect, read_events

ROW = {
    "time": 0.0,
    "client_ip": "127.0.0.1",
    "action": "allow",
    "duration_ms": 1.0,
    "request_id": "ab",
    "status": 200,
    "rule": None,
}


def test_a_json_line_is_the_row_without_empty_fields() -> None:
    line = json_line(ROW)
    assert line.endswith("\n") and "\n" not in line[:-1]
    assert json.loads(line) == {k: v for k, v in ROW.items() if v is not None}


def test_the_writer_says_each_row_as_it_arrives_even_while_sqlite_is_stalled(
    tmp_path: Path,
) -> None:
    """Log shippers get their lines when SQLite cannot write (its lock held, a slow disk)."""
    path = tmp_path / "events.sqlite3"
    out_path = tmp_path / "stdout.log"
    with out_path.open("wb") as out:
        store = EventStore(path, log_format="json", log_to=out).start()
    blocker = connect(path)
    blocker.execute("BEGIN IMMEDIATE")
    sent = [{**ROW, "request_id": f"r{i}", "time": time.time()} for i in range(30)]
    for row in sent:
        store.record(row)
    deadline = time.monotonic() + 10
    while len(out_path.read_text().splitlines()) < 30 and time.monotonic() < deadline:
        time.sleep(0.05)
    said = [json.loads(line) for line in out_path.read_text().splitlines()]
    assert [line["request_id"] for line in said] == [f"r{i}" for i in range(30)]
    assert said[0] == {k: v for k, v in sent[0].items() if v is not None}
    blocker.rollback()  # SQLite had none of them yet: the lines did not wait for it
    blocker.close()
    store.close(timeout=15)
    assert [r["request_id"] for r in read_events(path)] == [f"r{i}" for i in range(30)]


def test_no_log_format_no_lines(tmp_path: Path) -> None:
    out_path = tmp_path / "stdout.log"
    with out_path.open("wb") as out:
        store = EventStore(tmp_path / "events.sqlite3", log_to=out).start()
    store.record(ROW)
    store.close()
    assert out_path.read_bytes() == b"" and len(list(read_events(tmp_path / "events.sqlite3"))) == 1


def test_request_ids_are_unique_across_forked_workers() -> None:
    import os

    from hagate.gateway.record import new_request_id

    ours = {new_request_id() for _ in range(1000)}
    assert len(ours) == 1000 and all(len(i) == 16 for i in ours)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # a worker: its ids go back through the pipe
        os.write(write, "\n".join(new_request_id() for _ in range(1000)).encode())
        os._exit(0)
    os.close(write)
    data = b""
    while chunk := os.read(read, 65536):
        data += chunk
    os.close(read)
    os.waitpid(pid, 0)
    theirs = set(data.decode().split("\n"))
    assert len(theirs) == 1000
    assert not ours & theirs
    assert {i[:8] for i in ours} != {i[:8] for i in theirs}  # a fresh prefix after the fork


def test_a_text_line_says_what_happened_and_when() -> None:
    line = text_formatter()
    first = 1_800_000_000.25  # 2027-01-15T08:00:00Z
    a = line({**ROW, "time": first, "rule": "No certificate", "cert_name": None, "reason": "x y"})
    b = line({**ROW, "time": first + 0.5})
    c = line({**ROW, "time": first + 61})  # a later second gets its own timestamp
    assert a.startswith('2027-01-15T08:00:00Z 127.0.0.1 "')
    assert a.endswith(' rule="No certificate" reason="x y"\n')
    assert b.startswith("2027-01-15T08:00:00Z ")
    assert c.startswith("2027-01-15T08:01:01Z ")
