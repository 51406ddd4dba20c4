"""Reading the server name (SNI) and ALPN from a TLS ClientHello, as pure code over bytes.

The relay routes on these without terminating TLS. Rules:
  1. `parse_client_hello` returns None while more bytes are needed, a `ClientHello` once the
     whole message is in, and raises `ClientHelloError` for anything that is not a well-formed
     ClientHello. It never raises anything else, whatever the input (fuzzed in the tests).
  2. The message may span several TLS records; it is bounded by `MAX_HELLO` bytes.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass

MAX_HELLO = 16384 + 5 * 4  # a ClientHello larger than one full record is refused
_HANDSHAKE = 0x16
_CLIENT_HELLO = 0x01
_EXT_SNI = 0x0000
_EXT_ALPN = 0x0010


class ClientHelloError(ValueError):
    """Not a TLS ClientHello, or a malformed one."""


@dataclass(frozen=True)
class ClientHello:
    sni: str | None
    alpn: tuple[str, ...]
    record_bytes: int  # how many bytes of input the records carrying it took


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


def parse_client_hello(data: bytes) -> ClientHello | None:
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
            try:
                host = name.decode("ascii")
            except UnicodeDecodeError:
                raise ClientHelloError("server name is not ASCII") from None
            if not host or len(host) > 253 or any(c in host for c in "\x00/ \\"):
                raise ClientHelloError("malformed server name")
            host = host.lower().rstrip(".")
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


def _set_once(future: asyncio.Future[None]) -> None:
    if not future.done():  # the reader callback may fire again before the waiter runs
        future.set_result(None)


async def peek_client_hello(conn: socket.socket) -> ClientHello | None:
    """Wait for a complete ClientHello in the socket's buffer without consuming it.

    None when the peer closed first; ClientHelloError when it is not TLS. The bytes stay in
    the socket for whoever does the handshake (or forwards them).
    """
    loop = asyncio.get_running_loop()
    last = -1
    while True:
        try:
            data = conn.recv(MAX_HELLO, socket.MSG_PEEK)  # usually already there
        except BlockingIOError:
            ready: asyncio.Future[None] = loop.create_future()
            loop.add_reader(conn.fileno(), _set_once, ready)
            try:
                await ready
            finally:
                loop.remove_reader(conn.fileno())
            continue
        if not data:
            return None
        hello = parse_client_hello(data)
        if hello is not None:
            return hello
        if len(data) == last or len(data) >= MAX_HELLO:
            await asyncio.sleep(0.01)  # partial hello still buffered: wait for more bytes
        last = len(data)
