"""PKCS#12 bundles in two encodings.

modern: AES-256-CBC, PBKDF2 and a SHA-256 MAC (OpenSSL 3, Chrome, Android 12+, Windows 10+).
legacy: 3DES with a SHA-1 MAC, for older Android, Windows and Apple importers that reject PBES2.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import PrivateFormat, pkcs12

MODERN_KDF_ROUNDS = 100_000
LEGACY_KDF_ROUNDS = 2048


def build_pkcs12(
    name: str,
    key: ec.EllipticCurvePrivateKey,
    cert: x509.Certificate,
    ca_cert: x509.Certificate,
    password: bytes,
    legacy: bool = False,
) -> bytes:
    """A bundle holding the key, the certificate and the CA, with `name` as friendly name."""
    builder = PrivateFormat.PKCS12.encryption_builder()
    if legacy:
        encryption = (
            builder.kdf_rounds(LEGACY_KDF_ROUNDS)
            .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC)
            .hmac_hash(hashes.SHA1())
            .build(password)
        )
    else:
        encryption = (
            builder.kdf_rounds(MODERN_KDF_ROUNDS)
            .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
            .hmac_hash(hashes.SHA256())
            .build(password)
        )
    return pkcs12.serialize_key_and_certificates(
        name.encode("utf-8"), key, cert, [ca_cert], encryption
    )
