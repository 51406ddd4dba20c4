"""Pending enrolments in the state directory (`enrol/`), shared by `hagate cert enrol` and
every gateway process.

Rules:
  1. A token is 192 random bits, shown once; only its SHA-256 is stored. It is bound to one
     certificate name and expires after its TTL.
  2. The files a device may download (the profile, the bundles) are built when the link is
     made, encrypted with the bundle password that only the person holds, and kept 0600 in
     `enrol/<digest>/` until the first download or the expiry: then they are deleted.
  3. Taking a download is read-modify-write under the state lock: two devices racing with
     one link (or two workers) get one download between them.
  4. First use of a certificate is one small file per certificate, written once.
  5. Misses (wrong, used or expired tokens) are counted per source in one file for every
     worker, so the limit is the same whichever worker a request lands on.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hagate.enrol.answer import MissLimiter
from hagate.state import StateDir, atomic_write

ENROL_DIR = "enrol"
PENDING = "pending.json"
FIRST_USE = "first-use"
LAST_USE = "last-use"
MISSES = "misses.json"
TOKEN_BYTES = 24
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{32}")
FILES = ("mobileconfig", "p12", "legacy.p12")


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


@dataclass
class Enrolment:
    digest: str
    name: str
    device: str | None  # --device, or None for the user agent's say
    created: float
    expires: float
    cert_sha256: str
    server_sha256: str | None  # shown on the page while the server certificate is hagate's
    used: float | None = None
    downloaded: bool = False  # used by its download (not superseded by a newer link)

    def live(self, now: float) -> bool:
        return self.used is None and now < self.expires


class EnrolmentStore:
    def __init__(self, state: StateDir) -> None:
        self.state = state
        self.dir = state.path / ENROL_DIR

    def _load(self) -> list[Enrolment]:
        try:
            raw = json.loads((self.dir / PENDING).read_text())
        except (FileNotFoundError, ValueError):
            return []
        out = []
        for item in raw if isinstance(raw, list) else []:
            with contextlib.suppress(TypeError):
                out.append(Enrolment(**item))
        return out

    def _save(self, items: list[Enrolment]) -> None:
        data = json.dumps([asdict(e) for e in items], indent=2).encode()
        atomic_write(self.dir / PENDING, data, mode=0o600)

    def _drop_files(self, item: Enrolment) -> None:
        shutil.rmtree(self.dir / item.digest, ignore_errors=True)

    def _prune(self, items: list[Enrolment], now: float) -> list[Enrolment]:
        """Forget links that expired or were used a day ago; their files go at once."""
        keep = []
        for item in items:
            if not item.live(now):
                self._drop_files(item)
            if (item.used or item.expires) > now - 86400:
                keep.append(item)
        return keep

    def create(
        self,
        name: str,
        ttl: float,
        device: str | None,
        cert_sha256: str,
        server_sha256: str | None,
        files: dict[str, bytes],
    ) -> tuple[str, Enrolment]:
        """A new link for `name`: (the token, shown once, and its record). Earlier live links
        for the same name stop working."""
        token = secrets.token_urlsafe(TOKEN_BYTES)
        now = time.time()
        item = Enrolment(digest(token), name, device, now, now + ttl, cert_sha256, server_sha256)
        with self.state.lock():
            self.dir.mkdir(mode=0o700, exist_ok=True)
            items = self._prune(self._load(), now)
            for other in items:
                if other.name == name and other.live(now):
                    other.used = now  # superseded
                    self._drop_files(other)
            folder = self.dir / item.digest
            folder.mkdir(mode=0o700)
            for kind, data in files.items():
                atomic_write(folder / kind, data, mode=0o600)
            items.append(item)
            self._save(items)
        return token, item

    def _match(self, token: str, keep: Callable[[Enrolment], bool]) -> Enrolment | None:
        """The enrolment of `token` that `keep` accepts, or None."""
        if not TOKEN_PATTERN.fullmatch(token):
            return None
        wanted = digest(token)
        for item in self._load():
            if secrets.compare_digest(item.digest, wanted) and keep(item):
                return item
        return None

    def find(self, token: str, now: float | None = None) -> Enrolment | None:
        """The live enrolment for `token`, or None (wrong, used or expired: all look alike)."""
        when = time.time() if now is None else now
        return self._match(token, lambda item: item.live(when))

    def find_downloaded(self, token: str) -> Enrolment | None:
        """The enrolment whose file `token` delivered (kept a day), or None."""
        return self._match(token, lambda item: item.downloaded)

    def take(self, token: str, kind: str) -> tuple[Enrolment, bytes] | None:
        """The file `kind` of a live enrolment, which is then used up; None otherwise."""
        if kind not in FILES or not TOKEN_PATTERN.fullmatch(token):
            return None
        wanted = digest(token)
        with self.state.lock():
            now = time.time()
            items = self._load()
            for item in items:
                if secrets.compare_digest(item.digest, wanted) and item.live(now):
                    try:
                        data = (self.dir / item.digest / kind).read_bytes()
                    except FileNotFoundError:
                        return None
                    item.used = now
                    item.downloaded = True
                    self._drop_files(item)
                    self._save(self._prune(items, now))
                    return item, data
        return None

    def pending(self) -> list[Enrolment]:
        return self._load()

    def status(self, token_digest: str) -> Enrolment | None:
        return next((e for e in self._load() if e.digest == token_digest), None)

    # -- misses, shared by every worker ---------------------------------------------------

    def _limiter(self) -> MissLimiter:
        limiter = MissLimiter()
        try:
            raw = json.loads((self.dir / MISSES).read_text())
        except (FileNotFoundError, ValueError):
            return limiter
        if isinstance(raw, dict):
            for ip, times in raw.items():
                if isinstance(times, list):
                    limiter.misses[str(ip)] = [
                        float(t) for t in times if isinstance(t, int | float)
                    ]
        return limiter

    def blocked(self, ip: str) -> bool:
        return self._limiter().blocked(ip, time.time())

    def miss(self, ip: str) -> None:
        with self.state.lock():
            self.dir.mkdir(mode=0o700, exist_ok=True)
            limiter = self._limiter()
            now = time.time()
            limiter.miss(ip, now)
            limiter.prune(now)
            atomic_write(self.dir / MISSES, json.dumps(limiter.misses).encode(), mode=0o600)

    # -- first use ------------------------------------------------------------------------

    def first_use_path(self, cert_sha256: str) -> Path:
        return self.dir / FIRST_USE / f"{cert_sha256}.json"

    def record_first_use(self, cert_sha256: str, facts: dict[str, Any]) -> bool:
        """Write the first use of a certificate unless it is known; True when written."""
        path = self.first_use_path(cert_sha256)
        if path.exists():
            return False
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            atomic_write(path, json.dumps(facts).encode(), mode=0o600)
        except OSError:
            return False  # a full disk must not break a request; a restart tries again
        return True

    def last_use_path(self, cert_sha256: str) -> Path:
        return self.dir / LAST_USE / f"{cert_sha256}.json"

    def record_use(self, cert_sha256: str, facts: dict[str, Any]) -> None:
        """The first use on record; a later one as the record's modification time, and its
        facts (when, from where, with what) as the last use."""
        if not self.record_first_use(cert_sha256, facts):
            with contextlib.suppress(OSError):
                os.utime(self.first_use_path(cert_sha256))
                path = self.last_use_path(cert_sha256)
                path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                atomic_write(path, json.dumps(facts).encode(), mode=0o600)

    def first_use(self, cert_sha256: str) -> dict[str, Any] | None:
        return self._facts(self.first_use_path(cert_sha256))

    def last_use(self, cert_sha256: str) -> dict[str, Any] | None:
        """The last use on record after the first (noted at most hourly), or None."""
        return self._facts(self.last_use_path(cert_sha256))

    @staticmethod
    def _facts(path: Path) -> dict[str, Any] | None:
        try:
            data = json.loads(path.read_text())
        except (FileNotFoundError, ValueError):
            return None
        return data if isinstance(data, dict) else None
