"""Who the client is on a connection that may come through a front.

Rules of this module:
  1. A connection from a trusted front must begin with a PROXY protocol header (v1 or v2),
     whole within the deadline; the header is consumed to its last byte and nothing more, so
     the ClientHello after it (even in the same packet) stays for the handshake or forward.
  2. A connection from anywhere else is never asked for a header; one that sends one anyway
     is told apart (`sent_proxy_header`) so that its refusal says why.
  3. Every refusal is a `FrontRefused` whose words name the front and what was wrong; the
     caller records it and closes the connection. Nothing else is raised.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass

from hagate.front.proxyheader import (
    MAX_HEADER,
    NoProxyHeader,
    ProxyHeaderError,
    parse_proxy_header,
    starts_like_proxy_header,
)
from hagate.peek import peek_until

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class FrontRefused(Exception):
    """A connection refused at its PROXY protocol header; str() says why, in plain words."""


@dataclass(frozen=True, slots=True)
class Client:
    """The client behind a front: its address and port, and the port it connected to."""

    ip: str
    port: int
    server_port: int | None  # None: the front did not say (LOCAL, UNKNOWN)


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """CIDRs or single addresses as networks; ValueError names the one that is not."""
    out: list[Network] = []
    for value in values:
        try:
            out.append(ipaddress.ip_network(str(value).strip(), strict=False))
        except ValueError:
            raise ValueError(f"{value!r} is not an IP address or network (CIDR)") from None
    return tuple(out)


def trusts(networks: tuple[Network, ...], ip: str) -> bool:
    """Whether a connection from `ip` comes from one of the trusted fronts."""
    if not networks:
        return False
    address = ipaddress.ip_address(ip)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # a dual-stack listener's view of an IPv4 front
    return any(address in network for network in networks)


def sent_proxy_header(sock: socket.socket) -> bool:
    """Whether what waits in the socket begins like a PROXY protocol header (peeked)."""
    try:
        return starts_like_proxy_header(sock.recv(16, socket.MSG_PEEK))
    except OSError:
        return False


async def client_from_front(sock: socket.socket, front: tuple[str, int], timeout: float) -> Client:
    """Read the PROXY protocol header a trusted front sends first: the client it names (the
    front itself for a LOCAL or UNKNOWN header, as the specification says)."""
    where = front[0]
    try:
        async with asyncio.timeout(timeout):
            header = await peek_until(sock, parse_proxy_header, MAX_HEADER)
    except TimeoutError:
        raise FrontRefused(
            f"the front {where} sent no whole PROXY protocol header within {timeout:g}s"
        ) from None
    except NoProxyHeader:
        raise FrontRefused(
            f"the front {where} is trusted for PROXY protocol but sent none (is "
            "send-proxy / proxy_protocol on at the front?)"
        ) from None
    except ProxyHeaderError as e:
        raise FrontRefused(
            f"a malformed PROXY protocol header from the front {where}: {e}"
        ) from None
    except OSError as e:
        raise FrontRefused(
            f"the front {where} failed before its PROXY protocol header: {e}"
        ) from None
    if header is None:
        raise FrontRefused(f"the front {where} closed the connection before its PROXY header")
    _consume(sock, header.length)
    if header.source is None:
        return Client(front[0], front[1], None)
    return Client(
        header.source[0],
        header.source[1],
        header.destination[1] if header.destination is not None else None,
    )


def _consume(sock: socket.socket, n: int) -> None:
    """Take exactly the header's `n` bytes, already in the buffer (peeked), off the socket."""
    while n:
        try:
            got = sock.recv(n)
        except OSError as e:
            raise FrontRefused(
                f"the connection failed while its PROXY header was read: {e}"
            ) from None
        if not got:
            raise FrontRefused("the connection closed while its PROXY header was read")
        n -= len(got)
