"""Large cloud and hosting networks: anyone can rent an address in them for a few cents.

A rule that lets one of these networks in, for every path, lets in whoever rents a server
there. The list is kept in the project; an ASN is here when it is a public cloud or a
hosting provider whose customers run arbitrary servers.
"""

from __future__ import annotations

CLOUD_ASNS: dict[int, str] = {
    16509: "Amazon AWS",
    14618: "Amazon AWS",
    8987: "Amazon AWS (Ireland)",
    15169: "Google",
    396982: "Google Cloud",
    19527: "Google",
    8075: "Microsoft Azure",
    8068: "Microsoft",
    13335: "Cloudflare",
    14061: "DigitalOcean",
    16276: "OVH",
    24940: "Hetzner",
    213230: "Hetzner Cloud",
    63949: "Akamai Linode",
    20940: "Akamai",
    20473: "Vultr (Choopa)",
    31898: "Oracle Cloud",
    45102: "Alibaba Cloud",
    37963: "Alibaba Cloud",
    132203: "Tencent Cloud",
    45090: "Tencent Cloud",
    51167: "Contabo",
    12876: "Scaleway",
    60781: "Leaseweb",
    8560: "IONOS",
    54113: "Fastly",
    9009: "M247",
    47583: "Hostinger",
    36352: "ColoCrossing",
    40021: "Contabo US",
    62567: "DigitalOcean",
}


def cloud_name(asn: int) -> str | None:
    return CLOUD_ASNS.get(asn)
