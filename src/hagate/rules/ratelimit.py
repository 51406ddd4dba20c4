"""Rate limiting as Cloudflare does it: a phase after the custom rules.

A request that matches a rate limiting rule is counted under its characteristics (the values of
fields such as `ip.src`). The rate is Cloudflare's sliding-window estimate: the previous window's
count weighted by how much of it still overlaps the last `period` seconds, plus the current
window's count. Over `requests_per_period`, the rule acts; with a mitigation timeout the key is
blocked for that long, without one only the requests over the rate are.

Memory is bounded: at most `max_keys` counters per rule, least recently seen evicted first.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

DEFAULT_MAX_KEYS = 100_000


@dataclass
class _Counter:
    window: int  # index of the current window (time // period)
    current: int = 0
    previous: int = 0
    blocked_until: float = 0.0


@dataclass
class RateLimiter:
    period: int
    requests_per_period: int
    mitigation_timeout: int = 0
    max_keys: int = DEFAULT_MAX_KEYS
    clock: Callable[[], float] = time.monotonic
    _counters: OrderedDict[Hashable, _Counter] = field(default_factory=OrderedDict)

    def hit(self, key: Hashable, now: float | None = None) -> bool:
        """Count one request for `key`; True when it is over the limit (act on it)."""
        now = self.clock() if now is None else now
        window = int(now // self.period)
        c = self._counters.get(key)
        if c is None:
            c = _Counter(window)
            self._counters[key] = c
            if len(self._counters) > self.max_keys:
                self._counters.popitem(last=False)
        else:
            self._counters.move_to_end(key)
            if window != c.window:
                c.previous = c.current if window == c.window + 1 else 0
                c.current = 0
                c.window = window
        if now < c.blocked_until:
            return True
        c.current += 1
        elapsed = now - window * self.period
        rate = c.previous * (self.period - elapsed) / self.period + c.current
        if rate > self.requests_per_period:
            if self.mitigation_timeout:
                c.blocked_until = now + self.mitigation_timeout
            return True
        return False

    def __len__(self) -> int:
        return len(self._counters)
