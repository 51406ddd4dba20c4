"""Keeping the GeoIP databases current: download, unpack, verify, swap in.

Rules:
  1. A database reaches its place only whole and checked: downloaded and unpacked beside it,
     opened, of the right kind (ASN or country), answering a lookup; then renamed over the old
     one in one step. Anything short of that leaves the old file as it was and says why.
  2. Running gateways and relays need no restart: they reopen a replaced file (hagate.geoip).
"""

from __future__ import annotations

import gzip
import http.client
import io
import os
import shutil
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import maxminddb

from hagate.errors import HagateError

KINDS = ("asn", "country")
DBIP = "https://download.db-ip.com/free/dbip-{db}-lite-{month}.mmdb.gz"
MAXMIND = (
    "https://download.maxmind.com/app/geoip_download?edition_id={edition}"
    "&license_key={key}&suffix=tar.gz"
)
EDITIONS = {"asn": "GeoLite2-ASN", "country": "GeoLite2-Country"}
Progress = Callable[[str, int, int | None], None]  # (kind, bytes so far, total or None)


@dataclass(frozen=True)
class Updated:
    kind: str
    path: Path
    size: int
    database_type: str
    built: str


def source_urls(
    source: str, license_key: str | None, month: str | None = None
) -> dict[str, list[str]]:
    """For each kind, the URLs to try in order."""
    if source == "dbip":
        months = [month] if month else _recent_months()
        return {k: [DBIP.format(db=k, month=m) for m in months] for k in KINDS}
    if source == "maxmind":
        if not license_key:
            raise HagateError(
                "--source maxmind needs --license-key (a free GeoLite2 account's key)"
            )
        return {k: [MAXMIND.format(edition=EDITIONS[k], key=license_key)] for k in KINDS}
    if "://" in source and "{db}" in source:
        return {k: [source.replace("{db}", k)] for k in KINDS}
    raise HagateError(
        "--source must be dbip, maxmind, or a URL with {db} in it (asn and country are"
        f" put there), not {source!r}"
    )


def _recent_months() -> list[str]:
    """This month's DB-IP file and last month's (a new month's file appears on its first days)."""
    now = time.gmtime()
    year, month = now.tm_year, now.tm_mon
    prev = (year, month - 1) if month > 1 else (year - 1, 12)
    return [f"{year:04d}-{month:02d}", f"{prev[0]:04d}-{prev[1]:02d}"]


def download(
    url: str, dest: Path, kind: str, progress: Progress | None, timeout: float = 60
) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": "hagate-geoip-update"})
    with urllib.request.urlopen(request, timeout=timeout) as r, dest.open("wb") as out:
        total = r.headers.get("Content-Length")
        expected = int(total) if total and total.isdigit() else None
        done = 0
        while chunk := r.read(1 << 16):
            out.write(chunk)
            done += len(chunk)
            if progress:
                progress(kind, done, expected)
    if expected is not None and done != expected:
        raise HagateError(f"the download stopped at {done} of {expected} bytes")


def unpack(raw: Path, dest: Path) -> None:
    """`raw` as a plain .mmdb at `dest`: gunzipped, or taken out of a .tar.gz (MaxMind's)."""
    with raw.open("rb") as f:
        head = f.read(2)
    try:
        if head == b"\x1f\x8b":
            with gzip.open(raw, "rb") as z:
                data = z.read()
            if data[257:262] == b"ustar":  # a tar inside the gzip
                with tarfile.open(fileobj=io.BytesIO(data)) as tar:
                    members = [
                        m for m in tar.getmembers() if m.isfile() and m.name.endswith(".mmdb")
                    ]
                    if not members:
                        raise HagateError("the archive holds no .mmdb file")
                    extracted = tar.extractfile(members[0])
                    assert extracted is not None
                    data = extracted.read()
            dest.write_bytes(data)
        else:
            shutil.copyfile(raw, dest)
    except (OSError, EOFError, tarfile.TarError, gzip.BadGzipFile) as e:
        raise HagateError(f"the download is not a whole archive ({type(e).__name__}: {e})") from e


def verify(path: Path, kind: str) -> tuple[str, str]:
    """(database type, build date) of a database that opens, is of `kind`, and answers."""
    try:
        reader = maxminddb.open_database(str(path))
    except (OSError, ValueError, maxminddb.InvalidDatabaseError) as e:
        why = type(e).__name__  # its text names our temporary file, which says nothing
        raise HagateError(f"the file does not open as a MaxMind-format database ({why})") from e
    try:
        meta = reader.metadata()
        dtype = str(meta.database_type)
        wanted = ("ASN",) if kind == "asn" else ("Country", "City")
        if not any(w.lower() in dtype.lower() for w in wanted):
            raise HagateError(f"it is a {dtype!r} database, not an {kind} one")
        for probe in ("1.1.1.1", "8.8.8.8"):
            reader.get(probe)  # raises on a damaged search tree
        built = time.strftime("%Y-%m-%d", time.gmtime(meta.build_epoch))
    except (ValueError, maxminddb.InvalidDatabaseError) as e:
        raise HagateError(f"the database is damaged: {e}") from e
    finally:
        reader.close()
    return dtype, built


def update_one(kind: str, urls: list[str], target: Path, progress: Progress | None) -> Updated:
    """Fetch, unpack and check `kind` from the first URL that answers, then swap it in."""
    target.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".geoip-") as tmp:
        raw, plain = Path(tmp) / "download", Path(tmp) / "unpacked.mmdb"
        for url in urls:
            try:
                download(url, raw, kind, progress)
                break
            except urllib.error.HTTPError as e:
                errors.append(f"{_shown(url)}: HTTP {e.code} {e.reason}")
            except (urllib.error.URLError, OSError, http.client.HTTPException, HagateError) as e:
                errors.append(f"{_shown(url)}: {getattr(e, 'reason', None) or e}")
        else:
            raise HagateError(f"{kind}: no download succeeded ({'; '.join(errors)})")
        unpack(raw, plain)
        dtype, built = verify(plain, kind)
        os.chmod(plain, 0o644)
        os.replace(plain, target)
    return Updated(kind, target, target.stat().st_size, dtype, built)


def _shown(url: str) -> str:
    """A URL for messages, without a license key."""
    return url.split("license_key=")[0] + ("license_key=..." if "license_key=" in url else "")
