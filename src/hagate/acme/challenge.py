"""TLS-ALPN-01 (RFC 8737): the challenge's ACME messages and its validation certificate.

The `acme` library (certbot's) dropped its TLS-ALPN-01 classes with pyOpenSSL; the challenge is
its key authorization, which the library computes, inside one certificate extension. These
classes register the type with the library's own message registry, so orders carrying a
`tls-alpn-01` challenge parse into them like any other.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import josepy as jose
from acme import challenges
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ACME_IDENTIFIER = x509.ObjectIdentifier("1.3.6.1.5.5.7.1.31")  # id-pe-acmeIdentifier


@challenges.ChallengeResponse.register
class TLSALPN01Response(challenges.KeyAuthorizationChallengeResponse):
    """The answer to a tls-alpn-01 challenge: an empty JSON object on the wire."""

    typ = "tls-alpn-01"


@challenges.Challenge.register
class TLSALPN01(challenges.KeyAuthorizationChallenge):
    """A tls-alpn-01 challenge; its validation is the PEM key and certificate to serve."""

    response_cls = TLSALPN01Response
    typ = response_cls.typ

    def validation(self, account_key: jose.jwk.JWK, **kwargs: Any) -> bytes:
        return validation_pem(str(kwargs["domain"]), self.key_authorization(account_key))


def validation_pem(name: str, key_authorization: str) -> bytes:
    """A self-signed certificate for `name` carrying SHA-256(key authorization) in the
    critical acmeIdentifier extension, with its key: one PEM file, key first."""
    key = ec.generate_private_key(ec.SECP256R1())
    digest = hashlib.sha256(key_authorization.encode("ascii")).digest()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=7))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        # The extension's value is the DER of an OCTET STRING holding the digest.
        .add_extension(
            x509.UnrecognizedExtension(ACME_IDENTIFIER, b"\x04\x20" + digest), critical=True
        )
        .sign(key, hashes.SHA256())
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ) + cert.public_bytes(serialization.Encoding.PEM)


def acme_identifier_digest(cert: x509.Certificate) -> bytes | None:
    """The digest a validation certificate carries, or None when it has none (for tests and
    for checking what the gateway serves)."""
    try:
        ext = cert.extensions.get_extension_for_oid(ACME_IDENTIFIER)
    except x509.ExtensionNotFound:
        return None
    value = ext.value
    if not isinstance(value, x509.UnrecognizedExtension) or not ext.critical:
        return None
    raw = value.value
    if len(raw) != 34 or raw[:2] != b"\x04\x20":
        return None
    return raw[2:]
