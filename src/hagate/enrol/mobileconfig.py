"""An Apple configuration profile (.mobileconfig) holding a client identity and, while the
gateway's server certificate is hagate's own CA's, that CA as a trusted root.

The identifiers are derived from the hostname and the certificate name only, so enrolling the
same device again replaces its profile instead of adding a second one. The PKCS#12 inside is
encrypted; the profile does not carry its password (iOS and macOS ask for it on install).
"""

from __future__ import annotations

import plistlib
import uuid

from cryptography import x509
from cryptography.hazmat.primitives import serialization

PKCS12 = "com.apple.security.pkcs12"
ROOT = "com.apple.security.root"
CONFIGURATION = "Configuration"


def identifier(hostname: str, name: str) -> str:
    reverse = ".".join(reversed(hostname.split(".")))
    return f"net.hagate.{reverse}.{name}"


def _uuid(ident: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"hagate:{ident}")).upper()


def profile(
    hostname: str, name: str, pkcs12_bundle: bytes, ca_cert: x509.Certificate | None
) -> bytes:
    base = identifier(hostname, name)
    payloads: list[dict[str, object]] = [
        {
            "PayloadType": PKCS12,
            "PayloadVersion": 1,
            "PayloadIdentifier": f"{base}.identity",
            "PayloadUUID": _uuid(f"{base}.identity"),
            "PayloadDisplayName": f"Client certificate {name}",
            "PayloadDescription": f"Lets this device into {hostname}",
            "PayloadCertificateFileName": f"{name}.p12",
            "PayloadContent": pkcs12_bundle,
        }
    ]
    if ca_cert is not None:
        payloads.append(
            {
                "PayloadType": ROOT,
                "PayloadVersion": 1,
                "PayloadIdentifier": f"{base}.ca",
                "PayloadUUID": _uuid(f"{base}.ca"),
                "PayloadDisplayName": f"hagate CA for {hostname}",
                "PayloadDescription": f"Trusts the server certificate of {hostname}",
                "PayloadCertificateFileName": "hagate-ca.crt",
                "PayloadContent": ca_cert.public_bytes(serialization.Encoding.DER),
            }
        )
    top = {
        "PayloadType": CONFIGURATION,
        "PayloadVersion": 1,
        "PayloadIdentifier": base,
        "PayloadUUID": _uuid(base),
        "PayloadDisplayName": f"{hostname} ({name})",
        "PayloadDescription": f"Home Assistant at {hostname}, through hagate",
        "PayloadOrganization": "hagate",
        "PayloadRemovalDisallowed": False,
        "PayloadContent": payloads,
    }
    return plistlib.dumps(top, fmt=plistlib.FMT_XML, sort_keys=True)
