"""The tls-alpn-01 challenge: its messages parse through the acme library, and the validation
certificate carries what RFC 8737 asks, as openssl reads it."""

from __future__ import annotations

import hashlib
import subprocess

import josepy as jose
from acme import messages
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from hagate.acme.challenge import (
    TLSALPN01,
    TLSALPN01Response,
    acme_identifier_digest,
    validation_pem,
)

ACCOUNT = jose.jwk.JWKEC(key=ec.generate_private_key(ec.SECP256R1()))
TOKEN = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"


def challenge_body() -> messages.ChallengeBody:
    body: messages.ChallengeBody = messages.ChallengeBody.from_json(
        {
            "type": "tls-alpn-01",
            "url": "https://ca.test/chal/1",
            "status": "pending",
            "token": TOKEN,
        }
    )
    return body


def test_a_tls_alpn_01_challenge_parses_into_our_class() -> None:
    body = challenge_body()
    assert isinstance(body.chall, TLSALPN01)
    response = body.chall.response(ACCOUNT)
    assert isinstance(response, TLSALPN01Response)
    assert response.to_partial_json() == {}  # RFC 8555: the answer is an empty object
    assert response.verify(body.chall, ACCOUNT.public_key())


def test_validation_certificate_carries_the_digest_in_a_critical_extension() -> None:
    chall = challenge_body().chall
    assert isinstance(chall, TLSALPN01)
    pem = chall.validation(ACCOUNT, domain="ha.example.com")
    cert = x509.load_pem_x509_certificate(pem[pem.index(b"-----BEGIN CERTIFICATE") :])
    key_authorization = chall.key_authorization(ACCOUNT)
    assert acme_identifier_digest(cert) == hashlib.sha256(key_authorization.encode()).digest()
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["ha.example.com"]
    text = subprocess.run(
        ["openssl", "x509", "-noout", "-text"], input=pem, capture_output=True, check=True
    ).stdout.decode()
    assert "1.3.6.1.5.5.7.1.31: critical" in text
    der = subprocess.run(
        ["openssl", "x509", "-outform", "DER"], input=pem, capture_output=True, check=True
    ).stdout
    parsed = subprocess.run(
        ["openssl", "asn1parse", "-inform", "DER"], input=der, capture_output=True, check=True
    ).stdout.decode()
    after = parsed.split(":1.3.6.1.5.5.7.1.31", 1)[1].splitlines()
    assert "BOOLEAN" in after[1] and ":255" in after[1]  # critical
    # The extension's value is the DER of an OCTET STRING (04, 32 bytes) of the digest.
    digest = hashlib.sha256(key_authorization.encode()).hexdigest().upper()
    assert after[2].endswith("[HEX DUMP]:0420" + digest)


def test_an_ordinary_certificate_has_no_acme_identifier() -> None:
    pem = validation_pem("ha.example.com", "a.b")
    cert = x509.load_pem_x509_certificate(pem[pem.index(b"-----BEGIN CERTIFICATE") :])
    assert acme_identifier_digest(cert) is not None
    other = x509.load_pem_x509_certificate(
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "/dev/null",
                "-subj",
                "/CN=x",
                "-days",
                "1",
            ],
            capture_output=True,
            check=True,
        ).stdout
    )
    assert acme_identifier_digest(other) is None
