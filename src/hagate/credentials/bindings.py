"""Which Home Assistant credentials are bound to which certificate: one small SQLite file in
the state directory (0600), shared by every worker process.

Rules:
  1. Only digests are kept (hagate.credentials.extract), never a token or a webhook id.
  2. A credential is bound by a request that presented a valid certificate; the first
     certificate keeps it (another certificate presenting the same credential does not take it
     over).
  3. A binding not seen for EXPIRE_AFTER (Home Assistant's own refresh-token expiry, 90 days),
     with or without the certificate, no longer counts, and is deleted by `expire`.
  4. Each certificate holds at most PER_CERTIFICATE bindings: binding one more drops its
     oldest, so no certificate can fill the file.
  5. Unbinding a certificate (revoked, or `hagate cert unbind`) deletes its bindings at once:
     the next lookup in any process finds nothing, and every process forgets which bindings
     it wrote lately (UNBOUND_NAME changes), so the next request with the certificate binds
     again.
"""

from __future__ import annotations

import sqlite3
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hagate.credentials.extract import KINDS, Credential
from hagate.errors import HagateError
from hagate.state import StateDir, atomic_write, private_db

BINDINGS_NAME = "bindings.sqlite3"
UNBOUND_NAME = "bindings.unbound"  # touched by each unbind: processes forget what they noted
EXPIRE_AFTER = 90 * 86400.0
PER_CERTIFICATE = 200

SCHEMA = """
CREATE TABLE IF NOT EXISTS bindings (
    digest TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    cert_sha256 TEXT NOT NULL,
    cert_name TEXT NOT NULL,
    bound REAL NOT NULL,
    seen REAL NOT NULL,
    used REAL,
    used_ip TEXT,
    used_asn INTEGER,
    used_country TEXT
);
CREATE INDEX IF NOT EXISTS bindings_cert ON bindings(cert_sha256, seen);
"""


@dataclass(frozen=True, slots=True)
class Binding:
    digest: str
    kind: str  # how it was carried when it was bound
    cert_sha256: str
    cert_name: str
    bound: float
    seen: float  # last presented with the certificate, or used without it
    used: float | None  # last used without the certificate
    used_ip: str | None
    used_asn: int | None
    used_country: str | None

    def to_json(self) -> dict[str, object]:
        """For `cert list --json` and the console: the digest's first characters only."""
        return {
            "kind": self.kind,
            "digest": self.digest[:12],
            "bound": self.bound,
            "used": self.used,
            "used_ip": self.used_ip,
            "used_asn": self.used_asn,
            "used_country": self.used_country,
        }


def summary(held: list[Binding]) -> dict[str, Any]:
    """A certificate's credentials for `cert list` and the console: how many of each kind, and
    the last use of one without the certificate."""
    out: dict[str, Any] = {"total": len(held), **dict.fromkeys(KINDS, 0)}
    for binding in held:
        out[binding.kind] += 1
    used = [b for b in held if b.used is not None]
    last = max(used, key=lambda b: b.used or 0.0) if used else None
    out.update(
        last_used=last.used if last else None,
        last_used_ip=last.used_ip if last else None,
        last_used_asn=last.used_asn if last else None,
        last_used_country=last.used_country if last else None,
    )
    return out


class Bindings:
    def __init__(self, state: StateDir) -> None:
        self.path: Path = state / BINDINGS_NAME
        self.unbound: Path = state / UNBOUND_NAME

    def _db(self) -> AbstractContextManager[sqlite3.Connection]:
        return private_db(self.path, SCHEMA)

    def bind(
        self, credential: Credential, cert_sha256: str, cert_name: str, now: float | None = None
    ) -> bool:
        """Bind `credential` to the certificate (or note it was seen with it again); False when
        another certificate holds it."""
        now = time.time() if now is None else now
        with self._db() as db:
            db.execute("BEGIN IMMEDIATE")
            row = db.execute(
                "SELECT cert_sha256 FROM bindings WHERE digest = ? AND seen > ?",
                (credential.digest, now - EXPIRE_AFTER),
            ).fetchone()
            if row is not None and row[0] != cert_sha256:
                db.execute("COMMIT")
                return False
            db.execute(
                "INSERT INTO bindings (digest, kind, cert_sha256, cert_name, bound, seen)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(digest) DO UPDATE SET seen = excluded.seen,"
                " cert_sha256 = excluded.cert_sha256, cert_name = excluded.cert_name",
                (credential.digest, credential.kind, cert_sha256, cert_name, now, now),
            )
            db.execute(
                "DELETE FROM bindings WHERE cert_sha256 = ? AND digest NOT IN (SELECT digest"
                " FROM bindings WHERE cert_sha256 = ? ORDER BY seen DESC LIMIT ?)",
                (cert_sha256, cert_sha256, PER_CERTIFICATE),
            )
            db.execute("COMMIT")
        return True

    def find(self, digest: str, now: float | None = None) -> Binding | None:
        """The binding of a credential's digest, unless expired."""
        now = time.time() if now is None else now
        if not self.path.exists():
            return None
        with self._db() as db:
            row = db.execute(
                "SELECT * FROM bindings WHERE digest = ? AND seen > ?",
                (digest, now - EXPIRE_AFTER),
            ).fetchone()
        return Binding(*row) if row is not None else None

    def note_use(
        self,
        digest: str,
        ip: str,
        asn: int | None,
        country: str | None,
        now: float | None = None,
    ) -> None:
        """A use without the certificate: when and where from (it also keeps it from expiring)."""
        now = time.time() if now is None else now
        with self._db() as db:
            db.execute(
                "UPDATE bindings SET used = ?, seen = ?, used_ip = ?, used_asn = ?,"
                " used_country = ? WHERE digest = ?",
                (now, now, ip, asn, country, digest),
            )

    def unbind(self, cert_sha256: str, kind: str | None = None) -> int:
        """Drop the certificate's bindings (of one kind); how many."""
        if kind is not None and kind not in KINDS:
            raise HagateError(f"unknown kind {kind!r}: one of {', '.join(KINDS)}")
        if not self.path.exists():
            return 0
        atomic_write(self.unbound, f"{time.time()}\n".encode(), mode=0o600)
        with self._db() as db:
            if kind is None:
                cur = db.execute("DELETE FROM bindings WHERE cert_sha256 = ?", (cert_sha256,))
            else:
                cur = db.execute(
                    "DELETE FROM bindings WHERE cert_sha256 = ? AND kind = ?", (cert_sha256, kind)
                )
            return cur.rowcount

    def of_certificate(self, cert_sha256: str, now: float | None = None) -> list[Binding]:
        now = time.time() if now is None else now
        if not self.path.exists():
            return []
        with self._db() as db:
            rows = db.execute(
                "SELECT * FROM bindings WHERE cert_sha256 = ? AND seen > ? ORDER BY bound",
                (cert_sha256, now - EXPIRE_AFTER),
            ).fetchall()
        return [Binding(*r) for r in rows]

    def summaries(self, now: float | None = None) -> dict[str, dict[str, Any]]:
        """Per certificate (by SHA-256): `summary` of the bindings it holds."""
        return {sha256: summary(held) for sha256, held in self.by_certificate(now).items()}

    def by_certificate(self, now: float | None = None) -> dict[str, list[Binding]]:
        """Every binding that counts, by certificate (SHA-256), oldest first."""
        now = time.time() if now is None else now
        if not self.path.exists():
            return {}
        out: dict[str, list[Binding]] = {}
        with self._db() as db:
            for row in db.execute(
                "SELECT * FROM bindings WHERE seen > ? ORDER BY bound", (now - EXPIRE_AFTER,)
            ):
                binding = Binding(*row)
                out.setdefault(binding.cert_sha256, []).append(binding)
        return out

    def expire(self, now: float | None = None) -> int:
        now = time.time() if now is None else now
        if not self.path.exists():
            return 0
        with self._db() as db:
            return db.execute(
                "DELETE FROM bindings WHERE seen <= ?", (now - EXPIRE_AFTER,)
            ).rowcount
