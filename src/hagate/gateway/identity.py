"""Who is on the other end of a connection: their client certificate, checked per request.

The certificate itself is parsed once per connection. Whether it is still good (not revoked,
not expired, still in the inventory) is asked again on every request against the live
inventory, which is re-read whenever its file changes: `hagate cert revoke` takes effect on
the next request, also on keep-alive connections, without a restart.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509

from hagate.pki.authority import CertRecord, read_inventory
from hagate.pki.certs import sha256_hex
from hagate.rules.request import certificate_fields

P = "cf.tls_client_auth."


class Inventory:
    """The issued-certificate inventory by SHA-256, reloaded when the file changes.

    The file is looked at (one stat) at most once per event-loop turn: every request handled
    in a turn arrived before the turn began, so a request sent after `hagate cert revoke`
    finished is always judged against the new inventory. Outside an event loop, every lookup
    looks at the file.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._by_sha: dict[str, CertRecord] = {}
        self._fresh = False  # the file was looked at in this event-loop turn

    def _stale(self) -> None:
        self._fresh = False

    def lookup(self, sha256: str) -> CertRecord | None:
        if not self._fresh:
            self._refresh()
        return self._by_sha.get(sha256)

    def holder(self, sha256: str) -> str | None:
        """The certificate's name while it is valid (not revoked, in date), else None."""
        record = self.lookup(sha256)
        return record.name if record is not None and _valid(record) else None

    def valid_names(self) -> list[str]:
        if not self._fresh:
            self._refresh()
        return sorted({r.name for r in self._by_sha.values() if _valid(r)})

    def _refresh(self) -> None:
        try:
            asyncio.get_running_loop().call_soon(self._stale)
            self._fresh = True
        except RuntimeError:
            pass  # no loop: look every time
        try:
            st = os.stat(self.path)
            stamp = (st.st_mtime_ns, st.st_ino)
        except FileNotFoundError:
            stamp = (0, 0)
        if stamp != self._stamp:
            try:
                records = read_inventory(self.path)
            except Exception:  # a damaged file: keep the last good view, never crash a request
                records = None
            if records is not None:
                self._by_sha = {r.sha256: r for r in records}
                self._stamp = stamp


def _valid(record: CertRecord) -> bool:
    now = time.time()
    return (
        not record.revoked and record.not_before.timestamp() <= now < record.not_after.timestamp()
    )


@dataclass
class CertState:
    """One request's view of the client certificate."""

    fields: dict[str, Any]
    name: str | None
    sha256: str | None
    problem: str | None  # None when verified; otherwise why not, in user terms
    standing: str = "valid"  # or: none, unknown, revoked, expired, not-yet-valid

    @property
    def verified(self) -> bool:
        return bool(self.fields.get(P + "cert_verified"))


NO_CERT = CertState({}, None, None, "no client certificate was presented", "none")


class ClientCertificate:
    """A connection's client certificate, parsed once (see `client_certificate`)."""

    def __init__(self, der: bytes, issuer: x509.Certificate) -> None:
        self.cert = x509.load_der_x509_certificate(der)
        self.sha256 = sha256_hex(self.cert)
        self.issuer = issuer
        self._fields = certificate_fields(self.cert, verified=True, revoked=False, issuer=issuer)
        self._not_before = self.cert.not_valid_before_utc.timestamp()
        self._not_after = self.cert.not_valid_after_utc.timestamp()
        # The last answer: (inventory record it was made from, valid from, valid until, state).
        self._last: tuple[CertRecord | None, float, float, CertState] | None = None

    def state(self, inventory: Inventory, now: dt.datetime | None = None) -> CertState:
        """The certificate's standing now. The answer only changes when the inventory record
        changes (revoked, removed) or the clock crosses not-before or not-after, so it is
        reused until one of those happens."""
        record = inventory.lookup(self.sha256)
        t = now.timestamp() if now is not None else time.time()
        last = self._last
        if last is not None and last[0] is record and last[1] <= t < last[2]:
            return last[3]
        if t < self._not_before:
            window = (-math.inf, self._not_before)
        elif t >= self._not_after:
            window = (self._not_after, math.inf)
        else:
            window = (self._not_before, self._not_after)
        state = self._state(record, dt.datetime.fromtimestamp(t, dt.UTC))
        self._last = (record, window[0], window[1], state)
        return state

    def _state(self, record: CertRecord | None, now: dt.datetime) -> CertState:
        fields = dict(self._fields)
        name = record.name if record else self.cert.subject.rfc4514_string()
        problem: str | None = None
        standing = "valid"
        if record is None:
            problem, standing = "this certificate is not in hagate's inventory", "unknown"
        elif record.revoked:
            problem, standing = f"the certificate '{record.name}' has been revoked", "revoked"
        elif now >= self.cert.not_valid_after_utc:
            day = self.cert.not_valid_after_utc.date().isoformat()
            problem, standing = f"the certificate '{record.name}' expired on {day}", "expired"
        elif now < self.cert.not_valid_before_utc:
            problem = f"the certificate '{record.name}' is not valid yet"
            standing = "not-yet-valid"
        fields[P + "cert_verified"] = problem is None
        fields[P + "cert_revoked"] = standing == "revoked"
        return CertState(fields, name, self.sha256, problem, standing)


@functools.lru_cache(maxsize=1024)
def client_certificate(der: bytes, issuer: x509.Certificate) -> ClientCertificate:
    """The parsed certificate for `der`: a household's devices reconnect all day, and parsing
    and formatting a certificate costs more than the rest of a small request."""
    return ClientCertificate(der, issuer)
