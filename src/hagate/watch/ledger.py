"""The alert ledger: what was sent when (for deduplication), what waits to be sent, and where
each certificate has been used from. SQLite in the state directory, shared by every process.

Rules:
  1. `admit()` decides and queues in one transaction: an alert whose kind and subject were
     admitted within its repeat interval is not queued again, whichever process offers it.
  2. The queue holds at most `limit` alerts; admitting one more drops the oldest, and the
     drop is counted (`dropped()`), never silent.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

LEDGER_NAME = "alerts.sqlite3"
SCHEMA = """
CREATE TABLE IF NOT EXISTS sent (kind TEXT, subject TEXT, at REAL, PRIMARY KEY (kind, subject));
CREATE TABLE IF NOT EXISTS queue (id INTEGER PRIMARY KEY, data TEXT NOT NULL, created REAL);
CREATE TABLE IF NOT EXISTS places (
    sha256 TEXT, asn INTEGER, country TEXT, PRIMARY KEY (sha256, asn, country)
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


class Ledger:
    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(SCHEMA)
        path.chmod(0o600)

    def close(self) -> None:
        self.db.close()

    def admit(
        self,
        kind: str,
        subject: str,
        data: dict[str, Any],
        repeat_after: float,
        limit: int,
        now: float | None = None,
    ) -> bool:
        """Queue an alert unless the same kind and subject was admitted within
        `repeat_after`; True when queued."""
        now = time.time() if now is None else now
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute(
                "SELECT at FROM sent WHERE kind = ? AND subject = ?", (kind, subject)
            ).fetchone()
            if row is not None and now - row[0] < repeat_after:
                db.execute("COMMIT")
                return False
            db.execute(
                "INSERT INTO sent (kind, subject, at) VALUES (?, ?, ?)"
                " ON CONFLICT (kind, subject) DO UPDATE SET at = excluded.at",
                (kind, subject, now),
            )
            db.execute("INSERT INTO queue (data, created) VALUES (?, ?)", (json.dumps(data), now))
            over = db.execute("SELECT count(*) FROM queue").fetchone()[0] - limit
            if over > 0:
                db.execute(
                    "DELETE FROM queue WHERE id IN (SELECT id FROM queue ORDER BY id LIMIT ?)",
                    (over,),
                )
                self._count(db, "dropped", over)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return True

    @staticmethod
    def _count(db: sqlite3.Connection, name: str, n: int) -> None:
        db.execute(
            "INSERT INTO counters (name, value) VALUES (?, ?)"
            " ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
            (name, n),
        )

    def pending(self, limit: int = 50) -> list[tuple[int, dict[str, Any]]]:
        return [
            (row[0], json.loads(row[1]))
            for row in self.db.execute("SELECT id, data FROM queue ORDER BY id LIMIT ?", (limit,))
        ]

    def delivered(self, alert_id: int) -> None:
        self.db.execute("DELETE FROM queue WHERE id = ?", (alert_id,))

    def discard(self, alert_id: int) -> None:
        """An alert Home Assistant will never take (it answered 400): dropped, counted."""
        self.db.execute("BEGIN IMMEDIATE")
        self.db.execute("DELETE FROM queue WHERE id = ?", (alert_id,))
        self._count(self.db, "dropped", 1)
        self.db.execute("COMMIT")

    def dropped(self) -> int:
        row = self.db.execute("SELECT value FROM counters WHERE name = 'dropped'").fetchone()
        return int(row[0]) if row else 0

    def queued(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM queue").fetchone()[0])

    def place(self, sha256: str, asn: int | None, country: str | None) -> set[str] | None:
        """Record that a certificate was used from `asn` in `country`. None for the
        certificate's first use on record; otherwise what is new about this one: "asn",
        "country", both or neither."""
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            rows = db.execute(
                "SELECT asn, country FROM places WHERE sha256 = ?", (sha256,)
            ).fetchall()
            new: set[str] | None = None
            if rows:
                new = set()
                if asn is not None and asn not in {r[0] for r in rows}:
                    new.add("asn")
                if country is not None and country not in {r[1] for r in rows}:
                    new.add("country")
            db.execute(
                "INSERT OR IGNORE INTO places (sha256, asn, country) VALUES (?, ?, ?)",
                (sha256, asn, country),
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return new
