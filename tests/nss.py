"""A browser user's NSS database (what Chromium and Firefox read on Linux), for tests and
benchmarks that drive a real browser."""

from __future__ import annotations

import subprocess
from pathlib import Path


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
