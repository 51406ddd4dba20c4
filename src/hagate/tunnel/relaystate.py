"""The relay's state directory: its token-signing key, its TLS certificate, revoked tokens."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID

from hagate.config import AcmeSettings, acme_settings, validate_hostname
from hagate.errors import HagateError
from hagate.state import StateDir, atomic_write

RELAY_CONFIG = "relay.json"
SIGNING_KEY = "relay-signing.key"
TLS_CERT = "relay.crt"
TLS_KEY = "relay.key"
REVOKED = "revoked-tokens.json"
STATUS = "relay-status.json"


@dataclass(frozen=True)
class RelayState:
    state: StateDir
    hostname: str
    acme: AcmeSettings | None = None  # the control certificate from an ACME CA

    @classmethod
    def load(cls, state: StateDir) -> RelayState:
        path = state / RELAY_CONFIG
        try:
            data = json.loads(path.read_text())
            acme = data.get("acme")
            settings = (
                acme_settings(
                    acme.get("directory"),
                    acme.get("email"),
                    acme.get("ca_bundle"),
                    bool(acme.get("staging", False)),
                )
                if isinstance(acme, dict)
                else None
            )
            return cls(state, validate_hostname(data["hostname"]), settings)
        except FileNotFoundError:
            raise HagateError(
                f"no relay state in {state.path}: run hagate relay init first"
            ) from None
        except (ValueError, KeyError) as e:
            raise HagateError(f"{path} is damaged: {e}") from e

    @classmethod
    def initialise(
        cls, state: StateDir, hostname: str, acme: AcmeSettings | None = None
    ) -> RelayState:
        host = validate_hostname(hostname)
        state.create()
        with state.lock():
            if (state / SIGNING_KEY).exists():
                raise HagateError(f"{state.path} already holds a relay; refusing to replace it")
            signing = Ed25519PrivateKey.generate()
            atomic_write(
                state / SIGNING_KEY,
                signing.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                ),
                mode=0o600,
            )
            key = ec.generate_private_key(ec.SECP256R1())
            name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
            now = dt.datetime.now(dt.UTC)
            cert = (
                x509.CertificateBuilder()
                .subject_name(name)
                .issuer_name(name)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5))
                .not_valid_after(now + dt.timedelta(days=3650))
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
                .sign(key, hashes.SHA256())
            )
            atomic_write(
                state / TLS_KEY,
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                ),
                mode=0o600,
            )
            atomic_write(state / TLS_CERT, cert.public_bytes(serialization.Encoding.PEM))
            relay: dict[str, object] = {"hostname": host}
            if acme is not None:
                relay["acme"] = {
                    "directory": acme.directory,
                    "email": acme.email,
                    "ca_bundle": acme.ca_bundle,
                    "staging": acme.staging,
                }
            atomic_write(state / RELAY_CONFIG, json.dumps(relay).encode(), mode=0o600)
            atomic_write(state / REVOKED, b"[]\n", mode=0o600)
        return cls(state, host, acme)

    def signing_key(self) -> Ed25519PrivateKey:
        key = serialization.load_pem_private_key((self.state / SIGNING_KEY).read_bytes(), None)
        assert isinstance(key, Ed25519PrivateKey)
        return key

    def fingerprint(self) -> str:
        cert = x509.load_pem_x509_certificate((self.state / TLS_CERT).read_bytes())
        return cert.fingerprint(hashes.SHA256()).hex()

    def revoked(self) -> frozenset[str]:
        try:
            return frozenset(json.loads((self.state / REVOKED).read_text()))
        except FileNotFoundError:
            return frozenset()
        except ValueError as e:
            raise HagateError(f"{self.state / REVOKED} is damaged: {e}") from e

    def revoke(self, token_id: str) -> None:
        with self.state.lock():
            ids = sorted(self.revoked() | {token_id})
            atomic_write(self.state / REVOKED, (json.dumps(ids) + "\n").encode(), mode=0o600)
