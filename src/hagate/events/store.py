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
from functools import cache
from itertools import chain
from pathlib import Path
from typing import IO, Any, TextIO

EVENTS_NAME = "events.sqlite3"
# What an event row's action can be: a request's outcome, a refused connection, or the server
# certificate's ACME life (the CA's validation connections, renewals and their failures).
ACTIONS = (
    "allow",
    "skip",
    "block",
    "log",
    "refused",
    "upstream_error",
    "tls_error",
    "acme_challenge",
    "acme_renewed",
    "acme_error",
    "enrol",
)
COLUMNS = (
    "time",
    "request_id",
    "client_ip",
    "asn",
    "country",
    "sni",
    "host",
    "method",
    "path",
    "user_agent",
    "cert_name",
    "cert_sha256",
    "rule",
    "action",
    "status",
    "bytes_in",
    "bytes_out",
    "duration_ms",
    "reason",
)
SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    time REAL NOT NULL,
    request_id TEXT, client_ip TEXT, asn INTEGER, country TEXT, sni TEXT, host TEXT,
    method TEXT, path TEXT, user_agent TEXT, cert_name TEXT, cert_sha256 TEXT, rule TEXT,
    action TEXT NOT NULL, status INTEGER, bytes_in INTEGER, bytes_out INTEGER,
    duration_ms REAL, reason TEXT
);
CREATE INDEX IF NOT EXISTS events_time ON events(time);
CREATE INDEX IF NOT EXISTS events_client ON events(client_ip, time);
CREATE INDEX IF NOT EXISTS events_action ON events(action, time);
CREATE INDEX IF NOT EXISTS events_asn ON events(asn, time);
CREATE INDEX IF NOT EXISTS events_cert ON events(cert_name, time);
CREATE INDEX IF NOT EXISTS events_path ON events(path);
"""
# One INSERT of many rows rather than executemany, which steps SQLite once per row and lets go
# of the GIL around each step (when the writer was a thread of the gateway, that alone cost
# 10% of the request rate).
BATCH = 500
FLUSH_SECONDS = 0.25
RETENTION_EVERY = 3600.0
WARN_EVERY = 60.0


@cache
def insert_sql(rows: int) -> str:
    """An INSERT of `rows` rows (the statement is prepared once per size, then cached)."""
    row = f"({', '.join('?' * len(COLUMNS))})"
    return f"INSERT INTO events ({', '.join(COLUMNS)}) VALUES {', '.join([row] * rows)}"


def connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    # Switching to WAL takes a lock SQLite does not wait for: several processes opening a new
    # store at once (gateway workers) see "database is locked". Retry briefly.
    for attempt in range(50):
        try:
            db.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError:
            if attempt == 49:
                raise
            time.sleep(0.05)
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(SCHEMA)
    return db


def write_rows(db: sqlite3.Connection, batch: list[tuple[Any, ...]]) -> bool:
    """Write `batch` in one transaction (split at SQLite's variable limit); False when SQLite
    stayed busy or failed through three tries."""
    per = max(1, db.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // len(COLUMNS))
    for _ in range(3):
        try:
            with db:
                db.execute("BEGIN")
                for i in range(0, len(batch), per):
                    part = batch[i : i + per]
                    db.execute(insert_sql(len(part)), list(chain.from_iterable(part)))
            return True
        except sqlite3.OperationalError:
            time.sleep(0.1)
    return False


def append(path: Path, row: Mapping[str, Any]) -> bool:
    """Write one event from a short-lived command (no writer process): `hagate acme renew`."""
    db = connect(path)
    try:
        return write_rows(db, [tuple(row.get(c) for c in COLUMNS)])
    finally:
        db.close()


def purge(db: sqlite3.Connection, retention_days: int) -> int:
    cutoff = time.time() - retention_days * 86400
    return db.execute("DELETE FROM events WHERE time < ?", (cutoff,)).rowcount


# What the writer sends back after each write, and last when it ends: (written, dropped).
Report = tuple[int, int]
MAX_MESSAGE = 1 << 20
RESTART_EVERY = 5.0
# Signals the writer ignores: it ends when its gateway closes the socket, not before.
IGNORED_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


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

    def record(self, event: Mapping[str, Any]) -> None:
        pending = self.pending
        if len(pending) >= self.capacity:
            self._dropped_here += 1
            return
        pending.append(tuple(map(event.get, COLUMNS)))
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
