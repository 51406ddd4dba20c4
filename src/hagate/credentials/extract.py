"""The Home Assistant credentials a request carries, read without trusting them.

Rules:
  1. Pure: bytes and strings in, an identifier or None out; no I/O, no asyncio. Anything
     malformed, oversized or of another shape is None, never an exception.
  2. Only what Home Assistant itself issues is recognised: an access token is a JWT whose
     payload's `iss` is the id of the refresh token it came from (homeassistant/auth:
     `uuid4().hex`, 32 hex digits), and so is a signed path's `authSig`; a refresh token is
     `token_hex(64)` (128 hex digits); a webhook id is what follows `/api/webhook/` (the
     companion app's is `token_hex()`).
  3. The JWT's signature is not checked (Home Assistant holds the key and checks it): what is
     bound is the refresh-token id that the request claims, and only a request that also
     presents the certificate can make a binding.
  4. What is kept is a digest (`digest`), never the value: of the refresh-token id for an
     access token (every access token of one login has the same), of the refresh token, of
     the webhook id.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qs, unquote

ACCESS_TOKEN: Final = "access_token"
REFRESH_TOKEN: Final = "refresh_token"
WEBHOOK: Final = "webhook"
WEBSOCKET: Final = "websocket"
KINDS: Final = (ACCESS_TOKEN, REFRESH_TOKEN, WEBHOOK, WEBSOCKET)

MAX_TOKEN = 4096  # an access token is about 180 characters; anything past this is not one
MAX_FORM = 8192  # the /auth/token form: grant_type, refresh_token (128), client_id
MAX_JSON = 65536  # a token response or a websocket's first message
WEBHOOK_PREFIX = "/api/webhook/"

_REFRESH_ID = re.compile(r"[0-9a-f]{32}")
_REFRESH_TOKEN = re.compile(r"[0-9a-f]{128}")
_WEBHOOK_ID = re.compile(r"[A-Za-z0-9_\-]{1,256}")
_B64URL = re.compile(r"[A-Za-z0-9_\-]+")


@dataclass(frozen=True, slots=True)
class Credential:
    """A credential as a request carried it: `kind` says how (one of KINDS), `digest` is what
    a binding keeps. An access token and a websocket's token have the same digest when they
    come from the same login (the refresh-token id), so either finds the other's binding."""

    kind: str
    digest: str


def digest(namespace: str, value: str) -> str:
    """SHA-256 of an identifier in its namespace (a login, a refresh token, a webhook), hex."""
    return hashlib.sha256(f"{namespace}:{value}".encode()).hexdigest()


def refresh_id_of_jwt(token: str) -> str | None:
    """The `iss` of an access token (the refresh-token id), unverified; None if not one."""
    if len(token) > MAX_TOKEN or token.count(".") != 2:
        return None
    header, payload, signature = token.split(".")
    if not (header and payload and signature):
        return None
    if not all(_B64URL.fullmatch(part) for part in (header, payload, signature)):
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, binascii.Error, UnicodeDecodeError, RecursionError):
        return None
    issuer = claims.get("iss") if isinstance(claims, dict) else None
    if isinstance(issuer, str) and _REFRESH_ID.fullmatch(issuer):
        return issuer
    return None


def bearer(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer ...` header, read as Home Assistant reads it
    (homeassistant/components/http/auth.py: split at the first space, the scheme exactly
    "Bearer"), or None."""
    if authorization is None or len(authorization) > MAX_TOKEN + 7:
        return None
    scheme, space, token = authorization.partition(" ")
    if scheme != "Bearer" or not space or not token:
        return None
    return token


@functools.lru_cache(maxsize=256)
def access_token(authorization: str | None) -> Credential | None:
    """The login an `Authorization` header's access token belongs to. Remembered: a device
    sends the same token with every request for its half hour."""
    token = bearer(authorization)
    issuer = refresh_id_of_jwt(token) if token is not None else None
    return Credential(ACCESS_TOKEN, digest("login", issuer)) if issuer is not None else None


SIGN_PARAM = "authSig"


def signed_path(query: str) -> Credential | None:
    """The login that signed a path (`?authSig=<JWT>`, Home Assistant's signed paths: camera
    and media proxies, the images of notifications and widgets): its JWT's `iss` is the id
    of the refresh token whose key signed it. Home Assistant reads the first `authSig`."""
    if SIGN_PARAM not in query or len(query) > MAX_TOKEN * 2:
        return None
    for part in query.split("&"):
        name, eq, value = part.partition("=")
        if name == SIGN_PARAM and eq:
            issuer = refresh_id_of_jwt(unquote(value))
            return Credential(ACCESS_TOKEN, digest("login", issuer)) if issuer else None
    return None


def refresh_token_in_form(body: bytes) -> Credential | None:
    """The refresh token of a `grant_type=refresh_token` form posted to /auth/token."""
    if len(body) > MAX_FORM:
        return None
    try:
        form = parse_qs(body.decode("ascii"), strict_parsing=True, max_num_fields=16)
    except (ValueError, UnicodeDecodeError):
        return None
    if form.get("grant_type") != ["refresh_token"]:
        return None
    tokens = form.get("refresh_token")
    if tokens is None or len(tokens) != 1 or not _REFRESH_TOKEN.fullmatch(tokens[0]):
        return None
    return Credential(REFRESH_TOKEN, digest("refresh", tokens[0]))


def tokens_in_answer(body: bytes) -> list[Credential]:
    """What Home Assistant returned from /auth/token: the refresh token of a login (an
    authorization code exchanged), and the login the new access token belongs to."""
    answer = _json_object(body)
    if answer is None:
        return []
    found = []
    token = answer.get("refresh_token")
    if isinstance(token, str) and _REFRESH_TOKEN.fullmatch(token):
        found.append(Credential(REFRESH_TOKEN, digest("refresh", token)))
    access = answer.get("access_token")
    issuer = refresh_id_of_jwt(access) if isinstance(access, str) else None
    if issuer is not None:
        found.append(Credential(ACCESS_TOKEN, digest("login", issuer)))
    return found


def webhook(path: str) -> Credential | None:
    """The webhook id of a request to `/api/webhook/<id>` (the path as routed, no query)."""
    if not path.startswith(WEBHOOK_PREFIX):
        return None
    hook = path[len(WEBHOOK_PREFIX) :]
    return Credential(WEBHOOK, digest("webhook", hook)) if _WEBHOOK_ID.fullmatch(hook) else None


def websocket_auth(message: bytes) -> Credential | None:
    """The access token of a websocket's first message `{"type": "auth", "access_token":
    ...}` (Home Assistant's websocket API), as its refresh-token id; None for anything else."""
    data = _json_object(message)
    if data is None or data.get("type") != "auth":
        return None
    token = data.get("access_token")
    issuer = refresh_id_of_jwt(token) if isinstance(token, str) else None
    return Credential(WEBSOCKET, digest("login", issuer)) if issuer is not None else None


def webhook_in_registration(body: bytes) -> Credential | None:
    """The webhook id Home Assistant gave a device registering with the mobile_app
    integration (`POST /api/mobile_app/registrations` answers `{"webhook_id": ...}`)."""
    answer = _json_object(body)
    hook = answer.get("webhook_id") if answer is not None else None
    if not isinstance(hook, str) or not _WEBHOOK_ID.fullmatch(hook):
        return None
    return Credential(WEBHOOK, digest("webhook", hook))


def _json_object(data: bytes) -> dict[str, Any] | None:
    """`data` as a JSON object, if it is one and not too long."""
    if len(data) > MAX_JSON:
        return None
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return value if isinstance(value, dict) else None
