"""When to renew and when to try again: pure functions of times, tested without a CA.

Rules:
  1. A certificate is renewed at two thirds of its lifetime, a little earlier by a jitter
     drawn from its own fingerprint: every process computes the same time for the same
     certificate, and many homes given certificates at the same moment spread out.
  2. After a failure the next attempt waits `BACKOFF_START` doubling per failure up to
     `BACKOFF_MAX`. A `Retry-After` from the CA is never cut short; a CA that keeps asking
     for short waits still gets the exponential backoff from its second refusal on.
"""

from __future__ import annotations

import hashlib

BACKOFF_START = 60.0
BACKOFF_MAX = 6 * 3600.0
JITTER_FRACTION = 1 / 30  # of the lifetime: three days of a 90-day certificate


def renewal_time(not_before: float, not_after: float, fingerprint: bytes) -> float:
    lifetime = max(0.0, not_after - not_before)
    unit = int.from_bytes(hashlib.sha256(fingerprint).digest()[:8], "big") / 2**64
    return not_before + lifetime * 2 / 3 - lifetime * JITTER_FRACTION * unit


def backoff(failures: int) -> float:
    """The wait after `failures` failures in a row (0 after none)."""
    if failures <= 0:
        return 0.0
    return min(BACKOFF_MAX, BACKOFF_START * 2.0 ** min(failures - 1, 32))


def next_attempt(failed_at: float, failures: int, retry_after: float | None) -> float:
    """The earliest time to ask the CA again after the `failures`-th failure in a row."""
    wait = backoff(failures)
    if retry_after is not None:
        wait = max(retry_after, backoff(failures - 1))
    return failed_at + wait


def due(now: float, renew_at: float | None, not_before: float | None) -> float:
    """When to act next: `renew_at` (None: no certificate yet, so now), but never before
    `not_before` (a backoff)."""
    when = now if renew_at is None else renew_at
    if not_before is not None:
        when = max(when, not_before)
    return when
