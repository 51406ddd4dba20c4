"""A websocket client's first message, read off the bytes it sent (RFC 6455), so the gateway
can see the token in it before it lets the connection through; the bytes themselves are then
forwarded unchanged.

Rules:
  1. Pure: bytes in; the message, "not yet" (None), or a FrameError saying why not.
  2. Only a whole, masked text frame is a first message: fragmented, binary, control, unmasked
     or reserved-bit frames, and anything longer than the limit, are refused, since Home
     Assistant's own first message (`{"type": "auth", ...}`) is none of those.
  3. With permessage-deflate agreed in the handshake, a compressed frame (RSV1) is inflated,
     to the same limit.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

TEXT = 0x1
CLOSE = 0x8
DEFLATE_TAIL = b"\x00\x00\xff\xff"


class FrameError(Exception):
    """Why a first message cannot be read: words for the event."""


@dataclass(frozen=True, slots=True)
class FirstMessage:
    payload: bytes  # the message, unmasked (and inflated)
    consumed: int  # the bytes of the frame, from the start of the buffer


def first_message(
    data: bytes | bytearray, limit: int, deflate: bool = False
) -> FirstMessage | None:
    """The first message in `data` (what the client has sent so far), None while it is not
    all there; FrameError for anything that is not a first message."""
    if len(data) < 2:
        return None
    b0, b1 = data[0], data[1]
    fin, rsv, opcode = b0 & 0x80, b0 & 0x70, b0 & 0x0F
    if opcode == CLOSE:
        raise FrameError("the client closed the websocket before it authenticated")
    if opcode != TEXT:
        raise FrameError(f"the websocket's first frame is not text (opcode {opcode})")
    if not fin:
        raise FrameError("the websocket's first message is fragmented")
    compressed = rsv == 0x40 and deflate
    if rsv and not compressed:
        raise FrameError("the websocket's first frame sets reserved bits")
    if not b1 & 0x80:
        raise FrameError("the websocket's first frame is not masked")
    length, at = b1 & 0x7F, 2
    if length == 126:
        if len(data) < 4:
            return None
        length, at = int.from_bytes(data[2:4], "big"), 4
    elif length == 127:
        if len(data) < 10:
            return None
        length, at = int.from_bytes(data[2:10], "big"), 10
    if length > limit:
        raise FrameError(f"the websocket's first message is longer than {limit} bytes")
    end = at + 4 + length
    if len(data) < end:
        return None
    mask = data[at : at + 4]
    body = bytes(b ^ mask[i & 3] for i, b in enumerate(data[at + 4 : end]))
    if compressed:
        body = _inflate(body, limit)
    return FirstMessage(body, end)


def _inflate(body: bytes, limit: int) -> bytes:
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body + DEFLATE_TAIL, limit + 1)
    except zlib.error:
        raise FrameError("the websocket's first message does not inflate") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise FrameError(f"the websocket's first message is longer than {limit} bytes")
    return out
