"""When to renew and when to try again, as pure functions (property-tested)."""

from __future__ import annotations

import calendar

from hypothesis import given
from hypothesis import strategies as st

from hagate.acme.client import parse_retry_after
from hagate.acme.schedule import (
    BACKOFF_MAX,
    BACKOFF_START,
    JITTER_FRACTION,
    backoff,
    due,
    next_attempt,
    renewal_time,
)

times = st.floats(min_value=1e9, max_value=4e9, allow_nan=False)
lifetimes = st.floats(min_value=60, max_value=400 * 86400, allow_nan=False)


@given(times, lifetimes, st.binary(min_size=32, max_size=32))
def test_renewal_at_two_thirds_with_a_bounded_earlier_jitter(
    start: float, life: float, fp: bytes
) -> None:
    at = renewal_time(start, start + life, fp)
    assert start + life * 2 / 3 - life * JITTER_FRACTION - 1e-6 <= at <= start + life * 2 / 3 + 1e-6
    assert renewal_time(start, start + life, fp) == at  # every process computes the same


def test_jitter_spreads_certificates_issued_together() -> None:
    start, life = 1.8e9, 90 * 86400.0
    spread = {round(renewal_time(start, start + life, bytes([i]) * 32)) for i in range(50)}
    assert len(spread) > 40


def test_backoff_doubles_from_a_minute_up_to_six_hours() -> None:
    assert backoff(0) == 0
    assert [backoff(n) for n in range(1, 5)] == [BACKOFF_START * 2**i for i in range(4)]
    assert backoff(10) == BACKOFF_MAX == backoff(1000)


@given(times, st.integers(1, 60), st.one_of(st.none(), st.floats(0, 86400 * 3)))
def test_never_sooner_than_the_ca_said_nor_than_the_backoff_after_the_first(
    failed: float, failures: int, retry_after: float | None
) -> None:
    when = next_attempt(failed, failures, retry_after)
    if retry_after is not None:
        assert when >= failed + retry_after
        assert when >= failed + backoff(failures - 1)
    else:
        assert when == failed + backoff(failures)
    assert when > failed or (retry_after == 0 and failures == 1)


def test_a_first_retry_after_is_followed_exactly() -> None:
    assert next_attempt(1000.0, 1, 5) == 1005.0  # not stretched to the one-minute backoff
    assert next_attempt(1000.0, 2, 5) == 1000.0 + BACKOFF_START


def test_due_waits_for_the_backoff_and_acts_at_once_without_a_certificate() -> None:
    assert due(100.0, None, None) == 100.0
    assert due(100.0, 500.0, None) == 500.0
    assert due(100.0, 50.0, 300.0) == 300.0
    assert due(100.0, None, 90.0) == 100.0


@given(st.integers(0, 10**9))
def test_retry_after_in_seconds(seconds: int) -> None:
    assert parse_retry_after(str(seconds)) == seconds


def test_retry_after_as_an_http_date_and_garbage() -> None:
    now = 1_800_000_000.0
    when = calendar.timegm((2027, 1, 15, 8, 0, 0))
    assert parse_retry_after("Fri, 15 Jan 2027 08:00:00 GMT", now) == when - now
    assert parse_retry_after("Thu, 01 Jan 1970 00:00:00 GMT", now) == 0.0  # past: at once
    for bad in (None, "", "soon", "-5", "1.5"):
        assert parse_retry_after(bad, now) is None


@given(st.text(max_size=40))
def test_retry_after_never_raises(text: str) -> None:
    got = parse_retry_after(text, 1e9)
    assert got is None or got >= 0
