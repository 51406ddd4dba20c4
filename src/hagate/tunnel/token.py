"""Connector tokens: a signed claim (hostname, expiry, id) any relay with the key can verify.

Format: `hg1.<base64url(JSON claim)>.<base64url(Ed25519 signature of the claim bytes)>`.
No database: relays are stateless apart from a list of revoked token ids.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

PREFIX = "hg1"


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
    claim = ConnectorToken(hostname, int(time.time()) + days * 86400, secrets.token_hex(8))
    body = json.dumps(
        {"h": claim.hostname, "e": claim.expires, "i": claim.id},
        separators=(",", ":"),
        sort_keys=True,
    ).encode()
    return f"{PREFIX}.{_b64(body)}.{_b64(key.sign(body))}", claim


def verify(
    public: Ed25519PublicKey,
    token: str,
    revoked: frozenset[str] = frozenset(),
    now: float | None = None,
) -> ConnectorToken:
    parts = token.strip().split(".")
    if len(parts) != 3 or parts[0] != PREFIX:
        raise TokenError("malformed token")
    body, signature = _unb64(parts[1]), _unb64(parts[2])
    try:
        public.verify(signature, body)
    except InvalidSignature:
        raise TokenError("the token's signature does not match this relay's key") from None
    try:
        data = json.loads(body)
        claim = ConnectorToken(str(data["h"]), int(data["e"]), str(data["i"]))
    except (ValueError, KeyError, TypeError):
        raise TokenError("malformed token claim") from None
    if (now if now is not None else time.time()) >= claim.expires:
        raise TokenError(f"the token for {claim.hostname} has expired")
    if claim.id in revoked:
        raise TokenError(f"the token {claim.id} has been revoked")
    return claim
