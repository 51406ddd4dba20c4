"""The credentials a request carries, read without trusting them: Home Assistant's access
tokens (JWTs whose `iss` is the login's refresh-token id), refresh tokens in the /auth/token
form and answer, webhook ids, a websocket's auth message. Anything else is None, never an
error, and nothing is ever found that the request did not carry."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import uuid
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from hagate.credentials import extract
from hagate.credentials.extract import (
    ACCESS_TOKEN,
    REFRESH_TOKEN,
    WEBHOOK,
    WEBSOCKET,
    Credential,
    digest,
)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(claims: dict[str, Any], key: bytes = b"k", alg: str = "HS256") -> str:
    """A token shaped as Home Assistant signs them (homeassistant/auth, PyJWT HS256)."""
    head = b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    if alg == "none":
        return f"{head}.{body}."
    signature = hmac.new(key, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(signature)}"


LOGIN = uuid.uuid4().hex
TOKEN = jwt({"iss": LOGIN, "iat": 1_700_000_000, "exp": 1_700_001_800})
REFRESH = secrets.token_hex(64)
HOOK = secrets.token_hex()


def test_an_access_token_is_its_login() -> None:
    found = extract.access_token(f"Bearer {TOKEN}")
    assert found == Credential(ACCESS_TOKEN, digest("login", LOGIN))
    assert extract.access_token(f"bearer {TOKEN}") is None  # Home Assistant takes "Bearer" only
    other = jwt({"iss": LOGIN, "iat": 1_700_009_000}, key=b"another key")
    assert extract.access_token(f"Bearer {other}") == found  # a later token of the same login
    assert extract.access_token(f"Bearer {jwt({'iss': uuid.uuid4().hex})}") != found


def test_what_is_not_an_access_token_is_none() -> None:
    for header in (
        None,
        "",
        "Bearer",
        "Bearer ",
        f"Basic {TOKEN}",
        f"Bearer  {TOKEN}",
        f"Bearer {TOKEN} x",
        f"Bearer {TOKEN}.x",
        "Bearer " + TOKEN + "A" * 5000,
        f"Bearer {jwt({'iss': 'not-a-refresh-token-id'})}",
        f"Bearer {jwt({'iss': LOGIN.upper()})}",
        f"Bearer {jwt({'sub': LOGIN})}",
        f"Bearer {jwt({'iss': LOGIN}, alg='none')}",  # no signature: not what HA issues
        "Bearer a.%%%.c",
        f"Bearer x.{b64(b'[1, 2]')}.y",
        f"Bearer x.{b64(b'{' * 100000)}.y",
    ):
        assert extract.access_token(header) is None, header


def test_a_websocket_auth_message_is_the_same_login() -> None:
    message = json.dumps({"type": "auth", "access_token": TOKEN}).encode()
    found = extract.websocket_auth(message)
    assert found == Credential(WEBSOCKET, digest("login", LOGIN))
    assert found.digest == extract.access_token(f"Bearer {TOKEN}").digest  # type: ignore[union-attr]
    for other in (
        {"type": "auth", "api_password": "x"},
        {"type": "ping"},
        {"type": "auth", "access_token": 5},
        [TOKEN],
    ):
        assert extract.websocket_auth(json.dumps(other).encode()) is None
    assert extract.websocket_auth(b"\xff\xfe") is None
    assert extract.websocket_auth(b"[" * 100000) is None


def test_refresh_tokens_in_the_form_and_in_the_answer() -> None:
    form = f"grant_type=refresh_token&refresh_token={REFRESH}&client_id=https%3A%2F%2Fx%2F"
    assert extract.refresh_token_in_form(form.encode()) == Credential(
        REFRESH_TOKEN, digest("refresh", REFRESH)
    )
    for bad in (
        f"grant_type=authorization_code&code={REFRESH}",
        f"grant_type=refresh_token&refresh_token={REFRESH}&refresh_token={REFRESH}",
        f"grant_type=refresh_token&refresh_token={REFRESH[:-1]}",
        f"grant_type=refresh_token&refresh_token={REFRESH}&" + "a=b&" * 20,
        "grant_type=refresh_token&refresh_token=" + REFRESH + "x" * 9000,
        "%%%",
    ):
        assert extract.refresh_token_in_form(bad.encode()) is None, bad
    assert extract.refresh_token_in_form(b"\xff" * 10) is None
    answer = json.dumps({"access_token": TOKEN, "refresh_token": REFRESH, "token_type": "Bearer"})
    assert extract.tokens_in_answer(answer.encode()) == [
        Credential(REFRESH_TOKEN, digest("refresh", REFRESH)),
        Credential(ACCESS_TOKEN, digest("login", LOGIN)),
    ]
    refreshed = json.dumps({"access_token": TOKEN, "expires_in": 1800})  # no new refresh token
    assert extract.tokens_in_answer(refreshed.encode()) == [
        Credential(ACCESS_TOKEN, digest("login", LOGIN))
    ]
    assert extract.tokens_in_answer(b"<html>") == []


def test_webhook_ids() -> None:
    assert extract.webhook(f"/api/webhook/{HOOK}") == Credential(WEBHOOK, digest("webhook", HOOK))
    for path in (
        "/api/webhook/",
        f"/api/webhook/{HOOK}/x",
        f"/api/webhooks/{HOOK}",
        "/api/",
        "/api/webhook/a b",
    ):
        assert extract.webhook(path) is None, path


def test_the_namespaces_keep_kinds_apart() -> None:
    assert digest("login", LOGIN) != digest("webhook", LOGIN) != digest("refresh", LOGIN)


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=300), st.binary(max_size=300), st.text(max_size=200))
def test_never_an_error_and_never_a_value_not_carried(header: str, body: bytes, path: str) -> None:
    found = extract.access_token(header)
    if found is not None:
        payload = header.split(".")[1]
        claims = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        assert found.digest in {digest("login", x) for x in re.findall(rb"[0-9a-f]{32}", claims)}
    form = extract.refresh_token_in_form(body)
    if form is not None:
        assert form.digest in {
            digest("refresh", x.decode()) for x in re.findall(rb"[0-9a-f]{128}", body)
        }
    hook = extract.webhook(path)
    if hook is not None:
        assert hook.digest == digest("webhook", path.removeprefix("/api/webhook/"))
    extract.websocket_auth(body)
    extract.tokens_in_answer(body)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from([TOKEN, f"Bearer {TOKEN}"]),
    st.integers(0, 200),
    st.binary(min_size=1, max_size=3),
)
def test_a_token_with_any_byte_changed_is_its_login_or_nothing(
    token: str, at: int, junk: bytes
) -> None:
    header = token if token.startswith("Bearer") else f"Bearer {token}"
    at = min(at, len(header) - 1)
    mangled = header[:at] + junk.decode("latin-1") + header[at + 1 :]
    found = extract.access_token(mangled)
    assert found is None or found.kind == ACCESS_TOKEN


def test_a_signed_path_names_the_login_that_signed_it() -> None:
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    login = "c" * 32
    sig = f"{b64(b'{}')}.{b64(json.dumps({'iss': login, 'path': '/x'}).encode())}.{b64(b's')}"
    expected = extract.Credential(extract.ACCESS_TOKEN, extract.digest("login", login))
    assert extract.signed_path(f"width=3&authSig={sig}") == expected
    assert extract.signed_path(f"authSig={sig}&authSig=x.y.z") == expected  # HA reads the first
    assert extract.signed_path(f"authSig=x.y.z&authSig={sig}") is None
    assert extract.signed_path(f"xauthSig={sig}") is None
    assert extract.signed_path("") is None and extract.signed_path("authSig") is None
