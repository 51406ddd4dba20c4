"""The CA in a state directory: initialisation, issuance, the inventory, revocation, the CRL.

The inventory (`issued.json`) is the source of truth for revocation. It is only changed under
the state directory's lock and always replaced atomically, so concurrent `hagate cert issue`
runs each see the other's certificates and the file is never half-written.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from hagate import state as st
from hagate.errors import HagateError
from hagate.pki import certs
from hagate.state import StateDir, atomic_write

EXPIRING_DAYS = 30
CRL_DAYS = 7
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._@+-]{0,63}$")


def validate_name(name: str) -> str:
    if not _NAME.match(name) or name.endswith(" "):
        raise HagateError(
            f"bad certificate name {name!r}: use 1-64 letters, digits, spaces and . _ @ + -,"
            " starting with a letter or digit"
        )
    return name


@dataclass
class CertRecord:
    """One issued client certificate as the inventory knows it."""

    name: str
    serial: int
    sha256: str
    sha1: str
    not_before: dt.datetime
    not_after: dt.datetime
    revoked_at: dt.datetime | None = None
    reason: str | None = None

    @property
    def serial_hex(self) -> str:
        return certs.serial_hex(self.serial)

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def status(self, at: dt.datetime | None = None) -> str:
        at = at or certs.now()
        if self.revoked:
            return "revoked"
        if at >= self.not_after:
            return "expired"
        if at >= self.not_after - dt.timedelta(days=EXPIRING_DAYS):
            return "expiring"
        return "valid"

    def summary(self) -> dict[str, str]:
        """The `cert list --json` object: exactly name, serial, sha256, not_after, status."""
        return {
            "name": self.name,
            "serial": self.serial_hex,
            "sha256": self.sha256,
            "not_after": self.not_after.isoformat(),
            "status": self.status(),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "serial": self.serial_hex,
            "sha256": self.sha256,
            "sha1": self.sha1,
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "reason": self.reason,
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> CertRecord:
        revoked = obj.get("revoked_at")
        return cls(
            name=str(obj["name"]),
            serial=int(obj["serial"], 16),
            sha256=str(obj["sha256"]),
            sha1=str(obj["sha1"]),
            not_before=dt.datetime.fromisoformat(obj["not_before"]),
            not_after=dt.datetime.fromisoformat(obj["not_after"]),
            revoked_at=dt.datetime.fromisoformat(revoked) if revoked else None,
            reason=obj.get("reason"),
        )

    @classmethod
    def from_cert(cls, name: str, cert: x509.Certificate) -> CertRecord:
        return cls(
            name=name,
            serial=cert.serial_number,
            sha256=certs.sha256_hex(cert),
            sha1=certs.sha1_hex(cert),
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
        )


def read_inventory(path: Path) -> list[CertRecord]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    try:
        data = json.loads(raw)
        return [CertRecord.from_json(item) for item in data["certificates"]]
    except (ValueError, KeyError, TypeError) as e:
        raise HagateError(f"the certificate inventory {path} is damaged: {e}") from e


def write_inventory(path: Path, records: list[CertRecord]) -> None:
    data = {"version": 1, "certificates": [r.to_json() for r in records]}
    atomic_write(path, (json.dumps(data, indent=2) + "\n").encode(), mode=0o600)


def _load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError) as e:
        raise HagateError(f"cannot read key {path}: {e}") from e
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise HagateError(f"{path} is not an EC private key")
    return key


def load_cert(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError) as e:
        raise HagateError(f"cannot read certificate {path}: {e}") from e


class Authority:
    """hagate's CA living in a state directory."""

    def __init__(self, state: StateDir) -> None:
        self.state = state

    # -- setup --------------------------------------------------------------------------

    @classmethod
    def initialise(cls, state: StateDir, hostname: str) -> Authority:
        """Create the CA and the server certificate. Never replaces an existing CA."""
        state.create()
        with state.lock():
            if (state / st.CA_CERT).exists() or (state / st.CA_KEY).exists():
                raise HagateError(
                    f"{state.path} already holds a hagate CA; refusing to replace it"
                    " (use another --state-dir for a new one)"
                )
            ca = certs.create_ca(hostname)
            atomic_write(state / st.CA_KEY, certs.key_pem(ca.key), mode=0o600)
            atomic_write(state / st.CA_CERT, certs.cert_pem(ca.cert))
            authority = cls(state)
            authority.write_server_cert(ca, hostname)
            write_inventory(state / st.INVENTORY_NAME, [])
            authority._write_crl(ca, [])
        return authority

    def write_server_cert(self, ca: certs.Issued, hostname: str) -> None:
        server = certs.issue_server(ca, hostname)
        atomic_write(self.state / st.SERVER_KEY, certs.key_pem(server.key), mode=0o600)
        atomic_write(
            self.state / st.SERVER_CERT, certs.cert_pem(server.cert) + certs.cert_pem(ca.cert)
        )

    # -- reading ------------------------------------------------------------------------

    def ca_cert(self) -> x509.Certificate:
        return load_cert(self.state / st.CA_CERT)

    def ca(self) -> certs.Issued:
        return certs.Issued(self.ca_cert(), _load_key(self.state / st.CA_KEY))

    def records(self) -> list[CertRecord]:
        return read_inventory(self.state / st.INVENTORY_NAME)

    def certificate(self, record: CertRecord) -> x509.Certificate:
        return load_cert(self.state / st.ISSUED_DIR / f"{record.serial_hex}.pem")

    def find(self, selector: str, records: list[CertRecord] | None = None) -> CertRecord:
        """A certificate by name (the live one), serial (hex) or SHA-256 fingerprint."""
        records = self.records() if records is None else records
        live = [r for r in records if r.name == selector and not r.revoked]
        if live:
            return live[0]
        token = selector.strip().lower().replace(":", "")
        if token.startswith("0x"):
            token = token[2:]
        if re.fullmatch(r"[0-9a-f]+", token):
            for r in records:
                if r.sha256 == token or r.serial_hex == token.lstrip("0"):
                    return r
        named = [r for r in records if r.name == selector]
        if named:
            return named[-1]
        raise HagateError(
            f"no certificate named {selector!r} (or with that serial or fingerprint);"
            " see hagate cert list"
        )

    # -- changes ------------------------------------------------------------------------

    def issue(self, name: str, days: int = certs.CLIENT_DAYS) -> tuple[certs.Issued, CertRecord]:
        validate_name(name)
        if not 1 <= days <= 3650:
            raise HagateError(f"--days must be between 1 and 3650, not {days}")
        ca = self.ca()
        with self.state.lock():
            records = self.records()
            if any(r.name == name and not r.revoked for r in records):
                raise HagateError(
                    f"a certificate named {name!r} already exists; revoke it first"
                    f" (hagate cert revoke {name!r}) or pick another name"
                )
            issued = certs.issue_client(ca, name, days)
            record = CertRecord.from_cert(name, issued.cert)
            issued_dir = self.state.subdir(st.ISSUED_DIR)
            atomic_write(issued_dir / f"{record.serial_hex}.pem", certs.cert_pem(issued.cert))
            records.append(record)
            write_inventory(self.state / st.INVENTORY_NAME, records)
        return issued, record

    def revoke(self, selector: str, reason: str | None = None) -> CertRecord:
        ca = self.ca()
        with self.state.lock():
            records = self.records()
            record = self.find(selector, records)
            if record.revoked:
                raise HagateError(
                    f"certificate {record.name!r} ({record.serial_hex}) is already revoked"
                )
            record.revoked_at = certs.now().replace(microsecond=0)
            record.reason = reason
            write_inventory(self.state / st.INVENTORY_NAME, records)
            self._write_crl(ca, records)
        # What the certificate earned goes with it (the gateway stops honouring it as soon as
        # the inventory says revoked; this drops it from the file).
        from hagate.credentials.bindings import Bindings

        Bindings(self.state).unbind(record.sha256)
        return record

    def _write_crl(self, ca: certs.Issued, records: list[CertRecord]) -> None:
        now = certs.now()
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(ca.cert.subject)
            .last_update(now - certs.CLOCK_SKEW)
            .next_update(now + dt.timedelta(days=CRL_DAYS))
        )
        for r in records:
            if r.revoked_at is not None:
                builder = builder.add_revoked_certificate(
                    x509.RevokedCertificateBuilder()
                    .serial_number(r.serial)
                    .revocation_date(r.revoked_at)
                    .build()
                )
        crl = builder.sign(ca.key, hashes.SHA256())
        atomic_write(self.state / st.CRL_NAME, crl.public_bytes(serialization.Encoding.PEM))
