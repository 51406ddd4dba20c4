"""`hagate cert enrol`: (re-)issue a certificate and make its one-time link."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from cryptography import x509

from hagate.config import load_config
from hagate.enrol import mobileconfig
from hagate.enrol.store import Enrolment, EnrolmentStore
from hagate.pki.authority import Authority, CertRecord, validate_name
from hagate.pki.certs import sha256_hex
from hagate.pki.pkcs12 import build_pkcs12
from hagate.state import SERVER_CERT, StateDir

# Letters and digits that cannot be mistaken for each other when typed on a phone.
PASSWORD_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
PASSWORD_GROUPS = 4  # of 4: 4*4*log2(31) ≈ 79 bits


def new_password() -> str:
    groups = (
        "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(4)) for _ in range(PASSWORD_GROUPS)
    )
    return "-".join(groups)


@dataclass(frozen=True)
class Link:
    url: str
    password: str
    record: CertRecord
    enrolment: Enrolment
    replaced: CertRecord | None  # the earlier certificate of that name, now revoked


def server_fingerprint(state: StateDir) -> str | None:
    """The SHA-256 of the server certificate the gateway serves while it is hagate's own CA's
    (devices cannot check it by themselves); None once it is from an ACME CA."""
    from hagate.acme.store import AcmeFiles

    cfg = load_config(state.config_path)
    if cfg.acme is not None and AcmeFiles(state).certificate() is not None:
        return None
    leaf = x509.load_pem_x509_certificates((state / SERVER_CERT).read_bytes())[0]
    return sha256_hex(leaf)


def enrol(
    state: StateDir, name: str, device: str | None, ttl: float, base_url: str | None = None
) -> Link:
    validate_name(name)
    cfg = load_config(state.config_path)
    authority = Authority(state)
    replaced = next((r for r in authority.records() if r.name == name and not r.revoked), None)
    if replaced is not None:
        replaced = authority.revoke(replaced.serial_hex, "re-enrolled")
    issued, record = authority.issue(name)
    password = new_password().encode()
    ca = authority.ca_cert()
    modern = build_pkcs12(name, issued.key, issued.cert, ca, password, legacy=False)
    legacy = build_pkcs12(name, issued.key, issued.cert, ca, password, legacy=True)
    server_sha = server_fingerprint(state)
    # Every Apple system imports the 3DES bundle; the profile carries the CA only while
    # the server certificate is hagate's.
    profile = mobileconfig.profile(cfg.hostname, name, legacy, ca if server_sha else None)
    token, item = EnrolmentStore(state).create(
        name,
        ttl,
        device,
        record.sha256,
        server_sha,
        {"mobileconfig": profile, "p12": modern, "legacy.p12": legacy},
    )
    base = (base_url or f"https://{cfg.hostname}").rstrip("/")
    return Link(f"{base}/.hagate/enrol/{token}", password.decode(), record, item, replaced)


def wait_for_first_use(
    state: StateDir, link: Link, say: object = None, poll: float = 1.0, after_download: float = 3600
) -> dict[str, object] | None:
    """Block until the new certificate is first used (its facts), or None when the link
    expired without a download, or an hour went by after the download."""
    store = EnrolmentStore(state)
    downloaded_at: float | None = None
    while True:
        facts = store.first_use(link.record.sha256)
        if facts is not None:
            return facts
        now = time.time()
        current = store.status(link.enrolment.digest)
        if current is not None and current.used is not None and downloaded_at is None:
            downloaded_at = current.used
            if callable(say):
                say("downloaded; waiting for the device's first connection")
        if downloaded_at is None and now >= link.enrolment.expires:
            return None
        if downloaded_at is not None and now - downloaded_at > after_download:
            return None
        time.sleep(poll)
