"""Message bodies as pure code over bytes: a reader is shown what is buffered and answers how
much of it is the body's next piece.

Rules of this module:
  1. `reader.next(buf, most)` consumes the framing at the front of `buf` (chunk-size lines,
     CRLFs, trailers) and returns how many bytes at the front of `buf` are body data (at most
     `most`), which the caller takes before calling again; or NEED_MORE (nothing yet), or END
     (the body is complete). A reader never consumes a byte past its body's end: what follows
     is the next message.
  2. Any split of the byte stream gives the same pieces joined together and the same end.
  3. A framing error raises the error of the side that sent the bytes: ClientBodyError for a
     request body (the client's fault, 400 or 413), UpstreamBodyError for a response body
     (Home Assistant's fault, never the client's). The code that moves the bytes never has to
     ask which side a reader reads.
  4. When the stream ends and `next` said NEED_MORE, `at_eof()` says END (a body that lasts
     until the close) or raises: the body ended early.
"""

from __future__ import annotations

import enum
import re
from typing import Protocol

NEED_MORE = 0
END = -1
MAX_CHUNK_LINE = 4096
MAX_TRAILERS = 16384
LAST_CHUNK = b"0\r\n\r\n"
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,12})(?:;[\x21-\x7e\t ]*)?")


class Side(enum.Enum):
    CLIENT = "client"
    UPSTREAM = "upstream"


class BodyError(Exception):
    """A body that broke its framing or a limit, or ended early."""

    side: Side

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class ClientBodyError(BodyError):
    """The client's request body: answered 400 (or 413) when nothing was sent yet."""

    side = Side.CLIENT


class UpstreamBodyError(BodyError):
    """Home Assistant's response body: a 502 when nothing was sent yet, else a cut."""

    side = Side.UPSTREAM


def _error(side: Side, reason: str, status: int = 400) -> BodyError:
    if side is Side.CLIENT:
        return ClientBodyError(status, reason)
    return UpstreamBodyError(502, f"Home Assistant's response body is broken: {reason}")


def _ended_early(side: Side) -> BodyError:
    if side is Side.CLIENT:
        return ClientBodyError(400, "the request body ended early")
    return UpstreamBodyError(502, "Home Assistant closed the connection before the body's end")


class BodyReader(Protocol):
    def next(self, buf: bytearray, most: int) -> int: ...

    def at_eof(self) -> int: ...


def parse_chunk_size(line: bytes | bytearray) -> int:
    """The size from a chunk-size line (without its CRLF); extensions are ignored. ValueError
    for anything else."""
    m = _CHUNK_SIZE.fullmatch(line)
    if not m:
        raise ValueError("malformed chunk size line")
    return int(m.group(1), 16)


def encode_chunk(data: bytes | bytearray) -> bytes:
    return b"".join((b"%x\r\n" % len(data), data, b"\r\n"))


class LengthReader:
    """A body of Content-Length bytes."""

    __slots__ = ("remaining", "side")

    def __init__(self, length: int, side: Side) -> None:
        self.remaining = length
        self.side = side

    def next(self, buf: bytearray, most: int) -> int:
        remaining = self.remaining
        if not remaining:
            return END
        if not buf:
            return NEED_MORE
        n = min(len(buf), remaining, most)
        self.remaining = remaining - n
        return n

    def at_eof(self) -> int:
        if not self.remaining:
            return END
        raise _ended_early(self.side)


class UntilCloseReader:
    """A response body that lasts until the connection closes (no length, not chunked)."""

    __slots__ = ()

    def next(self, buf: bytearray, most: int) -> int:
        return min(len(buf), most) if buf else NEED_MORE

    def at_eof(self) -> int:
        return END


class _Chunked(enum.Enum):
    SIZE = 0  # expecting a chunk-size line
    DATA = 1  # inside a chunk's data
    DATA_END = 2  # expecting the CRLF after a chunk's data
    TRAILERS = 3  # after the last chunk: trailer lines up to an empty one
    DONE = 4


class ChunkedReader:
    """A chunked body: pieces of chunk data out, trailers read and dropped (bounded). With
    `limit`, a body larger than `limit` bytes is a 413."""

    __slots__ = ("limit", "remaining", "seen", "side", "state", "trailers")

    def __init__(self, side: Side, limit: int = 0) -> None:
        self.side = side
        self.limit = limit
        self.state = _Chunked.SIZE
        self.remaining = 0
        self.seen = 0
        self.trailers = 0

    def next(self, buf: bytearray, most: int) -> int:
        while True:
            state = self.state
            if state is _Chunked.DATA:
                if not buf:
                    return NEED_MORE
                n = min(len(buf), self.remaining, most)
                self.remaining -= n
                if not self.remaining:
                    self.state = _Chunked.DATA_END
                return n
            if state is _Chunked.SIZE:
                line = self._line(buf, MAX_CHUNK_LINE, "chunk size line too long")
                if line is None:
                    return NEED_MORE
                try:
                    size = parse_chunk_size(line)
                except ValueError as e:
                    raise _error(self.side, str(e)) from None
                if size:
                    self.seen += size
                    if self.limit and self.seen > self.limit:
                        raise _error(self.side, "the request body is too large", 413)
                    self.remaining, self.state = size, _Chunked.DATA
                else:
                    self.state = _Chunked.TRAILERS
            elif state is _Chunked.DATA_END:
                if len(buf) < 2:
                    if buf and buf[0] != 0x0D:
                        raise _error(self.side, "chunk data longer than its size")
                    return NEED_MORE
                if buf[0] != 0x0D or buf[1] != 0x0A:
                    raise _error(self.side, "chunk data longer than its size")
                del buf[:2]
                self.state = _Chunked.SIZE
            elif state is _Chunked.TRAILERS:
                line = self._line(buf, MAX_TRAILERS - self.trailers, "trailers too large")
                if line is None:
                    return NEED_MORE
                self.trailers += len(line) + 2
                if self.trailers > MAX_TRAILERS:
                    raise _error(self.side, "trailers too large")
                if not line:
                    self.state = _Chunked.DONE
                    return END
            else:
                return END

    def _line(self, buf: bytearray, limit: int, too_long: str) -> bytes | None:
        """The line at the front of `buf` without its CRLF, consumed; None while incomplete."""
        i = buf.find(b"\r\n", 0, limit + 2)
        if i < 0:
            if len(buf) >= limit + 2:
                raise _error(self.side, too_long)
            return None
        line = bytes(buf[:i])
        del buf[: i + 2]
        return line

    def at_eof(self) -> int:
        if self.state is _Chunked.DONE:
            return END
        raise _ended_early(self.side)


def request_body_reader(content_length: int | None, chunked: bool, limit: int) -> BodyReader:
    """The reader of a request body with this framing (the head has vetted it)."""
    if chunked:
        return ChunkedReader(Side.CLIENT, limit)
    return LengthReader(content_length or 0, Side.CLIENT)


def response_body_reader(content_length: int | None, chunked: bool) -> BodyReader:
    """The reader of a response body with this framing (RFC 9112 6.3: chunked, else the
    length, else until the close)."""
    if chunked:
        return ChunkedReader(Side.UPSTREAM)
    if content_length is not None:
        return LengthReader(content_length, Side.UPSTREAM)
    return UntilCloseReader()
