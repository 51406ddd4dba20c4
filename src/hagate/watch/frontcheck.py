"""A front without PROXY protocol: every client seen as one private address.

A TCP front (Tailscale Funnel, HAProxy, nginx's stream module, a load balancer) that does not
send the PROXY protocol header makes every client look like the front itself: rules by
address, AS and country see the front, and Home Assistant's IP ban would ban everyone at
once. The sign in the event log: many recent requests, all from one private or loopback
address (a real client over the internet has a public one, and a household's phones more
than one). The check is a pure function of those addresses.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from hagate.watch.findings import Finding, Severity

RECENT_REQUESTS = 1000  # the last requests looked at
AT_LEAST = 50  # fewer than this say nothing either way
_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT; Tailscale's addresses


def local_address(ip: str) -> bool:
    """Private, loopback, link-local or shared (CGNAT, Tailscale): where a front would be."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or (address.version == 4 and address in _SHARED)
    )


def judge_sources(recent: Sequence[str]) -> list[Finding]:
    """`recent`: the client addresses of the latest requests in the event log."""
    if len(recent) < AT_LEAST or len(set(recent)) != 1 or not local_address(recent[0]):
        return []
    front = recent[0]
    mask = 32 if ":" not in front else 128
    return [
        Finding(
            "front-without-proxy-protocol",
            Severity.HIGH,
            f"The last {len(recent)} requests all came from {front}, a local address: a "
            "front (Tailscale Funnel, HAProxy, nginx stream, a load balancer) passes "
            "connections on without a PROXY protocol header. Rules by address, AS and "
            "country see the front, and Home Assistant's IP ban would ban every client at "
            "once.",
            "Turn PROXY protocol on at the front (docs/fronts.md) and trust it: in "
            f"hagate.yaml, gateway.proxy_protocol.trusted: [{front}/{mask}]; for a front "
            f"before a relay, run the relay with --proxy-protocol-from {front}/{mask}.",
        )
    ]
