"""The PROXY protocol header parser: both versions as the specification writes them, every
field's length, hostile headers, any split, and never an exception of another kind."""

from __future__ import annotations

import ipaddress
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hagate.front.proxyheader import (
    MAX_HEADER,
    V2_SIGNATURE,
    NoProxyHeader,
    ProxyHeader,
    ProxyHeaderError,
    parse_proxy_header,
    starts_like_proxy_header,
)

HELLO = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"  # how a ClientHello begins


def v2(src: str, dst: str, sport: int, dport: int, tlvs: bytes = b"", command: int = 1) -> bytes:
    a, b = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    family = 0x11 if a.version == 4 else 0x21
    body = a.packed + b.packed + struct.pack(">HH", sport, dport) + tlvs
    return V2_SIGNATURE + bytes([0x20 | command, family]) + struct.pack(">H", len(body)) + body


def tlv(kind: int, value: bytes) -> bytes:
    return bytes([kind]) + struct.pack(">H", len(value)) + value


def test_v1_tcp4_and_tcp6_name_the_client_and_the_port_it_connected_to() -> None:
    line = b"PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\n"
    assert parse_proxy_header(line + HELLO) == ProxyHeader(
        1, len(line), ("203.0.113.7", 51234), ("192.0.2.1", 443)
    )
    line = b"PROXY TCP6 2001:db8::7 2001:db8::1 65535 8443\r\n"
    got = parse_proxy_header(line)
    assert got is not None and got.source == ("2001:db8::7", 65535) and got.length == len(line)


def test_ipv4_mapped_clients_are_their_ipv4_address() -> None:
    got = parse_proxy_header(b"PROXY TCP6 ::ffff:198.51.100.4 2001:db8::1 1 443\r\n")
    assert got is not None and got.source == ("198.51.100.4", 1)
    got = parse_proxy_header(v2("::ffff:198.51.100.5", "2001:db8::1", 2, 443))
    assert got is not None and got.source == ("198.51.100.5", 2)
    got = parse_proxy_header(b"PROXY TCP6 2001:0DB8:0:0::7 2001:db8::1 1 443\r\n")
    assert got is not None and got.source == ("2001:db8::7", 1)  # canonical text


def test_v1_unknown_carries_no_client_and_ignores_what_follows() -> None:
    for line in (b"PROXY UNKNOWN\r\n", b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n"):
        assert parse_proxy_header(line + HELLO) == ProxyHeader(1, len(line), None, None)


def test_v1_at_the_107_byte_bound() -> None:
    longest = b"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"
    assert len(longest) == 104
    assert parse_proxy_header(longest) is not None
    unknown = b"PROXY UNKNOWN " + b"x" * (107 - 16) + b"\r\n"
    assert len(unknown) == 107 and parse_proxy_header(unknown) is not None
    with pytest.raises(ProxyHeaderError, match="107"):
        parse_proxy_header(b"PROXY UNKNOWN " + b"x" * (108 - 16) + b"\r\n")
    with pytest.raises(ProxyHeaderError, match="107"):
        parse_proxy_header(b"PROXY TCP4 " + b"1" * 200)


@pytest.mark.parametrize(
    "line",
    [
        b"PROXY TCP4 203.0.113.7 192.0.2.1 51234\r\n",  # a field missing
        b"PROXY TCP4 203.0.113.7 192.0.2.1 51234 443 1\r\n",  # one too many
        b"PROXY TCP4  203.0.113.7 192.0.2.1 51234 443\r\n",  # two spaces
        b"PROXY TCP4 2001:db8::1 192.0.2.1 1 443\r\n",  # an IPv6 address in TCP4
        b"PROXY TCP6 203.0.113.7 2001:db8::1 1 443\r\n",  # an IPv4 address in TCP6
        b"PROXY TCP6 fe80::1%eth0 2001:db8::1 1 443\r\n",  # a scope
        b"PROXY TCP4 203.0.113.07 192.0.2.1 1 443\r\n",  # a leading zero
        b"PROXY TCP4 203.0.113.7 192.0.2.1 65536 443\r\n",  # a port past 16 bits
        b"PROXY TCP4 203.0.113.7 192.0.2.1 0443 443\r\n",
        b"PROXY TCP4 203.0.113.7 192.0.2.1 +1 443\r\n",
        b"PROXY TCP4 203.0.113.7 192.0.2.1 -1 443\r\n",
        b"PROXY TCP4 203.0.113.7 192.0.2.1 \xd9\xa1 443\r\n",  # an Arabic-Indic digit
        b"PROXY UDP4 203.0.113.7 192.0.2.1 1 443\r\n",
        b"PROXY tcp4 203.0.113.7 192.0.2.1 1 443\r\n",
        b"PROXY TCP4 203.0.113.7 192.0.2.1 1 443\n",  # LF without CR
        b"PROXY TCP4 203.0.113.7 192.0.2.1 1 443\rX",  # CR without LF
        b"PROXY\r\n",
        b"PROXY \r\n",
        b"PROXYTCP4 203.0.113.7 192.0.2.1 1 443\r\n",
    ],
)
def test_v1_malformed_is_refused(line: bytes) -> None:
    with pytest.raises(ProxyHeaderError):
        parse_proxy_header(line)


def test_v2_inet_and_inet6_with_tlvs_skipped() -> None:
    tlvs = tlv(0x01, b"http/1.1") + tlv(0x04, b"\x00" * 10) + tlv(0xEA, b"vpce-0123")
    header = v2("198.51.100.9", "192.0.2.1", 40000, 443, tlvs)
    assert parse_proxy_header(header + HELLO) == ProxyHeader(
        2, len(header), ("198.51.100.9", 40000), ("192.0.2.1", 443)
    )
    header = v2("2001:db8::9", "2001:db8::1", 1, 2)
    got = parse_proxy_header(header)
    assert got is not None and got.source == ("2001:db8::9", 1) and got.length == 16 + 36


def test_v2_local_and_unspec_and_unix_carry_no_client() -> None:
    local = V2_SIGNATURE + b"\x20\x00\x00\x00"
    assert parse_proxy_header(local + HELLO) == ProxyHeader(2, 16, None, None)
    # LOCAL may still carry addresses (HAProxy's health checks do): ignored, as the spec says
    local = v2("198.51.100.9", "192.0.2.1", 1, 2, command=0)
    assert parse_proxy_header(local) == ProxyHeader(2, len(local), None, None)
    unspec = V2_SIGNATURE + b"\x21\x00\x00\x00"
    assert parse_proxy_header(unspec) == ProxyHeader(2, 16, None, None)
    unix = V2_SIGNATURE + b"\x21\x31" + struct.pack(">H", 216) + b"/run/a".ljust(216, b"\x00")
    assert parse_proxy_header(unix) == ProxyHeader(2, 16 + 216, None, None)


@pytest.mark.parametrize(
    ("header", "words"),
    [
        (V2_SIGNATURE + b"\x11\x11\x00\x0c" + b"\x00" * 12, "version 1"),
        (V2_SIGNATURE + b"\x31\x11\x00\x0c" + b"\x00" * 12, "version 3"),
        (V2_SIGNATURE + b"\x22\x11\x00\x0c" + b"\x00" * 12, "command 2"),
        (V2_SIGNATURE + b"\x2f\x11\x00\x0c" + b"\x00" * 12, "command 15"),
        (V2_SIGNATURE + b"\x21\x41\x00\x0c" + b"\x00" * 12, "family"),
        (V2_SIGNATURE + b"\x21\x13\x00\x0c" + b"\x00" * 12, "family"),
        (V2_SIGNATURE + b"\x21\x12\x00\x0c" + b"\x00" * 12, "datagram"),
        (V2_SIGNATURE + b"\x21\x11\x00\x0b" + b"\x00" * 11, "shorter than its addresses"),
        (V2_SIGNATURE + b"\x21\x21\x00\x0c" + b"\x00" * 12, "shorter than its addresses"),
        (V2_SIGNATURE + b"\x21\x11\xff\xff", "too large"),
        (V2_SIGNATURE + b"\x21\x11" + struct.pack(">H", MAX_HEADER - 15), "too large"),
        (v2("1.2.3.4", "5.6.7.8", 1, 2, b"\x01\x00"), "TLV cut short"),
        (v2("1.2.3.4", "5.6.7.8", 1, 2, b"\x01\x00\x09abc"), "TLV longer"),
        (v2("1.2.3.4", "5.6.7.8", 1, 2, tlv(1, b"ab") + b"\x02\xff\xff"), "TLV longer"),
        (b"\r\n\r\n\x00\r\nQUIX\n\x21\x11\x00\x00", "no PROXY"),
    ],
)
def test_v2_hostile_headers_are_refused(header: bytes, words: str) -> None:
    with pytest.raises(ProxyHeaderError, match=words):
        parse_proxy_header(header)


def test_the_largest_v2_header_allowed_is_parsed() -> None:
    filler = tlv(0x04, b"\x00" * (MAX_HEADER - 16 - 12 - 3))
    header = v2("1.2.3.4", "5.6.7.8", 1, 2, filler)
    assert len(header) == MAX_HEADER
    got = parse_proxy_header(header)
    assert got is not None and got.length == MAX_HEADER


def test_a_clienthello_or_http_where_a_header_should_be_is_refused_at_once() -> None:
    for start in (HELLO[:1], b"GET / HTTP/1.1\r\n", b"\x00", b"\rX", b"PROXZ"):
        with pytest.raises(NoProxyHeader):
            parse_proxy_header(start)
    assert not starts_like_proxy_header(HELLO)
    assert starts_like_proxy_header(b"PROXY TCP4 1")
    assert starts_like_proxy_header(V2_SIGNATURE[:5])


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(
        [
            b"PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\n",
            b"PROXY TCP6 2001:db8::7 2001:db8::1 1 443\r\n",
            b"PROXY UNKNOWN\r\n",
            v2("198.51.100.9", "192.0.2.1", 40000, 443, tlv(0x01, b"h2") + tlv(0x03, b"abcd")),
            v2("2001:db8::9", "2001:db8::1", 1, 2),
            V2_SIGNATURE + b"\x20\x00\x00\x00",
        ]
    ),
    st.data(),
)
def test_any_prefix_needs_more_and_the_whole_gives_the_same_answer(
    header: bytes, data: st.DataObject
) -> None:
    """Headers split across packets: every strict prefix asks for more bytes, never a wrong
    answer; the whole, with the ClientHello right behind it in one packet, gives the header
    and its exact length (the ClientHello's bytes are not the header's)."""
    cut = data.draw(st.integers(1, len(header) - 1))
    assert parse_proxy_header(header[:cut]) is None
    got = parse_proxy_header(header + HELLO)
    assert got is not None and got.length == len(header)
    assert parse_proxy_header(header) == got


@settings(max_examples=2000, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=300),
        st.binary(max_size=300).map(lambda b: V2_SIGNATURE + b),
        st.binary(max_size=120).map(lambda b: b"PROXY " + b),
        st.tuples(st.integers(0, 255), st.integers(0, 255), st.binary(max_size=80)).map(
            lambda t: V2_SIGNATURE + bytes([t[0], t[1]]) + struct.pack(">H", len(t[2])) + t[2]
        ),
    )
)
def test_any_bytes_give_a_header_more_or_a_refusal(data: bytes) -> None:
    """Never another exception, never a length past the input, never an address that is
    not one."""
    try:
        got = parse_proxy_header(data)
    except ProxyHeaderError:
        return
    if got is None:
        assert len(data) < MAX_HEADER
        return
    assert 0 < got.length <= len(data)
    for where in (got.source, got.destination):
        if where is not None:
            ipaddress.ip_address(where[0])
            assert 0 <= where[1] <= 65535


def test_every_declared_v2_length_is_parsed_waited_for_or_refused() -> None:
    """An INET PROXY header declaring 0 to 64 bytes after its head, with exactly that many
    (zero-filled: a run of zero-type, zero-length TLVs) or fewer: below 12 it is refused, at
    12 and more it is a header of that length; cut short, it waits."""
    for declared in range(0, 65):
        head = V2_SIGNATURE + b"\x21\x11" + struct.pack(">H", declared)
        whole = head + bytes(declared)
        if declared:
            assert parse_proxy_header(whole[:-1]) is None
        if declared < 12:
            with pytest.raises(ProxyHeaderError, match="shorter than its addresses"):
                parse_proxy_header(whole)
            continue
        rest = declared - 12
        if rest % 3 and rest % 3 < 3:  # a TLV head cut short
            with pytest.raises(ProxyHeaderError, match="TLV cut short"):
                parse_proxy_header(whole)
            continue
        got = parse_proxy_header(whole + HELLO)
        assert got is not None and got.length == 16 + declared
