"""The ClientHello reader as first written, field by field with a reader object per vector:
the reference the position-based `hagate.clienthello.parse_client_hello` is checked against."""

from __future__ import annotations

from hagate.clienthello import (
    _EXT_ALPN,
    _EXT_SNI,
    ClientHello,
    ClientHelloError,
    _handshake_bytes,
    host_name,
)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ClientHelloError("truncated ClientHello")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "big")

    def u24(self) -> int:
        return int.from_bytes(self.take(3), "big")

    def vector(self, length_bytes: int) -> _Reader:
        n = int.from_bytes(self.take(length_bytes), "big")
        return _Reader(self.take(n))

    @property
    def done(self) -> bool:
        return self.pos == len(self.data)


def reference_parse_client_hello(data: bytes) -> ClientHello | None:
    got = _handshake_bytes(data)
    if got is None:
        return None
    message, consumed = got
    r = _Reader(message)
    r.u8()
    body = r.vector(3)
    body.take(2)  # legacy_version
    body.take(32)  # random
    session_id = body.vector(1)
    if len(session_id.data) > 32:
        raise ClientHelloError("session id too long")
    suites = body.vector(2)
    if not suites.data or len(suites.data) % 2:
        raise ClientHelloError("bad cipher suite list")
    if not body.vector(1).data:
        raise ClientHelloError("no compression methods")
    sni: str | None = None
    alpn: tuple[str, ...] = ()
    if not body.done:
        extensions = body.vector(2)
        if not body.done:
            raise ClientHelloError("bytes after the extensions")
        seen: set[int] = set()
        while not extensions.done:
            ext_type = extensions.u16()
            ext = extensions.vector(2)
            if ext_type in seen:
                raise ClientHelloError("duplicate extension")
            seen.add(ext_type)
            if ext_type == _EXT_SNI:
                sni = _server_name(ext)
            elif ext_type == _EXT_ALPN:
                alpn = _alpn(ext)
    return ClientHello(sni, alpn, consumed)


def _server_name(ext: _Reader) -> str | None:
    names = ext.vector(2)
    if not ext.done:
        raise ClientHelloError("bytes after the server name list")
    host: str | None = None
    while not names.done:
        kind = names.u8()
        name = names.vector(2).data
        if kind == 0:
            if host is not None:
                raise ClientHelloError("more than one host name")
            host = host_name(name)  # the name's own check is shared
    return host


def _alpn(ext: _Reader) -> tuple[str, ...]:
    protocols = ext.vector(2)
    out: list[str] = []
    while not protocols.done:
        name = protocols.vector(1).data
        if not name:
            raise ClientHelloError("empty ALPN protocol")
        out.append(name.decode("latin-1"))
    return tuple(out)
