"""The console's credentials (hagate.console.access) and the sign-in limiter, without a
server: what is stored, what works once, what expires."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hagate.console.access import ConsoleAccess, hash_password, password_matches
from hagate.console.limits import SignInLimiter
from hagate.errors import HagateError
from hagate.state import StateDir


@pytest.fixture
def access(tmp_path: Path) -> ConsoleAccess:
    return ConsoleAccess(StateDir(tmp_path))


def test_the_password_is_a_salted_scrypt_hash_in_a_0600_file(access: ConsoleAccess) -> None:
    assert not access.has_password() and not access.check_password("anything at all")
    access.set_password("a long enough secret")
    data = access.path.read_bytes()
    assert b"a long enough secret" not in data and b"scrypt$" in data
    assert stat.S_IMODE(os.stat(access.path).st_mode) == 0o600
    assert access.check_password("a long enough secret")
    assert not access.check_password("a long enough secreT")
    assert hash_password("same") != hash_password("same")  # salted
    with pytest.raises(HagateError, match="at least 10"):
        access.set_password("short")


def test_a_new_password_ends_every_session(access: ConsoleAccess) -> None:
    access.set_password("first password here")
    secret, _ = access.open_session("password")
    assert access.session(secret) is not None
    access.set_password("second password here")
    assert access.session(secret) is None


def test_links_work_once_and_only_while_live(access: ConsoleAccess) -> None:
    link = access.create_link(60, now=1000.0)
    assert access.redeem_link(link, now=1030.0)
    assert not access.redeem_link(link, now=1031.0)  # spent
    late = access.create_link(60, now=1000.0)
    assert not access.redeem_link(late, now=1061.0)  # expired
    assert not access.redeem_link("made-up", now=1000.0)
    with pytest.raises(HagateError):
        access.create_link(7200)


def test_sessions_expire_and_can_be_ended(access: ConsoleAccess) -> None:
    secret, session = access.open_session("link", now=1000.0)
    assert access.session(secret, now=1000.0 + 3600) == session
    assert access.session(secret, now=session.expires + 1) is None
    other, _ = access.open_session("password")
    access.end_session(other)
    assert access.session(other) is None
    assert secret.encode() not in access.path.read_bytes()


def test_tokens_are_stored_as_digests_and_revoked_for_good(access: ConsoleAccess) -> None:
    token = access.create_token("ha-integration")
    assert token.startswith("hgc_") and token.encode() not in access.path.read_bytes()
    assert access.token_name(token) == "ha-integration"
    assert access.token_name(token[:-1]) is None
    with pytest.raises(HagateError, match="already a token"):
        access.create_token("ha-integration")
    with pytest.raises(HagateError, match="bad token name"):
        access.create_token("no spaces please")
    access.revoke_token("ha-integration")
    assert access.token_name(token) is None
    [listed] = access.tokens()
    assert listed.revoked is not None and listed.last_used is not None


def test_a_token_with_a_lifetime_expires(access: ConsoleAccess) -> None:
    token = access.create_token("short", now=1000.0, lifetime=60)
    assert access.token_name(token, now=1059.0) == "short"
    assert access.token_name(token, now=1060.0) is None
    [listed] = access.tokens()
    assert listed.status(now=1061.0) == "expired" and listed.expires == 1060.0


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=300))
def test_no_string_is_a_token_or_a_session(tmp_path_factory, guess: str) -> None:
    access = ConsoleAccess(StateDir(tmp_path_factory.mktemp("guess")))
    access.create_token("real")
    assert access.token_name(guess) is None
    assert access.session(guess) is None


@given(st.text(max_size=60))
@settings(max_examples=40, deadline=None)
def test_a_malformed_stored_hash_never_matches(stored: str) -> None:
    assert password_matches(stored, "x") is False


def test_the_limiter_counts_per_address_and_in_total() -> None:
    limiter = SignInLimiter(window=100.0, per_address=3, in_total=5)
    for _ in range(3):
        assert limiter.retry_after("a", 0.0) == 0
        limiter.failed("a", 0.0)
    assert limiter.retry_after("a", 1.0) == pytest.approx(99.0)
    assert limiter.retry_after("b", 1.0) == 0
    limiter.failed("b", 1.0)
    limiter.failed("c", 2.0)
    assert limiter.retry_after("d", 3.0) == pytest.approx(97.0)  # five in total
    assert limiter.retry_after("a", 100.5) == 0  # the window moved on
    limiter.failed("e", 200.0)
    limiter.succeeded("e")
    assert limiter.retry_after("e", 200.0) == 0
