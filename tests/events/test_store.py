"""The event store: batched writes off the request path, bounded queue, retention."""

from __future__ import annotations

import io
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hagate.events.store import COLUMNS, EventStore, connect, read_events, write_rows


def row(i: int, t: float | None = None) -> dict[str, object]:
    return {
        "time": t if t is not None else time.time(),
        "request_id": f"r{i}",
        "client_ip": "203.0.113.7",
        "action": "allow",
        "status": 200,
        "path": f"/{i}",
    }


def test_rows_are_written_in_batches_and_survive_close(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "events.sqlite3").start()
    for i in range(1200):
        store.record(row(i))
    store.close()
    rows = list(read_events(tmp_path / "events.sqlite3"))
    assert [r["request_id"] for r in rows] == [f"r{i}" for i in range(1200)]
    assert store.written == 1200 and store.dropped == 0
    db = sqlite3.connect(tmp_path / "events.sqlite3")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_stalled_disk_never_blocks_record_and_drops_are_counted(tmp_path: Path) -> None:
    path = tmp_path / "events.sqlite3"
    said = io.StringIO()
    store = EventStore(path, capacity=100, warn=said).start()
    # Another writer holds the database's write lock: the writer thread stalls on it.
    blocker = connect(path)
    blocker.execute("BEGIN IMMEDIATE")
    store.record(row(0))
    time.sleep(0.5)  # the writer has taken row 0 and is now waiting on the lock
    started = time.monotonic()
    for i in range(1, 1001):
        store.record(row(i))
    elapsed = time.monotonic() - started
    assert elapsed < 0.5, f"record() blocked for {elapsed:.2f}s"
    assert store.dropped >= 1000 - 100
    blocker.rollback()
    blocker.close()
    store.close(timeout=15)
    kept = list(read_events(path))
    assert len(kept) + store.dropped == 1001
    # The drops were said with their count: once, or, when the periodic check came while the
    # rows were still being dropped, once then and once more at close (never more often).
    lines = said.getvalue().splitlines()
    assert 1 <= len(lines) <= 2
    counts = [int(line.split("; ")[1].split(" rows were dropped")[0]) for line in lines]
    assert sum(counts) == store.dropped and f"({store.dropped} since start)" in lines[-1]


def test_retention_deletes_rows_older_than_the_setting(tmp_path: Path) -> None:
    path = tmp_path / "events.sqlite3"
    store = EventStore(path, retention_days=7).start()
    now = time.time()
    store.record(row(1, now - 8 * 86400))
    store.record(row(2, now - 6 * 86400))
    store.record(row(3, now))
    store.close()
    assert store.purge() == 1
    assert [r["request_id"] for r in read_events(path)] == ["r2", "r3"]


def test_retention_runs_when_the_writer_starts(tmp_path: Path) -> None:
    path = tmp_path / "events.sqlite3"
    old = EventStore(path, retention_days=30).start()
    old.record(row(1, time.time() - 40 * 86400))
    old.close()
    fresh = EventStore(path, retention_days=30).start()
    deadline = time.monotonic() + 5
    while list(read_events(path)) and time.monotonic() < deadline:
        time.sleep(0.05)
    fresh.close()
    assert list(read_events(path)) == []


def test_record_is_safe_from_many_threads(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "events.sqlite3").start()

    def writer(k: int) -> None:
        for i in range(500):
            store.record(row(k * 1000 + i))

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    store.close()
    assert len(list(read_events(tmp_path / "events.sqlite3"))) == 2000


def test_several_processes_can_open_a_new_store_at_once(tmp_path: Path) -> None:
    """Gateway workers start together; none may fail on SQLite's WAL switch."""
    path = tmp_path / "events.sqlite3"
    # Every process waits for the same instant, then opens the store: a real collision.
    code = (
        "import sys, time; from pathlib import Path; from hagate.events.store import EventStore; "
        "time.sleep(max(0.0, float(sys.argv[2]) - time.time())); EventStore(Path(sys.argv[1]))"
    )
    for _ in range(5):
        path.unlink(missing_ok=True)
        start = str(time.time() + 1.5)
        procs = [
            subprocess.Popen([sys.executable, "-c", code, str(path), start], stderr=subprocess.PIPE)
            for _ in range(8)
        ]
        for p in procs:
            _, err = p.communicate(timeout=60)
            assert p.returncode == 0, err.decode()


def test_every_column_round_trips_exactly(tmp_path: Path) -> None:
    """No value may change on the way into SQLite, whatever its type or characters."""
    from hagate.events.store import COLUMNS

    values: dict[str, object] = {
        "time": 1795829911.1975832,
        "request_id": "0123456789abcdef",
        "client_ip": "2001:db8::1",
        "asn": 4294967295,
        "country": "DE",
        "sni": "ha.example",
        "host": "ha.example:443",
        "method": "GET",
        "path": '/a?b="c"&d=\\x\u00e9',
        "user_agent": "Home Assistant/2025.4 (io.robbie.HomeAssistant; build:1; iOS 18.1)\t\u00ff",
        "cert_name": "phone 'Ann'",
        "cert_sha256": "ab" * 32,
        "rule": None,
        "action": "allow",
        "status": 200,
        "bytes_in": 0,
        "bytes_out": 2**40,
        "duration_ms": 0.001,
        "reason": "[1,2] {not json}",
    }
    assert set(values) == set(COLUMNS)
    store = EventStore(tmp_path / "events.sqlite3").start()
    store.record(values)
    store.close()
    (got,) = read_events(tmp_path / "events.sqlite3")
    got.pop("id")
    assert got == values
    assert [type(got[k]) for k in COLUMNS] == [type(values[k]) for k in COLUMNS]


def test_a_batch_larger_than_one_statement_holds_is_split_and_kept_whole(tmp_path: Path) -> None:
    # One INSERT carries at most SQLite's variable limit: lower the limit so a batch needs
    # several statements, and every row must still land once, in order.
    path = tmp_path / "events.sqlite3"
    db = connect(path)
    db.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 3 * len(COLUMNS) + 1)
    assert write_rows(db, [tuple(map(row(i).get, COLUMNS)) for i in range(10)])
    db.close()
    rows = list(read_events(path))
    assert [r["request_id"] for r in rows] == [f"r{i}" for i in range(10)]


def wait_for_rows(path: Path, count: int, seconds: float = 15) -> list[dict[str, object]]:
    deadline = time.monotonic() + seconds
    while True:
        rows = list(read_events(path))
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def test_the_writer_is_a_process_that_ignores_stop_signals_until_its_rows_are_written(
    tmp_path: Path,
) -> None:
    """Ctrl-C, a closed terminal and systemd signal the whole process group: the writer must
    not die with rows still to write; it ends when the gateway closes its socket."""
    path = tmp_path / "events.sqlite3"
    store = EventStore(path).start()
    pid = store.writer_pid
    assert pid is not None and pid != os.getpid()
    store.record(row(0))
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        os.kill(pid, sig)
    for i in range(1, 300):
        store.record(row(i))
    time.sleep(0.3)
    assert store.writer_pid == pid  # still the same, living writer
    store.close()
    assert [r["request_id"] for r in read_events(path)] == [f"r{i}" for i in range(300)]
    assert store.written == 300 and store.dropped == 0
    with pytest.raises(ProcessLookupError):  # and it has ended
        os.kill(pid, 0)


def test_a_writer_that_dies_is_replaced_and_the_rows_recorded_meanwhile_land(
    tmp_path: Path,
) -> None:
    path = tmp_path / "events.sqlite3"
    said = io.StringIO()
    store = EventStore(path, warn=said).start()
    for i in range(10):
        store.record(row(i))
    assert len(wait_for_rows(path, 10)) == 10
    deadline = time.monotonic() + 10
    while store.written < 10 and time.monotonic() < deadline:  # and the writer has said so
        time.sleep(0.05)
    first = store.writer_pid
    assert first is not None
    os.kill(first, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while store.writer_pid == first and time.monotonic() < deadline:  # the death is noticed
        time.sleep(0.05)
    for i in range(10, 20):
        store.record(row(i))
    rows = wait_for_rows(path, 20)
    assert [r["request_id"] for r in rows] == [f"r{i}" for i in range(20)]
    assert store.writer_pid not in (None, first)
    store.close()
    assert store.written == 20 and store.dropped == 0
    assert said.getvalue() == ""


def test_rows_handed_over_are_written_even_when_the_gateway_is_killed(tmp_path: Path) -> None:
    path = tmp_path / "events.sqlite3"
    code = (
        "import os, signal, sys; from pathlib import Path; "
        "from hagate.events.store import EventStore; "
        "s = EventStore(Path(sys.argv[1])).start(); "
        "[s.record({'time': 1e9 + i, 'request_id': f'r{i}', 'action': 'allow'}) "
        " for i in range(1234)]; "
        "s.flush(); print(s.writer_pid, flush=True); os.kill(os.getpid(), signal.SIGKILL)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    writer = int(done.stdout)
    rows = wait_for_rows(path, 1234)
    assert [r["request_id"] for r in rows] == [f"r{i}" for i in range(1234)]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # with nobody left to write for, the writer ends
        try:
            os.kill(writer, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the writer outlived its gateway")


def test_rows_too_large_for_one_message_are_split_and_all_land(tmp_path: Path) -> None:
    """A batch of rows with long paths exceeds what one socket message carries."""
    path = tmp_path / "events.sqlite3"
    store = EventStore(path).start()
    long_rows = [dict(row(i), path="/" + "a" * 60_000 + str(i)) for i in range(40)]
    for r in long_rows:
        store.record(r)
    store.close()
    assert [r["path"] for r in read_events(path)] == [r["path"] for r in long_rows]
    assert store.dropped == 0


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 5000))
def test_a_batch_is_split_into_few_prepared_statement_sizes(count: int) -> None:
    from hagate.events.schema import STATEMENT_ROWS, parts

    sizes = parts(count)
    assert sum(sizes) == count
    assert set(sizes) <= set(STATEMENT_ROWS)
    assert sizes == sorted(sizes, reverse=True)


def test_rows_of_every_batch_size_are_written_in_order(tmp_path: Path) -> None:
    db = connect(tmp_path / "e.sqlite3")
    written = 0
    for size in (1, 3, 17, 255, 256, 257, 500, 1111):
        values: dict[str, object] = {"action": "allow"}
        rows = [tuple({**values, "time": written + i}.get(c) for c in COLUMNS) for i in range(size)]
        assert write_rows(db, rows)
        written += size
    times = [r[0] for r in db.execute("SELECT time FROM events ORDER BY id")]
    assert times == list(range(written))
    db.close()


def test_the_typed_event_is_the_table_column_for_column(tmp_path: Path) -> None:
    """An Event's fields are the table's columns in order, so a row made from one can never
    put a value in the wrong column or drop one as a silent NULL."""
    from hagate.events.schema import Event

    db = connect(tmp_path / "e.sqlite3")
    table = [row[1] for row in db.execute("PRAGMA table_info(events)") if row[1] != "id"]
    assert list(Event._fields) == table == list(COLUMNS)
    store = EventStore(tmp_path / "events.sqlite3")
    store.start()
    fields: dict[str, object] = {name: f"v-{name}" for name in Event._fields}
    fields.update(time=1e9, asn=64500, status=403, bytes_in=1, bytes_out=2, duration_ms=3.5)
    store.record(Event(**fields))  # type: ignore[arg-type]
    store.close()
    (row,) = read_events(tmp_path / "events.sqlite3")
    assert {k: row[k] for k in Event._fields} == fields
