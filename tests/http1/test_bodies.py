"""Body readers: the same pieces and the same end for any split of the byte stream, never a
byte past the body, and a framing error blamed on the side that sent it."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hagate.http1.bodies import (
    END,
    MAX_CHUNK_LINE,
    MAX_TRAILERS,
    NEED_MORE,
    BodyError,
    BodyReader,
    ChunkedReader,
    ClientBodyError,
    LengthReader,
    Side,
    UntilCloseReader,
    UpstreamBodyError,
    encode_chunk,
    parse_chunk_size,
    request_body_reader,
    response_body_reader,
)

NEXT = b"GET /next HTTP/1.1\r\n\r\n"  # what follows a body on a kept-alive connection


def drive(
    reader: BodyReader, parts: list[bytes], most: int = 1 << 16, eof: bool = True
) -> tuple[bytes, bytes, bool]:
    """Feed `parts` one by one as a connection would: (body, the bytes the reader left
    unread once the body ended (or all it was given), ended)."""
    buf = bytearray()
    body = bytearray()
    for i, part in enumerate(parts):
        buf += part
        while True:
            n = reader.next(buf, most)
            if n == END:
                return bytes(body), bytes(buf) + b"".join(parts[i + 1 :]), True
            if n == NEED_MORE:
                break
            assert 0 < n <= most and n <= len(buf)
            body += buf[:n]
            del buf[:n]
    if eof and reader.at_eof() == END:
        return bytes(body), bytes(buf), True
    return bytes(body), bytes(buf), False


def splits(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, at = [], 0
    for p in points:
        out.append(data[at:p])
        at = p
    out.append(data[at:])
    return out


def chunked(pieces: list[bytes], trailers: bytes = b"") -> bytes:
    return b"".join(encode_chunk(p) for p in pieces if p) + b"0\r\n" + trailers + b"\r\n"


def test_chunk_size_lines() -> None:
    assert parse_chunk_size(b"1a") == 26
    assert parse_chunk_size(b"0") == 0
    assert parse_chunk_size(b"5;name=value") == 5
    for bad in (b"", b" 5", b"5 ", b"0x5", b"-1", b"g", b"1234567890abc"):
        with pytest.raises(ValueError):
            parse_chunk_size(bad)


@settings(max_examples=300, deadline=None)
@given(
    pieces=st.lists(st.binary(max_size=300), max_size=8),
    cuts=st.lists(st.integers(min_value=0, max_value=5000), max_size=12),
    most=st.integers(min_value=1, max_value=500),
    trailers=st.sampled_from([b"", b"X-Trailer: 1\r\n", b"A: b\r\nC: d\r\n"]),
)
def test_chunked_any_split_gives_the_same_body_and_stops_at_its_end(
    pieces: list[bytes], cuts: list[int], most: int, trailers: bytes
) -> None:
    stream = chunked(pieces, trailers) + NEXT
    body, left, ended = drive(ChunkedReader(Side.CLIENT), splits(stream, cuts), most)
    assert ended and body == b"".join(pieces)
    assert left == NEXT  # never a byte past the body: the next request is untouched


@settings(max_examples=300, deadline=None)
@given(
    body=st.binary(max_size=2000),
    cuts=st.lists(st.integers(min_value=0, max_value=3000), max_size=12),
    most=st.integers(min_value=1, max_value=700),
)
def test_length_any_split_gives_the_same_body_and_stops_at_its_end(
    body: bytes, cuts: list[int], most: int
) -> None:
    stream = body + NEXT
    got, left, ended = drive(LengthReader(len(body), Side.CLIENT), splits(stream, cuts), most)
    assert ended and got == body and left == NEXT


@settings(max_examples=200, deadline=None)
@given(
    body=st.binary(max_size=2000),
    cuts=st.lists(st.integers(min_value=0, max_value=3000), max_size=12),
)
def test_until_close_is_everything_until_the_end_of_stream(body: bytes, cuts: list[int]) -> None:
    got, left, ended = drive(UntilCloseReader(), splits(body, cuts))
    assert ended and got == body and left == b""


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=400), cuts=st.lists(st.integers(0, 500), max_size=6))
def test_any_bytes_give_pieces_or_a_body_error_never_a_crash(data: bytes, cuts: list[int]) -> None:
    for side in Side:
        try:
            body, _, _ = drive(ChunkedReader(side), splits(data, cuts))
        except BodyError as e:
            assert e.side is side
        else:
            assert len(body) <= len(data)


def test_framing_errors_are_blamed_on_the_side_that_sent_them() -> None:
    broken = [
        b"zz\r\n",  # not a size
        b"5\r\nhello!!\r\n",  # data longer than its size
        b"5\r\nhelloXY",  # no CRLF after the data
        b"1" * (MAX_CHUNK_LINE + 10),  # a size line without end
        b"0\r\n" + b"X: " + b"a" * MAX_TRAILERS + b"\r\n\r\n",  # trailers too large
    ]
    for data in broken:
        with pytest.raises(ClientBodyError) as client:
            drive(ChunkedReader(Side.CLIENT), [data])
        assert client.value.status == 400
        with pytest.raises(UpstreamBodyError) as upstream:
            drive(ChunkedReader(Side.UPSTREAM), [data])
        assert upstream.value.status == 502
        assert "Home Assistant" in upstream.value.reason


def test_a_body_cut_short_is_an_error_of_its_sender() -> None:
    with pytest.raises(ClientBodyError, match="request body ended early"):
        drive(LengthReader(10, Side.CLIENT), [b"12345"])
    with pytest.raises(UpstreamBodyError, match="before the body's end"):
        drive(LengthReader(10, Side.UPSTREAM), [b"12345"])
    with pytest.raises(UpstreamBodyError):
        drive(ChunkedReader(Side.UPSTREAM), [b"5\r\nhello\r\n"])  # no last chunk
    # Without an end of stream, an unfinished body is simply waiting for more.
    assert drive(LengthReader(10, Side.CLIENT), [b"12345"], eof=False) == (b"12345", b"", False)


def test_a_chunked_request_over_the_limit_is_413() -> None:
    reader = request_body_reader(None, True, limit=8)
    with pytest.raises(ClientBodyError) as e:
        drive(reader, [chunked([b"12345", b"67890"])])
    assert e.value.status == 413
    body, _, ended = drive(request_body_reader(None, True, limit=10), [chunked([b"12345"] * 2)])
    assert ended and body == b"1234512345"  # exactly the limit passes


def test_response_framing_follows_rfc_9112() -> None:
    assert isinstance(response_body_reader(5, True), ChunkedReader)  # chunked wins
    assert isinstance(response_body_reader(5, False), LengthReader)
    assert isinstance(response_body_reader(None, False), UntilCloseReader)
    assert drive(response_body_reader(0, False), [NEXT]) == (b"", NEXT, True)
