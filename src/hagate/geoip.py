"""ASN and country of a client address, from MaxMind-format databases (GeoLite2-ASN/Country)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import maxminddb

from hagate.errors import HagateError


@dataclass(frozen=True)
class Location:
    asn: int = 0
    country: str = ""
    continent: str = ""


class GeoIP:
    """Looks addresses up in the configured databases; either may be absent."""

    def __init__(self, asn_db: str | None = None, country_db: str | None = None) -> None:
        self.asn = self._open(asn_db)
        self.country = self._open(country_db)

    @staticmethod
    def _open(path: str | None) -> Any:
        if not path:
            return None
        try:
            return maxminddb.open_database(str(Path(path).expanduser()))
        except (OSError, ValueError, maxminddb.InvalidDatabaseError) as e:
            raise HagateError(f"cannot open GeoIP database {path}: {e}") from e

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
