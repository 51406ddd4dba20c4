"""ASN and country of a client address, from MaxMind-format databases (GeoLite2-ASN/Country)."""

from __future__ import annotations

import ipaddress
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hagate.errors import HagateError


@dataclass(frozen=True)
class Location:
    asn: int = 0
    country: str = ""
    continent: str = ""


CHECK_EVERY = 5.0  # seconds between looks at a database file for a newer one


def _stamp(path: Path) -> tuple[int, int, int]:
    st = os.stat(path)
    return (st.st_mtime_ns, st.st_ino, st.st_size)


class _Database:
    """One database file, reopened when it is replaced on disk (`hagate geoip update`, cron).

    A replacement that does not open keeps the old one in service and is said once."""

    def __init__(self, path: str) -> None:
        import maxminddb  # only with a database configured (its C reader takes 3 MB)

        self.path = Path(path).expanduser()
        try:
            self.stamp = _stamp(self.path)
            self.reader = maxminddb.open_database(str(self.path))
        except (OSError, ValueError, maxminddb.InvalidDatabaseError) as e:
            raise HagateError(f"cannot open GeoIP database {path}: {e}") from e
        self.next_check = time.monotonic() + CHECK_EVERY
        self.refused: tuple[int, int, int] | None = None

    def get(self, address: str) -> Any:
        if time.monotonic() >= self.next_check:
            self._refresh()
        return self.reader.get(address)

    def _refresh(self) -> None:
        self.next_check = time.monotonic() + CHECK_EVERY
        try:
            stamp = _stamp(self.path)
        except OSError:
            return  # gone for a moment (being replaced): keep the one in service
        if stamp == self.stamp or stamp == self.refused:
            return
        import maxminddb

        try:
            reader = maxminddb.open_database(str(self.path))
        except (OSError, ValueError, maxminddb.InvalidDatabaseError) as e:
            self.refused = stamp
            print(
                f"hagate: GeoIP database {self.path} was replaced by one that does not open"
                f" ({e}); keeping the previous one",
                file=sys.stderr,
                flush=True,
            )
            return
        old, self.reader, self.stamp = self.reader, reader, stamp
        old.close()

    def close(self) -> None:
        self.reader.close()


class GeoIP:
    """Looks addresses up in the configured databases; either may be absent. A database file
    replaced on disk is picked up within CHECK_EVERY seconds, without a restart."""

    def __init__(self, asn_db: str | None = None, country_db: str | None = None) -> None:
        self.asn = _Database(asn_db) if asn_db else None
        self.country = _Database(country_db) if country_db else None

    def lookup(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address | str) -> Location:
        address = str(ip)
        asn = 0
        country = continent = ""
        if self.asn is not None:
            rec = self.asn.get(address)
            if isinstance(rec, dict):
                value = rec.get("autonomous_system_number", 0)
                asn = value if isinstance(value, int) else 0
        if self.country is not None:
            rec = self.country.get(address)
            if isinstance(rec, dict):
                c = rec.get("country") or rec.get("registered_country") or {}
                country = str(c.get("iso_code", "")) if isinstance(c, dict) else ""
                k = rec.get("continent") or {}
                continent = str(k.get("code", "")) if isinstance(k, dict) else ""
        return Location(asn, country, continent)

    def describe(self, ip: str) -> tuple[str, str]:
        """(AS organisation, country name) for an address, each "" when unknown."""
        org = name = ""
        with_asn = self.asn.get(ip) if self.asn is not None else None
        if isinstance(with_asn, dict):
            org = str(with_asn.get("autonomous_system_organization") or "")
        with_country = self.country.get(ip) if self.country is not None else None
        if isinstance(with_country, dict):
            c = with_country.get("country") or with_country.get("registered_country") or {}
            names = c.get("names") if isinstance(c, dict) else None
            if isinstance(names, dict):
                name = str(names.get("en") or "")
        return org, name

    def close(self) -> None:
        for db in (self.asn, self.country):
            if db is not None:
                db.close()
