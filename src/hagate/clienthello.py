"""Reading the server name (SNI) and ALPN from a TLS ClientHello, as pure code over bytes.

The relay routes on these without terminating TLS. Rules:
  1. `parse_client_hello` returns None while more bytes are needed, a `ClientHello` once the
     whole message is in, and raises `ClientHelloError` for anything that is not a well-formed
     ClientHello. It never raises anything else, whatever the input (fuzzed in the tests).
  2. The message may span several TLS records; it is bounded by `MAX_HELLO` bytes.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

from hagate.peek import peek_until

MAX_HELLO = 16384 + 5 * 4  # a ClientHello larger than one full record is refused
_HANDSHAKE = 0x16
_CLIENT_HELLO = 0x01
_EXT_SNI = 0x0000
_EXT_ALPN = 0x0010
_TYPE_AND_LENGTH = struct.Struct(">HH")  # an extension's type and length


class ClientHelloError(ValueError):
    """Not a TLS ClientHello, or a malformed one."""


@dataclass(frozen=True)
class ClientHello:
    sni: str | None
    alpn: tuple[str, ...]
    record_bytes: int  # how many bytes of input the records carrying it took


def _handshake_bytes(data: bytes) -> tuple[bytes, int] | None:
    """Concatenate handshake record fragments until the ClientHello is complete."""
    out = bytearray()
    pos = 0
    while True:
        if len(data) < pos + 5:
            return None
        if data[pos] != _HANDSHAKE:
            raise ClientHelloError("not a TLS handshake record")
        if data[pos + 1] != 0x03 or data[pos + 2] > 0x04:
            raise ClientHelloError("unknown TLS record version")
        length = int.from_bytes(data[pos + 3 : pos + 5], "big")
        if length == 0 or length > 16384:
            raise ClientHelloError("bad TLS record length")
        if len(data) < pos + 5 + length:
            if pos + 5 + length > MAX_HELLO:
                raise ClientHelloError("ClientHello too large")
            return None
        out += data[pos + 5 : pos + 5 + length]
        pos += 5 + length
        if len(out) >= 4:
            if out[0] != _CLIENT_HELLO:
                raise ClientHelloError("first handshake message is not a ClientHello")
            need = 4 + int.from_bytes(out[1:4], "big")
            if need > MAX_HELLO:
                raise ClientHelloError("ClientHello too large")
            if len(out) >= need:
                return bytes(out[:need]), pos
        if pos > MAX_HELLO:
            raise ClientHelloError("ClientHello too large")


def _vector(m: bytes, pos: int, size: int, end: int) -> int:
    """The end of the vector at `pos` whose length takes `size` bytes; it must fit in m[:end]."""
    start = pos + size
    stop = start + int.from_bytes(m[pos:start], "big")
    if start > end or stop > end:
        raise ClientHelloError("truncated ClientHello")
    return stop


def parse_client_hello(data: bytes) -> ClientHello | None:
    got = _handshake_bytes(data)
    if got is None:
        return None
    m, consumed = got
    # Positions into the message rather than a slice per field: a ClientHello carries a
    # dozen or more extensions, and the relay and the gateway read one per connection.
    end = _vector(m, 1, 3, len(m))  # the handshake body
    pos = 4 + 2 + 32  # legacy_version, random
    stop = _vector(m, pos, 1, end)  # session id
    if stop - pos - 1 > 32:
        raise ClientHelloError("session id too long")
    pos, stop = stop, _vector(m, stop, 2, end)  # cipher suites
    if stop - pos == 2 or (stop - pos) % 2:
        raise ClientHelloError("bad cipher suite list")
    pos, stop = stop, _vector(m, stop, 1, end)  # compression methods
    if stop - pos == 1:
        raise ClientHelloError("no compression methods")
    sni: str | None = None
    alpn: tuple[str, ...] = ()
    if stop != end:
        pos, ext_end = stop + 2, _vector(m, stop, 2, end)
        if ext_end != end:
            raise ClientHelloError("bytes after the extensions")
        seen: set[int] = set()
        while pos != ext_end:
            if pos + 4 > ext_end:
                raise ClientHelloError("truncated ClientHello")
            ext_type, length = _TYPE_AND_LENGTH.unpack_from(m, pos)
            stop = pos + 4 + length
            if stop > ext_end:
                raise ClientHelloError("truncated ClientHello")
            if ext_type in seen:
                raise ClientHelloError("duplicate extension")
            seen.add(ext_type)
            if ext_type == _EXT_SNI:
                sni = _server_name(m[pos + 4 : stop])
            elif ext_type == _EXT_ALPN:
                alpn = _alpn(m[pos + 4 : stop])
            pos = stop
    return ClientHello(sni, alpn, consumed)


def _server_name(ext: bytes) -> str | None:
    end = len(ext)
    if _vector(ext, 0, 2, end) != end:
        raise ClientHelloError("bytes after the server name list")
    host: str | None = None
    pos = 2
    while pos != end:
        kind = ext[pos]
        stop = _vector(ext, pos + 1, 2, end)
        name = ext[pos + 3 : stop]
        pos = stop
        if kind == 0:
            if host is not None:
                raise ClientHelloError("more than one host name")
            host = host_name(name)
    return host


def host_name(name: bytes) -> str:
    """The host name of an SNI entry, lower case without a trailing dot, checked."""
    try:
        host = name.decode("ascii")
    except UnicodeDecodeError:
        raise ClientHelloError("server name is not ASCII") from None
    if not host or len(host) > 253 or any(c in host for c in "\x00/ \\"):
        raise ClientHelloError("malformed server name")
    return host.lower().rstrip(".")


def _alpn(ext: bytes) -> tuple[str, ...]:
    stop_all = _vector(ext, 0, 2, len(ext))  # bytes after the list are ignored
    out: list[str] = []
    pos = 2
    while pos != stop_all:
        stop = _vector(ext, pos, 1, stop_all)
        if stop == pos + 1:
            raise ClientHelloError("empty ALPN protocol")
        out.append(ext[pos + 1 : stop].decode("latin-1"))
        pos = stop
    return tuple(out)


async def peek_client_hello(conn: socket.socket) -> ClientHello | None:
    """Wait for a complete ClientHello in the socket's buffer without consuming it.

    None when the peer closed first; ClientHelloError when it is not TLS. The bytes stay in
    the socket for whoever does the handshake (or forwards them).
    """
    return await peek_until(conn, parse_client_hello, MAX_HELLO)
