"""The gateway's side of the bindings: what one worker process notes and asks, per request.

Rules:
  1. Binding happens only for a request whose certificate the gateway has just verified, and
     is written off the event loop, at most once per REBIND_EVERY for the same credential and
     certificate (the binding's `seen` keeps it from expiring; 90 days need no more), or
     again after an unbind anywhere.
  2. A lookup finds a binding only while the certificate that holds it is valid in the live
     inventory (`holder`): a revoked or expired certificate's bindings stop counting at once,
     in every process, before anything deletes them.
  3. A use without the certificate is noted (when, where from) off the event loop, at most once
     per USE_NOTE_EVERY per credential, and never with the credential's value.
  4. The rule fields (`hagate.credential.*`) are made here, from the credential and its binding.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from hagate.credentials.bindings import Binding, Bindings
from hagate.credentials.extract import Credential
from hagate.rules.types import to_bytes_str

BOUND = "hagate.credential.bound"
CERT_NAME = "hagate.credential.cert_name"
KIND = "hagate.credential.kind"


REBIND_EVERY = 3600.0
EXPIRE_EVERY = 86400.0  # bindings unseen for 90 days are deleted this often (and at start)
USE_NOTE_EVERY = 60.0
REMEMBER = 4096  # throttle entries kept per process before they are forgotten


@dataclass(frozen=True, slots=True)
class Found:
    """A credential a request carried without a certificate, and what it is bound to."""

    credential: Credential
    binding: Binding | None  # None: not bound to a valid certificate
    cert_name: str = ""  # the holder's name in the inventory now

    @property
    def bound(self) -> bool:
        return self.binding is not None

    def fields(self) -> dict[str, Any]:
        return {
            BOUND: self.bound,
            CERT_NAME: to_bytes_str(self.cert_name),
            KIND: to_bytes_str(self.credential.kind),
        }

    def words(self) -> str:
        """For the event: the kind, the digest's first characters, and the certificate."""
        short = self.credential.digest[:8]
        if self.binding is None:
            return f"{self.credential.kind} {short} is not bound to a valid certificate"
        return f"{self.credential.kind} {short} bound to the certificate '{self.cert_name}'"


def candidate_fields(kind: str, names: Iterable[str]) -> list[dict[str, Any]]:
    """The fields a bound credential of `kind` would have, for each certificate name: how the
    rules are asked whether a websocket may wait for its first message."""
    return [
        {BOUND: True, CERT_NAME: to_bytes_str(name), KIND: to_bytes_str(kind)} for name in names
    ]


class Binder:
    """One process's bindings: `holder(sha256)` names a certificate while it is valid, and
    `valid_names()` lists the valid certificates' names (both from the live inventory)."""

    def __init__(
        self,
        bindings: Bindings,
        holder: Callable[[str], str | None],
        valid_names: Callable[[], Iterable[str]],
    ) -> None:
        self.bindings = bindings
        self.holder = holder
        self.valid_names = valid_names
        self._bound: dict[str, tuple[str, float]] = {}  # digest -> (certificate, when noted)
        self._used: dict[str, float] = {}  # digest -> when a use was last noted
        self._unbound: float | None = None  # the unbind marker's mtime, looked at each second
        self._looked = -math.inf
        self._expired = -math.inf  # when this process last deleted expired bindings

    def seen_with(self, credentials: Iterable[Credential], sha256: str, name: str) -> None:
        """`credentials` came with the valid certificate `sha256`: bind them (off the loop)."""
        now = time.monotonic()
        if now - self._looked >= 1.0:
            self._looked = now
            try:
                stamp: float | None = os.stat(self.bindings.unbound).st_mtime
            except OSError:
                stamp = None
            if stamp != self._unbound:  # an unbind somewhere: write again what comes
                self._unbound = stamp
                self._bound.clear()
        fresh = []
        for credential in credentials:
            last = self._bound.get(credential.digest)
            if last is not None and last[0] == sha256 and now - last[1] < REBIND_EVERY:
                continue
            if len(self._bound) >= REMEMBER:
                self._bound.clear()
            self._bound[credential.digest] = (sha256, now)
            fresh.append(credential)
        if fresh:
            asyncio.get_running_loop().run_in_executor(None, self._bind, fresh, sha256, name)

    def _bind(self, credentials: list[Credential], sha256: str, name: str) -> None:
        for credential in credentials:
            self.bindings.bind(credential, sha256, name)
        now = time.monotonic()
        if now - self._expired >= EXPIRE_EVERY:
            self._expired = now
            self.bindings.expire()

    async def find(self, credential: Credential) -> Found:
        binding = await asyncio.to_thread(self.bindings.find, credential.digest)
        name = self.holder(binding.cert_sha256) if binding is not None else None
        if binding is None or name is None:
            return Found(credential, None)
        return Found(credential, binding, name)

    def used(self, found: Found, ip: str, asn: int | None, country: str | None) -> None:
        """A bound credential let a request in without its certificate: note when and where."""
        digest = found.credential.digest
        now = time.monotonic()
        last = self._used.get(digest)
        if last is not None and now - last < USE_NOTE_EVERY:
            return
        if len(self._used) >= REMEMBER:
            self._used.clear()
        self._used[digest] = now
        asyncio.get_running_loop().run_in_executor(
            None, self.bindings.note_use, digest, ip, asn, country
        )
