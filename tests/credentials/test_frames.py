"""A websocket's first message read off its bytes, against frames made by the websockets
library (a real client's encoder, with and without permessage-deflate): any split of the
stream gives the same answer, and what is not a first message is refused in words."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.extensions.permessage_deflate import PerMessageDeflate
from websockets.frames import Frame, Opcode

from hagate.credentials.frames import FrameError, first_message

LIMIT = 4096


def frame(
    payload: bytes, opcode: Opcode = Opcode.TEXT, fin: bool = True, deflate: bool = False
) -> bytes:
    extensions = [PerMessageDeflate(False, False, 15, 15)] if deflate else None
    return Frame(opcode, payload, fin=fin).serialize(mask=True, extensions=extensions)


AUTH = json.dumps({"type": "auth", "access_token": "a.b.c"}).encode()


@settings(max_examples=300, deadline=None)
@given(
    payload=st.binary(max_size=LIMIT),
    after=st.binary(max_size=64),
    cuts=st.lists(st.integers(min_value=0, max_value=LIMIT + 200), max_size=8),
    deflate=st.booleans(),
)
def test_any_split_gives_the_same_message(
    payload: bytes, after: bytes, cuts: list[int], deflate: bool
) -> None:
    wire = frame(payload, deflate=deflate)
    stream = wire + after  # a pipelined frame after it stays unread
    whole = first_message(stream, LIMIT, deflate=deflate)
    assert whole is not None and whole.payload == payload and whole.consumed == len(wire)
    for cut in sorted(c for c in cuts if c < len(wire)):
        assert first_message(stream[:cut], LIMIT, deflate=deflate) is None


@pytest.mark.parametrize(
    ("wire", "words"),
    [
        (frame(AUTH, Opcode.BINARY), "not text (opcode 2)"),
        (frame(AUTH[:5], fin=False), "fragmented"),
        (frame(b"", Opcode.CLOSE), "closed the websocket"),
        (frame(b"", Opcode.PING), "not text (opcode 9)"),
        (Frame(Opcode.TEXT, AUTH).serialize(mask=False), "not masked"),
        (frame(b"x" * (LIMIT + 1)), f"longer than {LIMIT} bytes"),
        (frame(AUTH, deflate=True), "reserved bits"),  # deflate not agreed
        (frame(b"x" * 70000), f"longer than {LIMIT} bytes"),  # a 64-bit length
    ],
)
def test_what_is_not_a_first_message_is_refused(wire: bytes, words: str) -> None:
    with pytest.raises(FrameError, match=re.escape(words)):
        first_message(wire, LIMIT)


def test_a_deflated_message_that_inflates_past_the_limit_is_refused() -> None:
    bomb = frame(b"{" + b" " * 100_000 + b"}", deflate=True)
    assert len(bomb) < LIMIT  # small on the wire
    with pytest.raises(FrameError, match="longer than"):
        first_message(bomb, LIMIT, deflate=True)
    garbage = b"\xff" * 10  # not a deflate stream; masked with zeros, as sent
    wire = bytes([0x80 | 0x40 | 0x1, 0x80 | len(garbage)]) + b"\x00" * 4 + garbage
    with pytest.raises(FrameError, match="does not inflate"):
        first_message(wire, LIMIT, deflate=True)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_give_a_message_none_or_words(data: bytes) -> None:
    try:
        found = first_message(data, LIMIT, deflate=True)
    except FrameError as e:
        assert str(e)
    else:
        assert found is None or found.consumed <= len(data)
