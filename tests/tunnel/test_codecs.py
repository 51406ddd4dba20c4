"""The relay's pure parts: the ClientHello reader, the frame codec, connector tokens."""

from __future__ import annotations

import contextlib
import ssl
import subprocess
import time
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from hagate.clienthello import ClientHelloError, parse_client_hello
from hagate.tunnel import token as tokens
from hagate.tunnel.frames import (
    MAX_PAYLOAD,
    FrameDecoder,
    FrameError,
    FrameType,
    encode,
    window_increment,
    window_payload,
)
from tests.tunnel.clienthello_reference import reference_parse_client_hello


def python_hello(
    sni: str | None, alpn: list[str] | None = None, version: ssl.TLSVersion | None = None
) -> bytes:
    ctx = ssl.create_default_context()
    if alpn:
        ctx.set_alpn_protocols(alpn)
    if version is not None:
        ctx.maximum_version = version
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    conn = ctx.wrap_bio(incoming, outgoing, server_hostname=sni)
    with pytest.raises(ssl.SSLWantReadError):
        conn.do_handshake()
    return outgoing.read()


def openssl_hello(sni: str) -> bytes:
    """The ClientHello `openssl s_client` sends, captured from a listening socket."""
    import socket

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        proc = subprocess.Popen(
            [
                "openssl",
                "s_client",
                "-connect",
                f"127.0.0.1:{port}",
                "-servername",
                sni,
                "-alpn",
                "http/1.1",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        conn, _ = server.accept()
        conn.settimeout(5)
        data = b""
        deadline = time.monotonic() + 5
        while parse_client_hello(data) is None and time.monotonic() < deadline:
            data += conn.recv(65536)
        conn.close()
        proc.kill()
        proc.wait()
    return data


@pytest.mark.parametrize("version", [None, ssl.TLSVersion.TLSv1_2])
def test_sni_and_alpn_from_a_python_client(version: ssl.TLSVersion | None) -> None:
    hello = parse_client_hello(python_hello("HA.Example.com", ["h2", "http/1.1"], version))
    assert hello is not None
    assert hello.sni == "ha.example.com" and hello.alpn == ("h2", "http/1.1")


def test_sni_from_openssl_s_client() -> None:
    hello = parse_client_hello(openssl_hello("relay.example.net"))
    assert hello is not None and hello.sni == "relay.example.net" and hello.alpn == ("http/1.1",)


def test_no_sni_when_connecting_by_address() -> None:
    hello = parse_client_hello(python_hello(None))
    assert hello is not None and hello.sni is None


def test_needs_more_bytes_until_complete_then_reports_its_size() -> None:
    data = python_hello("ha.example.com")
    for cut in (0, 1, 4, 5, 50, len(data) - 1):
        assert parse_client_hello(data[:cut]) is None
    hello = parse_client_hello(data + b"extra")
    assert hello is not None and hello.record_bytes == len(data)


def test_a_hello_split_across_records() -> None:
    data = python_hello("ha.example.com")
    body = data[5:]
    split = (
        data[:3]
        + len(body[:100]).to_bytes(2, "big")
        + body[:100]
        + data[:3]
        + len(body[100:]).to_bytes(2, "big")
        + body[100:]
    )
    hello = parse_client_hello(split)
    assert hello is not None and hello.sni == "ha.example.com" and hello.record_bytes == len(split)


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"\x16\x03\x01\x00\x00",
        b"\x16\x09\x01\x00\x05hello",
        b"\x16\x03\x01\x00\x05\x02\x00\x00\x01\x00",
        b"SSH-2.0-OpenSSH_9.2\r\n",
    ],
)
def test_not_a_client_hello(data: bytes) -> None:
    with pytest.raises(ClientHelloError):
        parse_client_hello(data)


@settings(max_examples=3000, deadline=None)
@given(st.binary(max_size=600))
def test_clienthello_reader_raises_only_its_own_error(data: bytes) -> None:
    with contextlib.suppress(ClientHelloError):
        parse_client_hello(data)


REAL = python_hello("ha.example.com", ["http/1.1"])


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(REAL) - 1), st.integers(0, 255)), max_size=6))
def test_clienthello_reader_on_corrupted_real_hellos(changes: list[tuple[int, int]]) -> None:
    data = bytearray(REAL)
    for pos, value in changes:
        data[pos] = value
    try:
        hello = parse_client_hello(bytes(data))
    except ClientHelloError:
        return
    if hello is not None and hello.sni is not None:
        assert hello.sni == hello.sni.lower() and "/" not in hello.sni


def outcome(parse: Callable[[bytes], object], data: bytes) -> object:
    try:
        return parse(data)
    except ClientHelloError as e:
        return ("ClientHelloError", str(e))


@settings(max_examples=3000, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, len(REAL) - 1), st.integers(0, 255)), max_size=6),
    st.integers(0, len(REAL)),
)
def test_clienthello_reader_agrees_with_the_field_by_field_reference(
    changes: list[tuple[int, int]], cut: int
) -> None:
    data = bytearray(REAL)
    for pos, value in changes:
        data[pos] = value
    for sample in (bytes(data), bytes(data[:cut])):
        assert outcome(parse_client_hello, sample) == outcome(reference_parse_client_hello, sample)


# -- frames -------------------------------------------------------------------------------


def test_frames_round_trip_through_any_split() -> None:
    frames = [
        encode(FrameType.HELLO, 0, b'{"version":1}'),
        encode(FrameType.OPEN, 7, b"{}"),
        encode(FrameType.DATA, 7, b"x" * 5000),
        encode(FrameType.WINDOW, 7, window_payload(9)),
        encode(FrameType.FIN, 7),
        encode(FrameType.PING, 0, b"12345678"),
    ]
    wire = b"".join(frames)
    for step in (1, 3, 10, 4096, len(wire)):
        decoder = FrameDecoder()
        out = []
        for i in range(0, len(wire), step):
            out += decoder.feed(wire[i : i + step])
        assert [(f.type, f.stream, len(f.payload)) for f in out] == [
            (FrameType.HELLO, 0, 13),
            (FrameType.OPEN, 7, 2),
            (FrameType.DATA, 7, 5000),
            (FrameType.WINDOW, 7, 4),
            (FrameType.FIN, 7, 0),
            (FrameType.PING, 0, 8),
        ]
    assert window_increment(out[3].payload) == 9


@pytest.mark.parametrize(
    "wire",
    [
        b"\x99\x00\x00\x00\x00\x01\x00\x00\x00\x00",  # unknown type
        encode(FrameType.DATA, 0, b"x"),  # data on the connection stream
        encode(FrameType.PING, 3, b"12345678"),  # connection frame on a data stream
        b"\x11\x00\x00\x00\x00\x01" + (MAX_PAYLOAD + 1).to_bytes(4, "big"),  # oversized
    ],
)
def test_malformed_frames(wire: bytes) -> None:
    with pytest.raises(FrameError):
        FrameDecoder().feed(wire)


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=8))
def test_frame_decoder_raises_only_its_own_error(chunks: list[bytes]) -> None:
    decoder = FrameDecoder()
    try:
        for chunk in chunks:
            for frame in decoder.feed(chunk):
                assert len(frame.payload) <= MAX_PAYLOAD
    except FrameError:
        pass


# -- tokens -------------------------------------------------------------------------------


def test_token_verifies_with_the_relay_key_only() -> None:
    key = Ed25519PrivateKey.generate()
    text, claim = tokens.issue(key, "ha.example.com", 30)
    assert tokens.verify(key.public_key(), text) == claim
    with pytest.raises(tokens.TokenError, match="signature"):
        tokens.verify(Ed25519PrivateKey.generate().public_key(), text)
    with pytest.raises(tokens.TokenError, match="revoked"):
        tokens.verify(key.public_key(), text, frozenset({claim.id}))
    with pytest.raises(tokens.TokenError, match="expired"):
        tokens.verify(key.public_key(), text, now=claim.expires + 1)


def test_a_token_cannot_be_edited_to_serve_another_host() -> None:
    import base64
    import json

    key = Ed25519PrivateKey.generate()
    text, _ = tokens.issue(key, "a.example.com", 30)
    prefix, body, sig = text.split(".")
    claim = json.loads(base64.urlsafe_b64decode(body + "=="))
    claim["h"] = "b.example.com"
    forged_body = base64.urlsafe_b64encode(json.dumps(claim).encode()).rstrip(b"=").decode()
    with pytest.raises(tokens.TokenError):
        tokens.verify(key.public_key(), f"{prefix}.{forged_body}.{sig}")
    for junk in ("", "hg1..", "hg2.a.b", "hg1.!!!.???", "hg1.e30.AAAA"):
        with pytest.raises(tokens.TokenError):
            tokens.verify(key.public_key(), junk)


def test_the_connector_reads_its_token_and_says_when_it_expires() -> None:
    from hagate.errors import HagateError
    from hagate.tunnel.connector import EXPIRY_WARNING, expiry_warning, token_claim

    text, claim = tokens.issue(Ed25519PrivateKey.generate(), "ha.example.com", 90)
    assert tokens.read_claim(text) == claim  # no key needed to read what it claims
    assert token_claim(text) == claim
    assert expiry_warning(claim, claim.expires - EXPIRY_WARNING - 1) is None
    warning = expiry_warning(claim, claim.expires - 12 * 86400 - 60)
    assert warning is not None and "in 12 days" in warning
    assert "hagate relay token --hostname ha.example.com" in warning
    with pytest.raises(HagateError, match=r"expired on .*hagate relay token --hostname ha\.ex"):
        token_claim(text, now=claim.expires)
    for junk in ("", "hg1.e30.AAAA", "not a token"):
        with pytest.raises(HagateError, match="not usable"):
            token_claim(junk)


def test_a_pinned_fingerprint_may_be_written_with_colons_and_capitals() -> None:
    from hagate.errors import HagateError
    from hagate.tunnel.connector import pinned_fingerprint

    hexa = "0123456789abcdef" * 4
    colons = ":".join(hexa[i : i + 2] for i in range(0, 64, 2)).upper()
    assert pinned_fingerprint(colons) == pinned_fingerprint(f" {hexa} ") == hexa
    for bad in (hexa[:-1], hexa + "0", "g" * 64, ""):
        with pytest.raises(HagateError, match="bad --relay-fingerprint"):
            pinned_fingerprint(bad)
