"""The tunnel's wire format: frames over one TLS connection between connector and relay.

Every frame is a 10-byte header and a payload:

    type: u8 | flags: u8 | stream: u32 | length: u32 | payload: `length` bytes

Rules:
  1. `FrameDecoder.feed` takes any bytes and returns whole frames; it raises `FrameError` (and
     nothing else) for anything malformed: unknown types, oversized payloads, control frames
     on a data stream and the reverse.
  2. Stream 0 is the connection itself; streams are opened by the relay only.
  3. Flow control is per stream and credit-based: a sender never has more than the window
     granted by WINDOW frames in flight, so a stalled reader holds at most one window.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

HEADER = struct.Struct("!BBII")
MAX_PAYLOAD = 65536
PROTOCOL_VERSION = 1
INITIAL_WINDOW = 256 * 1024


class FrameType(enum.IntEnum):
    HELLO = 0x01  # connector -> relay, stream 0: {"version": 1, "token": "..."}
    WELCOME = 0x02  # relay -> connector, stream 0: {"version": 1, "hostname": "..."}
    REFUSED = 0x03  # relay -> connector, stream 0: why the HELLO was refused
    OPEN = 0x10  # relay -> connector: a client connected; {"client": ip, "port": n}
    DATA = 0x11  # bytes of a stream
    WINDOW = 0x12  # u32: the receiver grants this many more bytes
    FIN = 0x13  # the sender will send no more data on this stream (half-close)
    RESET = 0x14  # the stream is aborted, both ways
    PING = 0x20  # stream 0: 8 opaque bytes, answered by PONG
    PONG = 0x21


CONNECTION_FRAMES = {
    FrameType.HELLO,
    FrameType.WELCOME,
    FrameType.REFUSED,
    FrameType.PING,
    FrameType.PONG,
}


class FrameError(ValueError):
    """The peer broke the protocol; the tunnel connection is closed."""


@dataclass(frozen=True)
class Frame:
    type: FrameType
    stream: int
    payload: bytes = b""
    flags: int = 0


def encode(frame_type: FrameType, stream: int, payload: bytes = b"", flags: int = 0) -> bytes:
    if len(payload) > MAX_PAYLOAD:
        raise FrameError("payload too large")
    return HEADER.pack(frame_type, flags, stream, len(payload)) + payload


def window_payload(increment: int) -> bytes:
    return struct.pack("!I", increment)


def window_increment(payload: bytes) -> int:
    if len(payload) != 4:
        raise FrameError("WINDOW payload must be 4 bytes")
    (n,) = struct.unpack("!I", payload)
    if n == 0:
        raise FrameError("WINDOW increment of 0")
    return int(n)


class FrameDecoder:
    def __init__(self) -> None:
        self.buffer = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        # Frames are cut straight out of `data` when nothing is left over from before, and
        # each payload is copied once (a 64 KiB DATA frame crosses here on every hop).
        buf = self.buffer
        if buf:
            buf += data
            src: bytes | bytearray = buf
        else:
            src = data
        frames: list[Frame] = []
        pos = 0
        with memoryview(src) as view:
            while len(src) - pos >= HEADER.size:
                kind, flags, stream, length = HEADER.unpack_from(src, pos)
                if length > MAX_PAYLOAD:
                    raise FrameError(f"frame payload of {length} bytes is over the limit")
                try:
                    frame_type = FrameType(kind)
                except ValueError:
                    raise FrameError(f"unknown frame type {kind:#x}") from None
                if (frame_type in CONNECTION_FRAMES) != (stream == 0):
                    raise FrameError(f"{frame_type.name} on the wrong stream ({stream})")
                if len(src) - pos - HEADER.size < length:
                    break
                start = pos + HEADER.size
                pos = start + length
                frames.append(Frame(frame_type, stream, view[start:pos].tobytes(), flags))
        if src is buf:
            del buf[:pos]
        elif pos < len(data):
            buf += data[pos:]
        return frames
