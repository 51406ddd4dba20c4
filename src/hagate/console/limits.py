"""Sign-in attempts, counted: a pure sliding window per address and in total.

A person mistypes a few times; a guesser tries thousands. Five failures from one address in
15 minutes, or thirty from all addresses, and sign-in answers 429 until the window moves on.
A success clears its address's count."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

WINDOW = 900.0
PER_ADDRESS = 5
IN_TOTAL = 30
MAX_ADDRESSES = 10000


@dataclass
class SignInLimiter:
    window: float = WINDOW
    per_address: int = PER_ADDRESS
    in_total: int = IN_TOTAL
    _failures: dict[str, deque[float]] = field(default_factory=dict)
    _all: deque[float] = field(default_factory=deque)

    def _trim(self, q: deque[float], now: float) -> None:
        while q and q[0] <= now - self.window:
            q.popleft()

    def retry_after(self, address: str, now: float) -> float:
        """0 when an attempt may be made now; otherwise seconds until one may."""
        self._trim(self._all, now)
        waits = []
        if len(self._all) >= self.in_total:
            waits.append(self._all[0] + self.window - now)
        q = self._failures.get(address)
        if q is not None:
            self._trim(q, now)
            if len(q) >= self.per_address:
                waits.append(q[0] + self.window - now)
        return max(waits, default=0.0)

    def failed(self, address: str, now: float) -> None:
        if address not in self._failures and len(self._failures) >= MAX_ADDRESSES:
            stale = now - self.window
            for key in [k for k, q in self._failures.items() if not q or q[-1] <= stale]:
                del self._failures[key]
            if len(self._failures) >= MAX_ADDRESSES:
                self._failures.pop(next(iter(self._failures)))
        self._failures.setdefault(address, deque()).append(now)
        self._all.append(now)

    def succeeded(self, address: str) -> None:
        self._failures.pop(address, None)
