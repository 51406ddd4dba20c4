"""Connector tokens: a signed claim (hostname, expiry, id) any relay with the key can verify.

Format: `hg1.<base64url(JSON claim)>.<base64url(Ed25519 signature of the claim bytes)>`.
No database: relays are stateless apart from a list of revoked token ids.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import time
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

PREFIX = "hg1"
ID_BYTES = 8  # a token's id: this many random bytes, in hex


class TokenError(ValueError):
    """The token is malformed, forged, expired or revoked."""


@dataclass(frozen=True)
class ConnectorToken:
    hostname: str
    expires: int  # Unix time
    id: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError):
        raise TokenError("malformed token") from None


def issue(key: Ed25519PrivateKey, hostname: str, days: int) -> tuple[str, ConnectorToken]:
    claim = ConnectorToken(hostname, int(time.time()) + days * 86400, secrets.token_hex(ID_BYTES))
    body = json.dumps(
        {"h": claim.hostname, "e": claim.expires, "i": claim.id},
        separators=(",", ":"),
        sort_keys=True,
    ).encode()
    return f"{PREFIX}.{_b64(body)}.{_b64(key.sign(body))}", claim


def _split(token: str) -> tuple[bytes, bytes]:
    parts = token.strip().split(".")
    if len(parts) != 3 or parts[0] != PREFIX:
        raise TokenError("malformed token")
    return _unb64(parts[1]), _unb64(parts[2])


def _claim(body: bytes) -> ConnectorToken:
    try:
        data = json.loads(body)
        return ConnectorToken(str(data["h"]), int(data["e"]), str(data["i"]))
    except (ValueError, KeyError, TypeError):
        raise TokenError("malformed token claim") from None


def is_token_id(text: str) -> bool:
    """Whether `text` has the form of a token id (tokens are stored nowhere to look it up)."""
    return re.fullmatch(f"[0-9a-f]{{{2 * ID_BYTES}}}", text) is not None


def read_claim(token: str) -> ConnectorToken:
    """What a token claims, unchecked: for its holder (the connector), who has no key to check
    it with but wants to know when it expires."""
    return _claim(_split(token)[0])


def verify(
    public: Ed25519PublicKey,
    token: str,
    revoked: frozenset[str] = frozenset(),
    now: float | None = None,
) -> ConnectorToken:
    body, signature = _split(token)
    try:
        public.verify(signature, body)
    except InvalidSignature:
        raise TokenError("the token's signature does not match this relay's key") from None
    claim = _claim(body)
    if (now if now is not None else time.time()) >= claim.expires:
        raise TokenError(f"the token for {claim.hostname} has expired")
    if claim.id in revoked:
        raise TokenError(f"the token {claim.id} has been revoked")
    return claim
