"""The PROXY protocol header a TCP front puts before the client's bytes, as pure code.

HAProxy's specification (proxy-protocol.txt), both versions:
  v1  one text line, at most 107 bytes with its CRLF:
      `PROXY TCP4|TCP6 <src> <dst> <sport> <dport>\\r\\n`, or `PROXY UNKNOWN...\\r\\n`.
  v2  a 16-byte binary head (12-byte signature, version 2 with command LOCAL or PROXY, family
      and transport, length of what follows), then the addresses and any TLVs.

Rules of this module:
  1. `parse_proxy_header` returns None while more bytes are needed, a `ProxyHeader` once the
     whole header is in, and raises `ProxyHeaderError` for anything else. It never raises
     anything else, whatever the input (property-tested), and it decides as early as the
     bytes allow: a ClientHello where a header should be is refused at its first byte.
  2. A header is bounded by `MAX_HEADER` bytes whatever its declared length.
  3. TLVs are walked, each length checked against what is left, and otherwise ignored: a TLV
     that runs past the header is an error, not a read past it.
  4. `source` is None when the header carries no client address (v1 UNKNOWN, v2 LOCAL,
     v2 UNSPEC or UNIX): the connection's own peer is then the client, as the spec says.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V1_PREFIX = b"PROXY "
V1_MAX = 107  # the specification's bound, CRLF included
MAX_HEADER = 16 + 4096  # v2: head and at most 4 KiB of addresses and TLVs
_V2_HEAD = 16
_V4_MAPPED = bytes(10) + b"\xff\xff"
_FAMILIES = {0x0: "UNSPEC", 0x1: "INET", 0x2: "INET6", 0x3: "UNIX"}
_ADDRESS_BYTES = {"UNSPEC": 0, "INET": 12, "INET6": 36, "UNIX": 216}


class ProxyHeaderError(ValueError):
    """Not a PROXY protocol header, or a malformed one."""


class NoProxyHeader(ProxyHeaderError):
    """The bytes do not begin as a PROXY protocol header does (a ClientHello, say)."""


@dataclass(frozen=True, slots=True)
class ProxyHeader:
    version: int  # 1 or 2
    length: int  # bytes the header takes at the start of the stream
    source: tuple[str, int] | None  # the client's address and port; None: the peer's own
    destination: tuple[str, int] | None  # the address and port the client connected to


def starts_like_proxy_header(data: bytes) -> bool:
    """Whether `data` (at least a few bytes) begins as either version's header does."""
    if not data:
        return False
    signature = V2_SIGNATURE if data[0] == V2_SIGNATURE[0] else V1_PREFIX
    n = min(len(data), len(signature))
    return data[:n] == signature[:n]


def parse_proxy_header(data: bytes) -> ProxyHeader | None:
    if not data:
        return None
    if data[0] == V2_SIGNATURE[0]:  # "\r": only v2 starts so
        return _v2(data)
    if data[0] == V1_PREFIX[0]:
        return _v1(data)
    raise NoProxyHeader("no PROXY protocol header")


# -- version 1 ----------------------------------------------------------------------------


def _v1(data: bytes) -> ProxyHeader | None:
    head = data[: len(V1_PREFIX)]
    if head != V1_PREFIX[: len(head)]:
        raise NoProxyHeader("no PROXY protocol header")
    end = data.find(b"\r", 0, V1_MAX - 1)  # the CR of the CRLF that ends it
    if end < 0:
        if b"\n" in data[:V1_MAX] or len(data) >= V1_MAX - 1:
            raise ProxyHeaderError("a v1 header must end with CRLF within 107 bytes")
        return None
    if end + 1 == len(data):
        return None
    if data[end + 1] != 0x0A or b"\n" in data[:end]:
        raise ProxyHeaderError("a v1 header must end with CRLF within 107 bytes")
    line = data[len(V1_PREFIX) : end]
    if not line.isascii():
        raise ProxyHeaderError("a v1 header is ASCII")
    parts = line.decode("ascii").split(" ")
    if parts[0] == "UNKNOWN":  # the front does not know: anything may follow, ignored
        return ProxyHeader(1, end + 2, None, None)
    if len(parts) != 5:
        raise ProxyHeaderError("a v1 header has a protocol, two addresses and two ports")
    proto, src, dst, sport, dport = parts
    if proto not in ("TCP4", "TCP6"):
        raise ProxyHeaderError(f"unknown v1 protocol {proto[:8]!r}")
    version = 4 if proto == "TCP4" else 6
    return ProxyHeader(
        1,
        end + 2,
        (_v1_address(src, version), _v1_port(sport)),
        (_v1_address(dst, version), _v1_port(dport)),
    )


def _v1_address(text: str, version: int) -> str:
    """The address in its canonical text (inet_ntop's): IPv4 dotted quads exactly as written
    (no leading zeros), IPv6 without a scope."""
    family = socket.AF_INET if version == 4 else socket.AF_INET6
    try:
        packed = socket.inet_pton(family, text)
    except (OSError, ValueError):
        raise ProxyHeaderError(f"not an IPv{version} address: {text[:45]!r}") from None
    if version == 4 and socket.inet_ntop(family, packed) != text:
        raise ProxyHeaderError(f"not an IPv4 address: {text[:45]!r}")
    return _text(packed)


def _v1_port(text: str) -> int:
    # Decimal without a sign or leading zeros (int() would take "+1", "0x1" is refused anyway)
    if not (text.isdigit() and text.isascii()) or len(text) > 5 or text != str(int(text)):
        raise ProxyHeaderError(f"not a port: {text[:8]!r}")
    port = int(text)
    if port > 65535:
        raise ProxyHeaderError(f"not a port: {text}")
    return port


# -- version 2 ----------------------------------------------------------------------------


def _v2(data: bytes) -> ProxyHeader | None:
    n = min(len(data), len(V2_SIGNATURE))
    if data[:n] != V2_SIGNATURE[:n]:
        raise NoProxyHeader("no PROXY protocol header")
    if len(data) < _V2_HEAD:
        return None
    version, command = data[12] >> 4, data[12] & 0x0F
    if version != 2:
        raise ProxyHeaderError(f"unknown PROXY protocol version {version}")
    if command > 1:
        raise ProxyHeaderError(f"unknown v2 command {command}")
    length = _V2_HEAD + int.from_bytes(data[14:16], "big")
    if length > MAX_HEADER:
        raise ProxyHeaderError(f"a v2 header of {length} bytes is too large")
    if len(data) < length:
        return None
    if command == 0:  # LOCAL: the front's own connection (a health check); its block is
        return ProxyHeader(2, length, None, None)  # discarded, family included (the spec)
    family = _FAMILIES.get(data[13] >> 4)
    transport = data[13] & 0x0F
    if family is None or transport > 2:
        raise ProxyHeaderError(f"unknown v2 address family or transport 0x{data[13]:02x}")
    body = data[_V2_HEAD:length]
    if transport == 2:
        raise ProxyHeaderError("a v2 header for a datagram, not a TCP connection")
    need = _ADDRESS_BYTES[family]
    if len(body) < need:
        raise ProxyHeaderError(f"a v2 {family} header shorter than its addresses")
    _tlvs(body, need)
    if family == "INET":
        return ProxyHeader(2, length, _v2_address(body, 0, 8, 4), _v2_address(body, 4, 10, 4))
    if family == "INET6":
        return ProxyHeader(2, length, _v2_address(body, 0, 32, 16), _v2_address(body, 16, 34, 16))
    return ProxyHeader(2, length, None, None)  # UNSPEC or UNIX: no IP address of a client


def _v2_address(body: bytes, at: int, port_at: int, size: int) -> tuple[str, int]:
    return _text(body[at : at + size]), int.from_bytes(body[port_at : port_at + 2], "big")


def _text(packed: bytes) -> str:
    """An address's text; an IPv4-mapped IPv6 address (a dual-stack front's view of an IPv4
    client) as the IPv4 address it is, so rules on IPv4 networks match it."""
    if len(packed) == 4:
        return socket.inet_ntop(socket.AF_INET, packed)
    if packed[:12] == _V4_MAPPED:
        return socket.inet_ntop(socket.AF_INET, packed[12:])
    return socket.inet_ntop(socket.AF_INET6, packed)


def _tlvs(body: bytes, pos: int) -> None:
    """Walk the TLVs after the addresses: each must fit in what is left of the header."""
    end = len(body)
    while pos < end:
        if pos + 3 > end:
            raise ProxyHeaderError("a v2 TLV cut short")
        pos += 3 + int.from_bytes(body[pos + 1 : pos + 3], "big")
        if pos > end:
            raise ProxyHeaderError("a v2 TLV longer than the header")
