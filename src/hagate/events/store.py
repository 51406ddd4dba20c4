"""The event store: SQLite in WAL mode, written by a separate writer process, which also
writes the log line per request.

Rules:
  1. `record()` never blocks and never raises: it appends the row to a queue in memory. Full
     batches, and every `FLUSH_SECONDS` whatever is queued, go to the writer process as one
     message on a Unix socket. Rows wait in the queue while the writer's socket is full or a
     writer is being replaced; a row that finds the queue full (`capacity` rows) is dropped
     and counted. A slow disk slows the writer, never a request.
  2. The writer is a process of its own (`hagate.events.writer`), not a thread of the
     gateway: a thread would share the gateway's GIL, and under load each SQLite statement
     then stalls the event loop (measured under load: the event row cost the gateway's
     process about 15 µs of CPU per request with a writer thread, about 6 µs with a writer
     process, whose SQLite work runs on another core). It writes each message in one
     transaction with multi-row INSERTs, holds up to `capacity` rows of its own while SQLite
     is slow, and runs retention (rows older than `retention_days`) at start and hourly.
  3. `close()` hands over every queued row and waits for the writer to write them. The
     writer ignores SIGINT, SIGTERM and SIGHUP and ends when its socket closes, so stopping
     the gateway (Ctrl-C, a closed terminal, systemd) never loses the rows already recorded.
     A writer that dies is restarted, and the rows it held are counted as dropped.
  4. Drops are said on stderr (at most once every `WARN_EVERY` seconds, and at close), so a
     gap in the log never goes unnoticed.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import marshal
import math
import select
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any, TextIO

from hagate.events.schema import (
    ACTIONS,
    BATCH,
    COLUMNS,
    EVENTS_NAME,
    FLUSH_SECONDS,
    IGNORED_SIGNALS,
    MAX_MESSAGE,
    RETENTION_EVERY,
    SCHEMA,
    WARN_EVERY,
    Event,
    Report,
    connect,
    insert_sql,
    purge,
    write_rows,
)

__all__ = [
    "ACTIONS",
    "BATCH",
    "COLUMNS",
    "EVENTS_NAME",
    "FLUSH_SECONDS",
    "IGNORED_SIGNALS",
    "MAX_MESSAGE",
    "RETENTION_EVERY",
    "SCHEMA",
    "WARN_EVERY",
    "EventStore",
    "Report",
    "append",
    "connect",
    "insert_sql",
    "purge",
    "read_events",
    "write_rows",
]


def append(path: Path, row: Mapping[str, Any]) -> bool:
    """Write one event from a short-lived command (no writer process): `hagate acme renew`."""
    db = connect(path)
    try:
        return write_rows(db, [tuple(row.get(c) for c in COLUMNS)])
    finally:
        db.close()


RESTART_EVERY = 5.0


class EventStore:
    """Accepts events from the event loop; a writer process writes them to SQLite."""

    def __init__(
        self,
        path: Path,
        retention_days: int = 30,
        capacity: int = 10_000,
        warn: TextIO = sys.stderr,
        log_format: str = "none",
        log_to: IO[Any] | None = None,
    ) -> None:
        """`log_format` (text or json) has the writer write a log line per row on `log_to`
        (by default this process's stdout)."""
        self.path = path
        self.log_format = log_format
        self.log_to = log_to
        self.retention_days = retention_days
        self.capacity = capacity
        self.pending: collections.deque[tuple[Any, ...]] = collections.deque()
        self._warn = warn
        self._dropped_here = 0  # rows this side could not hand over
        self._lost = 0  # rows dead writers held, or dropped
        self._sent = 0  # rows handed to the running writer
        self._report: Report = (0, 0)  # the running writer's
        self._written_before = 0  # by writers that died
        self._told = 0  # drops said so far
        self._told_at = -math.inf
        self._lock = threading.Lock()  # one flush at a time, so batches keep their order
        self._wake = threading.Event()
        self._stop = False
        self._sock: socket.socket | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._started_at = -math.inf
        self._flusher: threading.Thread | None = None
        connect(path).close()  # create the schema now, so errors surface at start

    @property
    def written(self) -> int:
        return self._written_before + self._report[0]

    @property
    def dropped(self) -> int:
        return self._dropped_here + self._lost + self._report[1]

    @property
    def writer_pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._sock is not None else None

    def start(self) -> EventStore:
        self._spawn()
        self._flusher = threading.Thread(target=self._run, name="hagate-events", daemon=True)
        self._flusher.start()
        return self

    def _spawn(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        # The writer starts with those signals blocked (a signal mask is inherited), so one
        # sent while it is still starting stays pending until it ignores them.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, IGNORED_SIGNALS)
        with theirs:
            try:
                self._proc = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "hagate.events.writer",
                        str(theirs.fileno()),
                        str(self.path),
                        str(self.retention_days),
                        str(self.capacity),
                        self.log_format,
                    ],
                    pass_fds=[theirs.fileno()],
                    stdin=subprocess.DEVNULL,
                    stdout=self.log_to,
                )
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        ours.setblocking(False)
        self._sock, self._sent, self._report = ours, 0, (0, 0)
        self._started_at = time.monotonic()

    def record(self, event: Event | Mapping[str, Any]) -> None:
        """Queue one row: an Event, or a mapping of column names (absent ones are NULL)."""
        pending = self.pending
        if len(pending) >= self.capacity:
            self._dropped_here += 1
            return
        # marshal takes plain tuples only
        pending.append(tuple(event) if isinstance(event, tuple) else tuple(map(event.get, COLUMNS)))
        # A full batch leaves now, unless the flusher thread is busy (sending, or starting a
        # new writer): then it takes the batch with the rest, and this call does not wait.
        if len(pending) >= BATCH and self._lock.acquire(blocking=False):
            try:
                self._hand_over()
            finally:
                self._lock.release()

    def flush(self) -> None:
        """Hand the queued rows to the writer now. Rows wait in the queue while the writer's
        socket is full or a writer is being replaced; only a full queue drops rows."""
        with self._lock:
            self._hand_over()

    def _hand_over(self) -> None:
        self._read_reports()
        pending = self.pending
        while pending and self._sock is not None:
            batch = [pending.popleft() for _ in range(min(len(pending), BATCH))]
            unsent = self._send(batch)
            if unsent:
                pending.extendleft(reversed(unsent))
                return

    def _send(self, batch: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """Send `batch`; returns the rows that could not be sent now."""
        sock = self._sock
        if sock is None:
            return batch
        try:
            sock.send(marshal.dumps(batch))
        except (BlockingIOError, TimeoutError):  # the writer is a socket buffer behind
            return batch
        except OSError as e:
            if e.errno != errno.EMSGSIZE:  # the writer is gone; the rows wait for the next
                self._writer_died()
                return batch
            if len(batch) == 1:  # one row larger than a message: not a row a gateway makes
                self._dropped_here += 1
                return []
            half = len(batch) // 2  # long paths: send in halves
            unsent = self._send(batch[:half])
            return unsent + batch[half:] if unsent else self._send(batch[half:])
        self._sent += len(batch)
        return []

    def _read_reports(self) -> None:
        sock = self._sock
        while sock is not None:
            try:
                message = sock.recv(256)
            except BlockingIOError:
                return
            except OSError:
                message = b""
            if not message:
                self._writer_died()
                return
            self._report = marshal.loads(message)

    def _writer_died(self) -> None:
        """The writer's socket closed: what it was sent and did not report written is lost."""
        if self._sock is not None:
            self._retire(5.0)

    def _retire(self, timeout: float) -> None:
        """Close the writer's socket, wait for it to end, and settle its counts."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._proc is not None:
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        written = self._report[0]
        self._written_before += written
        self._lost += self._sent - written
        self._sent, self._report = 0, (0, 0)

    def close(self, timeout: float = 5.0) -> None:
        """Hand over every queued row and wait (up to `timeout`) for the writer to write them."""
        if self._flusher is None:
            return
        deadline = time.monotonic() + timeout
        self._stop = True
        self._wake.set()
        self._flusher.join(timeout)
        self._flusher = None
        if self._sock is None and self.pending:  # the writer died: one more for the rest
            self._spawn()
        self.flush()
        while self.pending and self._sock is not None and time.monotonic() < deadline:
            select.select([], [self._sock], [], max(0.0, deadline - time.monotonic()))
            time.sleep(0.002)  # room for a small message may not be room for this one
            self.flush()
        self._dropped_here += len(self.pending)  # what even that did not hand over
        self.pending.clear()
        sock = self._sock
        if sock is not None:
            sock.shutdown(socket.SHUT_WR)  # the writer writes what it holds, reports, ends
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            with contextlib.suppress(OSError):
                while message := sock.recv(256):
                    self._report = marshal.loads(message)
            self._retire(max(0.1, deadline - time.monotonic()))
        self._tell_drops(force=True)

    def _run(self) -> None:
        while not self._stop:
            self._wake.wait(FLUSH_SECONDS)
            if self._sock is None and time.monotonic() - self._started_at >= RESTART_EVERY:
                with self._lock:
                    self._spawn()
            if not self._stop:
                self.flush()
                self._tell_drops()

    def _tell_drops(self, force: bool = False) -> None:
        dropped, now = self.dropped, time.monotonic()
        if dropped > self._told and (force or now - self._told_at >= WARN_EVERY):
            print(
                f"hagate: the event log fell behind; {dropped - self._told} rows were dropped "
                f"({dropped} since start). Is the disk of {self.path.parent} slow or full?",
                file=self._warn,
                flush=True,
            )
            self._told, self._told_at = dropped, now

    def purge(self) -> int:
        db = connect(self.path)
        try:
            return purge(db, self.retention_days)
        finally:
            db.close()


def read_events(
    path: Path, where: str = "", params: tuple[Any, ...] = ()
) -> Iterator[dict[str, Any]]:
    """Rows as dicts, oldest first (for tests and the future query command)."""
    db = connect(path)
    db.row_factory = sqlite3.Row
    try:
        sql = f"SELECT * FROM events {('WHERE ' + where) if where else ''} ORDER BY id"
        for row in db.execute(sql, params):
            yield dict(row)
    finally:
        db.close()
