"""Small MaxMind-format databases for tests, written with mmdb-writer."""

from __future__ import annotations

from pathlib import Path

import mmdb_writer
import netaddr


def write_asn_db(path: Path, networks: dict[str, int]) -> Path:
    writer = mmdb_writer.MMDBWriter(
        ip_version=6,
        ipv4_compatible=True,
        database_type="GeoLite2-ASN",
        description="hagate test ASNs",
    )
    for cidr, asn in networks.items():
        writer.insert_network(
            netaddr.IPSet([cidr]),
            {
                "autonomous_system_number": mmdb_writer.MmdbU32(asn),
                "autonomous_system_organization": f"Test AS{asn}",
            },
        )
    writer.to_db_file(str(path))
    return path


def write_country_db(path: Path, networks: dict[str, tuple[str, str]]) -> Path:
    writer = mmdb_writer.MMDBWriter(
        ip_version=6,
        ipv4_compatible=True,
        database_type="GeoLite2-Country",
        description="hagate test",
    )
    for cidr, (country, continent) in networks.items():
        writer.insert_network(
            netaddr.IPSet([cidr]),
            {
                "country": {"iso_code": country, "names": {"en": f"Country {country}"}},
                "continent": {"code": continent},
            },
        )
    writer.to_db_file(str(path))
    return path
