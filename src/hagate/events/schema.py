"""The event log's table and the few things both sides of the writer's socket share: the
columns, the SQLite schema and writes, and the message limits. Kept apart from the store, so
the writer process loads only this and the log line (a home server's memory is counted).
"""

from __future__ import annotations

import signal
import sqlite3
import time
from functools import cache
from itertools import chain
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from pathlib import Path

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
    "console",
)


class Event(NamedTuple):
    """One event row, its fields in the table's column order: a misspelt field is a type
    error, never a silent NULL."""

    time: float
    request_id: str | None
    client_ip: str | None
    asn: int | None
    country: str | None
    sni: str | None
    host: str | None
    method: str | None
    path: str | None
    user_agent: str | None
    cert_name: str | None
    cert_sha256: str | None
    rule: str | None
    action: str
    status: int | None
    bytes_in: int
    bytes_out: int
    duration_ms: float
    reason: str | None


COLUMNS: tuple[str, ...] = Event._fields
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
CREATE INDEX IF NOT EXISTS events_blocked ON events(time) WHERE action = 'block';
DROP INDEX IF EXISTS events_action;
DROP INDEX IF EXISTS events_asn;
DROP INDEX IF EXISTS events_cert;
DROP INDEX IF EXISTS events_path;
"""
# Every index is written for each row, and the writer's share of a request is mostly its
# indexes: time and address (every query), and the blocked rows (the reviews and suggestions
# read them; they are few, so that index costs the allowed rows nothing). The other filters
# (--asn, --cert, --path-prefix, other actions) read the period's rows by time. Inserting 500
# rows a batch, the six indexes this had cost 43 µs a row, these 26.
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


def connect(path: Path | str) -> sqlite3.Connection:
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


# The row counts an INSERT is prepared for: a batch goes in as a few of these (largest first).
# A statement per exact batch size would fill sqlite3's statement cache with up to 128
# prepared INSERTs of hundreds of rows each, tens of megabytes that a home server keeps.
STATEMENT_ROWS = (256, 64, 16, 4, 1)


def parts(count: int, sizes: tuple[int, ...] = STATEMENT_ROWS) -> list[int]:
    """`count` rows as statement sizes: e.g. 300 -> [256, 16, 16, 4, 4, 4]."""
    out = []
    for size in sizes:
        n, count = divmod(count, size)
        out += [size] * n
    return out


def write_rows(db: sqlite3.Connection, batch: list[tuple[Any, ...]]) -> bool:
    """Write `batch` in one transaction; False when SQLite stayed busy or failed through
    three tries."""
    limit = max(1, db.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // len(COLUMNS))
    sizes = tuple(s for s in STATEMENT_ROWS if s <= limit) or (1,)
    for _ in range(3):
        try:
            with db:
                db.execute("BEGIN")
                i = 0
                for size in parts(len(batch), sizes):
                    part = batch[i : i + size]
                    i += size
                    db.execute(insert_sql(size), list(chain.from_iterable(part)))
            return True
        except sqlite3.OperationalError:
            time.sleep(0.1)
    return False


def purge(db: sqlite3.Connection, retention_days: int) -> int:
    cutoff = time.time() - retention_days * 86400
    return db.execute("DELETE FROM events WHERE time < ?", (cutoff,)).rowcount


# What the writer sends back after each write, and last when it ends: (written, dropped).
Report = tuple[int, int]
MAX_MESSAGE = 1 << 20
# Signals the writer ignores: it ends when its gateway closes the socket, not before.
IGNORED_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
