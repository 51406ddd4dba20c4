"""The ACME files of a state directory (the gateway's or the relay's), under `acme/`.

Rules:
  1. The certificate and its key are one file, `certificate.pem` (key first, then the chain),
     written atomically 0600: a crash leaves the old pair or the new one, never a new
     certificate beside an old key.
  2. The account key is created once, 0600, and reused; so is the account.
  3. `status.json` is the shared memory of every process: the last attempt, the last error
     and the time before which nobody may ask the CA again. It is written under the renewal
     lock only.
  4. A validation certificate is published in `challenges/NAME.pem` for as long as its order
     is open, so whichever process takes the CA's connection can answer it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from hagate.errors import HagateError
from hagate.state import StateDir, atomic_write

ACME_DIR = "acme"
ACCOUNT_KEY = "account.key"
ACCOUNT = "account.json"
CERTIFICATE = "certificate.pem"
STATUS = "status.json"
RENEW_LOCK = "renew.lock"
CHALLENGES = "challenges"


class AcmeFailure(Exception):
    """The CA (or the way to it) failed an order; `retry_after` when it said when to retry."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RenewalBusy(HagateError):
    """Another process holds the renewal lock."""


@dataclass
class Status:
    """What the last renewal attempts left behind (all times are Unix seconds)."""

    name: str = ""
    directory: str = ""
    last_attempt: float | None = None
    last_success: float | None = None
    last_error: str | None = None
    failures: int = 0
    not_before: float | None = None  # no attempt before this (backoff, Retry-After)
    told_until: float | None = None  # the part of it the CA asked for (Retry-After)
    attempts: int = 0
    renewed_by: int | None = None  # pid of the process that last obtained a certificate
    history: list[dict[str, Any]] = field(default_factory=list)  # the last few attempts


@dataclass(frozen=True)
class CertificateInfo:
    issuer: str
    names: tuple[str, ...]
    not_before: float
    not_after: float
    sha256: str
    chain_length: int


def describe(pem: bytes) -> CertificateInfo:
    chain = x509.load_pem_x509_certificates(pem)
    leaf = chain[0]
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = tuple(san.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        names = ()
    return CertificateInfo(
        issuer=leaf.issuer.rfc4514_string(),
        names=names,
        not_before=leaf.not_valid_before_utc.timestamp(),
        not_after=leaf.not_valid_after_utc.timestamp(),
        sha256=leaf.fingerprint(hashes.SHA256()).hex(),
        chain_length=len(chain),
    )


class AcmeFiles:
    def __init__(self, state: StateDir) -> None:
        self.dir = state.path / ACME_DIR

    def _ensure(self) -> Path:
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        return self.dir

    @property
    def certificate_path(self) -> Path:
        return self.dir / CERTIFICATE

    # -- the account ---------------------------------------------------------------------

    def account_key(self) -> ec.EllipticCurvePrivateKey:
        """The account key, created (0600) on first use."""
        path = self._ensure() / ACCOUNT_KEY
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), None)
        except FileNotFoundError:
            key = ec.generate_private_key(ec.SECP256R1())
            pem = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            atomic_write(path, pem, mode=0o600)
        except ValueError as e:
            raise HagateError(f"{path} is not a usable key: {e}") from e
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise HagateError(f"{path} is not an EC key")
        return key

    def account(self, directory: str) -> dict[str, Any] | None:
        """The stored account (uri, body) for `directory`, if it was registered there."""
        try:
            data = json.loads((self.dir / ACCOUNT).read_text())
        except (FileNotFoundError, ValueError):
            return None
        if not isinstance(data, dict) or data.get("directory") != directory:
            return None
        return data

    def save_account(self, directory: str, uri: str, body: dict[str, Any]) -> None:
        data = {"directory": directory, "uri": uri, "body": body}
        atomic_write(self._ensure() / ACCOUNT, json.dumps(data, indent=2).encode(), mode=0o600)

    # -- the certificate -----------------------------------------------------------------

    def write_certificate(self, key_pem: bytes, chain_pem: bytes) -> None:
        atomic_write(self._ensure() / CERTIFICATE, key_pem + chain_pem, mode=0o600)

    def certificate(self) -> CertificateInfo | None:
        """The ACME certificate on disk, or None when there is none (or none readable)."""
        try:
            return describe(self.certificate_path.read_bytes())
        except (FileNotFoundError, ValueError):
            return None

    # -- challenges ----------------------------------------------------------------------

    def challenge_path(self, name: str) -> Path:
        return self.dir / CHALLENGES / f"{name}.pem"

    def publish_challenge(self, name: str, pem: bytes) -> None:
        self._ensure()
        (self.dir / CHALLENGES).mkdir(mode=0o700, exist_ok=True)
        atomic_write(self.challenge_path(name), pem, mode=0o600)

    def withdraw_challenge(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.challenge_path(name).unlink()

    # -- status and the lock -------------------------------------------------------------

    def status(self) -> Status:
        try:
            data = json.loads((self.dir / STATUS).read_text())
            known = {k: v for k, v in data.items() if k in Status.__dataclass_fields__}
            return Status(**known)
        except (FileNotFoundError, ValueError, TypeError):
            return Status()

    def save_status(self, status: Status) -> None:
        status.history = status.history[-10:]
        atomic_write(self._ensure() / STATUS, json.dumps(asdict(status), indent=2).encode())

    @contextlib.contextmanager
    def renewal_lock(self) -> Iterator[None]:
        """Held by the one process renewing; RenewalBusy when another one is."""
        fd = os.open(self._ensure() / RENEW_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RenewalBusy("another hagate process is renewing the certificate") from None
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def utc(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
