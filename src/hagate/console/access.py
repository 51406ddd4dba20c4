"""Who may use the console: its password, one-time sign-in links, sessions and API tokens.

Rules:
  1. Nothing that lets a person in is stored in clear: the password as a scrypt hash, links,
     sessions and API tokens as SHA-256 digests. The file is the state directory's, 0600.
  2. A link works once, for minutes. A session ends at its expiry or when ended, whichever is
     first. A revoked token stays listed (with when) and never works again.
  3. Secrets are looked up by their digest, so timing cannot tell how much of a guess was
     right; the password is compared in constant time, and costs the same when none is set.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import sqlite3
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hagate.errors import HagateError
from hagate.state import StateDir, private_db

ACCESS_NAME = "console.sqlite3"
SOCKET_NAME = "console.sock"  # in the state directory's run/ folder: the gateway's way in
SESSION_TTL = 12 * 3600.0
LINK_TTL = 600.0
LINK_TTL_MAX = 3600.0
TOKEN_PREFIX = "hgc_"
MIN_PASSWORD = 10
# scrypt at 2^15 costs about 50 ms and 32 MB here: slow for a guesser, fine for a person.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS links (digest TEXT PRIMARY KEY, expires REAL NOT NULL, used REAL);
CREATE TABLE IF NOT EXISTS sessions (
    digest TEXT PRIMARY KEY, csrf TEXT NOT NULL, created REAL NOT NULL, expires REAL NOT NULL,
    via TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS admins (sha256 TEXT PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tokens (
    name TEXT PRIMARY KEY, digest TEXT NOT NULL UNIQUE, created REAL NOT NULL,
    last_used REAL, revoked REAL, expires REAL
);
"""


def console_socket_path(state: StateDir) -> Path:
    from hagate.watch.status import RUN_DIR

    return state / RUN_DIR / SOCKET_NAME


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else os.urandom(16)
    key = hashlib.scrypt(
        password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, maxmem=64 << 20
    )
    b64 = base64.b64encode
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${b64(salt).decode()}${b64(key).decode()}"


def password_matches(stored: str, password: str) -> bool:
    try:
        kind, n, r, p, salt, key = stored.split("$")
        expected = base64.b64decode(key)
        got = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=64 << 20,
            dklen=len(expected),
        )
    except (ValueError, TypeError):
        return False
    return kind == "scrypt" and hmac.compare_digest(got, expected)


def check_new_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise HagateError(f"the console password needs at least {MIN_PASSWORD} characters")


@dataclass(frozen=True)
class Session:
    digest: str
    csrf: str
    created: float
    expires: float
    via: str  # password or link


@dataclass(frozen=True)
class ApiToken:
    name: str
    created: float
    last_used: float | None
    revoked: float | None
    expires: float | None = None  # None: until revoked

    def status(self, now: float | None = None) -> str:
        if self.revoked:
            return "revoked"
        now = time.time() if now is None else now
        return "expired" if self.expires is not None and now >= self.expires else "valid"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "created": self.created,
            "last_used": self.last_used,
            "revoked": self.revoked,
            "expires": self.expires,
            "status": self.status(),
        }


class ConsoleAccess:
    """The console's credentials in the state directory (one small SQLite file)."""

    def __init__(self, state: StateDir) -> None:
        self.path: Path = state / ACCESS_NAME

    def _db(self) -> AbstractContextManager[sqlite3.Connection]:
        return private_db(self.path, SCHEMA)

    # -- the password ---------------------------------------------------------------------

    def set_password(self, password: str) -> None:
        check_new_password(password)
        stored = hash_password(password)
        with self._db() as db:
            db.execute(
                "INSERT INTO settings (key, value) VALUES ('password', ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (stored,),
            )
            # A new password ends every session that the old one (or a link) opened.
            db.execute("DELETE FROM sessions")

    def has_password(self) -> bool:
        with self._db() as db:
            row = db.execute("SELECT 1 FROM settings WHERE key = 'password'").fetchone()
        return row is not None

    def check_password(self, password: str) -> bool:
        with self._db() as db:
            row = db.execute("SELECT value FROM settings WHERE key = 'password'").fetchone()
        if row is None:
            # The same work as a real check, so timing does not say whether one is set.
            password_matches(hash_password("-"), password + "x")
            return False
        return password_matches(str(row[0]), password)

    # -- one-time sign-in links -----------------------------------------------------------

    def create_link(self, ttl: float = LINK_TTL, now: float | None = None) -> str:
        if not 5 <= ttl <= LINK_TTL_MAX:
            raise HagateError("a sign-in link lasts between 5 seconds and 1 hour")
        now = time.time() if now is None else now
        secret = secrets.token_urlsafe(32)
        with self._db() as db:
            db.execute("DELETE FROM links WHERE expires < ?", (now - 86400,))
            db.execute(
                "INSERT INTO links (digest, expires) VALUES (?, ?)", (digest(secret), now + ttl)
            )
        return secret

    def redeem_link(self, secret: str, now: float | None = None) -> bool:
        """True once for a live link; it is spent by this call."""
        now = time.time() if now is None else now
        with self._db() as db:
            cur = db.execute(
                "UPDATE links SET used = ? WHERE digest = ? AND used IS NULL AND expires >= ?",
                (now, digest(secret), now),
            )
            return cur.rowcount == 1

    # -- sessions -------------------------------------------------------------------------

    def open_session(self, via: str, now: float | None = None) -> tuple[str, Session]:
        now = time.time() if now is None else now
        secret = secrets.token_urlsafe(32)
        session = Session(digest(secret), secrets.token_urlsafe(24), now, now + SESSION_TTL, via)
        with self._db() as db:
            db.execute("DELETE FROM sessions WHERE expires < ?", (now,))
            db.execute(
                "INSERT INTO sessions (digest, csrf, created, expires, via) VALUES (?, ?, ?, ?, ?)",
                (session.digest, session.csrf, session.created, session.expires, via),
            )
        return secret, session

    def session(self, secret: str, now: float | None = None) -> Session | None:
        now = time.time() if now is None else now
        with self._db() as db:
            row = db.execute(
                "SELECT digest, csrf, created, expires, via FROM sessions"
                " WHERE digest = ? AND expires >= ?",
                (digest(secret), now),
            ).fetchone()
        return Session(*row) if row else None

    def end_session(self, secret: str) -> None:
        with self._db() as db:
            db.execute("DELETE FROM sessions WHERE digest = ?", (digest(secret),))

    def end_all_sessions(self) -> int:
        with self._db() as db:
            return db.execute("DELETE FROM sessions").rowcount

    # -- certificates marked as admin (the console through the gateway) -----------------

    def set_admin(self, sha256: str, name: str, admin: bool) -> None:
        with self._db() as db:
            if admin:
                db.execute(
                    "INSERT INTO admins (sha256, name) VALUES (?, ?)"
                    " ON CONFLICT (sha256) DO UPDATE SET name = excluded.name",
                    (sha256, name),
                )
            else:
                db.execute("DELETE FROM admins WHERE sha256 = ?", (sha256,))

    def admins(self) -> dict[str, str]:
        """The certificates marked as admin: SHA-256 -> name."""
        if not self.path.exists():
            return {}
        with self._db() as db:
            return {str(s): str(n) for s, n in db.execute("SELECT sha256, name FROM admins")}

    def certificate_csrf(self, sha256: str) -> str:
        """The CSRF token of pages served to an admin certificate (no session there): an HMAC
        of the certificate under a key kept in this file."""
        with self._db() as db:
            row = db.execute("SELECT value FROM settings WHERE key = 'csrf_key'").fetchone()
            if row is None:
                key = secrets.token_hex(32)
                db.execute(
                    "INSERT OR IGNORE INTO settings (key, value) VALUES ('csrf_key', ?)", (key,)
                )
                row = db.execute("SELECT value FROM settings WHERE key = 'csrf_key'").fetchone()
        return hmac.new(bytes.fromhex(str(row[0])), sha256.encode(), "sha256").hexdigest()

    # -- API tokens -----------------------------------------------------------------------

    def create_token(
        self, name: str, now: float | None = None, lifetime: float | None = None
    ) -> str:
        """A new token named `name`, valid until revoked, or for `lifetime` seconds."""
        if not name or len(name) > 64 or not all(c.isalnum() or c in "-_." for c in name):
            raise HagateError(
                f"bad token name {name!r}: letters, digits, '-', '_' and '.', at most 64"
            )
        now = time.time() if now is None else now
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self._db() as db:
            try:
                db.execute(
                    "INSERT INTO tokens (name, digest, created, expires) VALUES (?, ?, ?, ?)",
                    (name, digest(secret), now, None if lifetime is None else now + lifetime),
                )
            except sqlite3.IntegrityError:
                raise HagateError(
                    f"there is already a token named {name!r}: revoke it first, or pick another"
                ) from None
        return secret

    def tokens(self) -> list[ApiToken]:
        with self._db() as db:
            rows = db.execute(
                "SELECT name, created, last_used, revoked, expires FROM tokens ORDER BY created"
            ).fetchall()
        return [ApiToken(*r) for r in rows]

    def revoke_token(self, name: str, now: float | None = None) -> None:
        now = time.time() if now is None else now
        with self._db() as db:
            cur = db.execute(
                "UPDATE tokens SET revoked = ? WHERE name = ? AND revoked IS NULL", (now, name)
            )
            if cur.rowcount == 0:
                known = db.execute("SELECT 1 FROM tokens WHERE name = ?", (name,)).fetchone()
                raise HagateError(
                    f"token {name!r} is already revoked"
                    if known
                    else f"there is no token named {name!r} (hagate console token list)"
                )

    def token_name(self, secret: str, now: float | None = None) -> str | None:
        """The name of a valid token, noting its use; None for anything else."""
        if not secret.startswith(TOKEN_PREFIX) or len(secret) > 100:
            return None
        now = time.time() if now is None else now
        with self._db() as db:
            row = db.execute(
                "SELECT name FROM tokens WHERE digest = ? AND revoked IS NULL"
                " AND (expires IS NULL OR expires > ?)",
                (digest(secret), now),
            ).fetchone()
            if row is None:
                return None
            db.execute("UPDATE tokens SET last_used = ? WHERE name = ?", (now, row[0]))
        return str(row[0])
