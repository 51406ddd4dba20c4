"""What a real browser needs to present a client certificate, for tests and benchmarks that
drive one: the user's NSS database (what Chromium and Firefox read on Linux), and Chromium's
managed policy that picks the certificate without asking."""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

POLICY_DIR = Path("/etc/chromium/policies/managed")


def nss_database(home: Path, ca: Path, p12: Path | None = None, password: str = "") -> Path:
    """`home/.pki/nssdb` with `ca` trusted for servers and, if given, the PKCS#12 bundle's
    certificate and key imported."""
    db = home / ".pki" / "nssdb"
    db.mkdir(parents=True)
    subprocess.run(["certutil", "-N", "-d", f"sql:{db}", "--empty-password"], check=True)
    subprocess.run(
        ["certutil", "-A", "-d", f"sql:{db}", "-t", "C,,", "-n", "hagate-ca", "-i", str(ca)],
        check=True,
    )
    if p12 is not None:
        subprocess.run(
            ["pk12util", "-i", str(p12), "-d", f"sql:{db}", "-W", password],
            check=True,
            capture_output=True,
        )
    return db


@contextlib.contextmanager
def auto_select(urls: list[str], name: str) -> Iterator[None]:
    """Chromium's AutoSelectCertificateForUrls policy for these origins, in the managed policy
    file `name`.json while the block runs."""
    POLICY_DIR.mkdir(parents=True, exist_ok=True)
    policy = POLICY_DIR / f"{name}.json"
    patterns = [json.dumps({"pattern": url, "filter": {}}) for url in urls]
    policy.write_text(json.dumps({"AutoSelectCertificateForUrls": patterns}))
    try:
        yield
    finally:
        policy.unlink(missing_ok=True)
