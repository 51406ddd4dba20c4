"""A TLS context for new connections that follows a certificate file on disk.

The file is looked at no more than once a second (when a connection arrives): a renewed
certificate is served by every process within that second, without a restart, and the
connections already open keep the context they started with. Until the file exists the
fallback context serves; a file that is gone or does not load keeps the current one serving.
"""

from __future__ import annotations

import os
import ssl
import time
from collections.abc import Callable
from pathlib import Path

RECHECK_EVERY = 1.0


class FollowedContext:
    def __init__(
        self, build: Callable[[Path | None], ssl.SSLContext], certificate: Path | None
    ) -> None:
        self.build = build  # a context for this certificate file; None: the fallback
        self.certificate = certificate
        self._seen: tuple[int, int, int] | None = None
        self._checked = 0.0
        self.reloads = 0
        self.context = self._load() or build(None)

    def _stamp(self) -> tuple[int, int, int] | None:
        if self.certificate is None:
            return None
        try:
            st = os.stat(self.certificate)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _load(self) -> ssl.SSLContext | None:
        self._seen = self._stamp()
        if self._seen is None:
            return None
        try:
            return self.build(self.certificate)
        except (ssl.SSLError, OSError, ValueError):
            return None

    def current(self) -> ssl.SSLContext:
        now = time.monotonic()
        if now - self._checked >= RECHECK_EVERY:
            self._checked = now
            self.refresh()
        return self.context

    def refresh(self) -> None:
        """Look at the file now: a new certificate is taken at once."""
        if self._stamp() != self._seen:
            context = self._load()
            if context is not None:
                self.context = context
                self.reloads += 1
