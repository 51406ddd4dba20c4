"""The request head parser and target normaliser: the gateway's security boundary."""

from __future__ import annotations

import re
from urllib.parse import unquote_plus, unquote_to_bytes

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hagate.http1.heads import (
    HOP_BY_HOP,
    HeadError,
    _lines,
    parse_headers,
    parse_request_head,
    parse_response_head,
    response_head_bytes,
    response_head_bytes_by_field,
    split_block,
    split_head,
)
from hagate.http1.paths import (
    REDACTED,
    SECRET_PARAMETERS,
    PathError,
    normalise_path,
    normalise_target,
    redact_query,
)


def head(*lines: str, request: str = "GET / HTTP/1.1") -> bytes:
    return ("\r\n".join([request, *lines]) + "\r\n\r\n").encode("latin-1")


def refused(data: bytes) -> HeadError:
    with pytest.raises(HeadError) as e:
        parse_request_head(data)
    return e.value


def test_a_plain_request() -> None:
    h = parse_request_head(head("Host: ha.example.com", "User-Agent: curl/8"))
    assert (h.method, h.target.path, h.version, h.host) == (
        "GET",
        "/",
        "HTTP/1.1",
        "ha.example.com",
    )
    assert h.keep_alive and not h.has_body and h.get("user-agent") == "curl/8"


@pytest.mark.parametrize(
    ("lines", "request_line", "status", "needle"),
    [
        (["Host: a", "Content-Length: 5", "Transfer-Encoding: chunked"], None, 400, "both"),
        (["Host: a", "Transfer-Encoding: chunked", "Content-Length: 5"], None, 400, "both"),
        (["Host: a", "Content-Length: 5", "Content-Length: 5"], None, 400, "more than one"),
        (["Host: a", "Content-Length: 5, 5"], None, 400, "malformed"),
        (["Host: a", "Content-Length: +5"], None, 400, "malformed"),
        (["Host: a", "Content-Length: -1"], None, 400, "malformed"),
        (["Host: a", "Content-Length: 0x10"], None, 400, "malformed"),
        (["Host: a", "Transfer-Encoding: gzip, chunked"], None, 400, "chunked"),
        (
            ["Host: a", "Transfer-Encoding: chunked", "Transfer-Encoding: chunked"],
            None,
            400,
            "chunked",
        ),
        (["Host: a", "Transfer-Encoding: xchunked"], None, 400, "chunked"),
        (["Host: a", "Transfer-Encoding: identity"], None, 400, "chunked"),
        (["Host: a", "X-Folded: a", " continued"], None, 400, "folding"),
        (["Host: a", "X-Folded: a", "\tcontinued"], None, 400, "folding"),
        (["Host: a", "Content-Length : 5"], None, 400, "whitespace"),
        (["Host: a", "Content-Length\t: 5"], None, 400, "whitespace"),
        (["Host: a", "Upgrade: h2c", "Connection: Upgrade, HTTP2-Settings"], None, 400, "h2c"),
        (["Host: a", "X: a\x00b"], None, 400, "control"),
        (["Host: a", "Host: b"], None, 400, "more than one Host"),
        (["User-Agent: x"], None, 400, "missing Host"),
        (["Host: a", "Expect: something"], None, 417, "Expect"),
        (["Host: a"], "GET / HTTP/2.0", 505, "HTTP/1.0 and HTTP/1.1"),
        (["Host: a"], "GET / FTP/1.0", 400, "version"),
        (["Host: a"], "GET  / HTTP/1.1", 400, "request line"),
        (["Host: a"], "get / HTTP/1.1", 400, "method"),
        (["Host: a"], "CONNECT a:443 HTTP/1.1", 405, "CONNECT"),
        (["Host: a"], "GET http://a/ HTTP/1.1", 400, "origin-form"),
        (["Host: a", "Transfer-Encoding: chunked"], "POST / HTTP/1.0", 400, "HTTP/1.0"),
    ],
)
def test_smuggling_and_malformed_heads_are_refused(
    lines: list[str], request_line: str | None, status: int, needle: str
) -> None:
    e = refused(head(*lines, request=request_line or "GET / HTTP/1.1"))
    assert e.status == status and needle in e.reason


@pytest.mark.parametrize(
    "raw",
    [
        b"GET / HTTP/1.1\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\n\n",
    ],
)
def test_bare_cr_or_lf_is_refused(raw: bytes) -> None:
    assert refused(raw).status == 400


def test_framing_is_read_correctly() -> None:
    h = parse_request_head(
        head("Host: a", "Content-Length: 12"),
    )
    assert h.content_length == 12 and h.has_body
    h = parse_request_head(head("Host: a", "Transfer-Encoding: Chunked"))
    assert h.chunked and h.content_length is None
    h = parse_request_head(head("Host: a", "Connection: close"))
    assert not h.keep_alive
    h = parse_request_head(head("Host: a", request="GET / HTTP/1.0"))
    assert not h.keep_alive
    h = parse_request_head(head("Connection: keep-alive", request="GET / HTTP/1.0"))
    assert h.keep_alive and h.host == ""
    h = parse_request_head(head("Host: a", "Upgrade: websocket", "Connection: keep-alive, Upgrade"))
    assert h.websocket
    h = parse_request_head(head("Host: a", "Expect: 100-continue", "Content-Length: 3"))
    assert h.expect_continue


def test_header_count_limit() -> None:
    lines = ["Host: a", *(f"X-{i}: v" for i in range(100))]
    assert refused(head(*lines)).status == 431


# -- paths --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "path"),
    [
        ("/", "/"),
        ("/api/states", "/api/states"),
        ("/api/states?x=1", "/api/states"),
        ("/auth/token/../../api/states", "/api/states"),
        ("/auth/./token", "/auth/token"),
        ("/auth/%2e%2e/api/states", "/api/states"),
        ("/auth/%2E/token", "/auth/token"),
        ("//api/states", "/api/states"),
        ("/api//states", "/api/states"),
        ("/api/states/", "/api/states/"),
        ("/api/states/.", "/api/states/"),
        ("/api/states/..", "/api/"),
        ("/%61pi/states", "/api/states"),
        ("/a%20b", "/a%20b"),
        ("/a%c3%a9", "/a%C3%A9"),
        ("/a%25b", "/a%25b"),
        ("/api/~user/x:y@z", "/api/~user/x:y@z"),
    ],
)
def test_normalisation(target: str, path: str) -> None:
    assert normalise_target(target).path == path


@pytest.mark.parametrize(
    "target",
    [
        "/auth/token%2F..%2F..%2Fapi/states",
        "/auth/token%2f..%2f..%2fapi/states",
        "/auth/token%5C..%5Capi",
        "/../api/states",
        "/auth/../../api",
        "/%2e%2e/api",
        "/a%00b",
        "/a%0a",
        "/a%3Fb",
        "/a%23b",
        "/a%zz",
        "/a%2",
        "/a b",
        "/a\\b",
        "/a#frag",
        "api/states",
        "*",
        "/caf\xe9",
    ],
)
def test_ambiguous_or_malformed_paths_are_refused(target: str) -> None:
    with pytest.raises(PathError):
        normalise_target(target)


# -- properties ---------------------------------------------------------------------------

TARGET_CHARS = st.sampled_from([*"/.%2eEfF5cC0a?#\\ ~:@!x", "%2f", "%2e", "%2E", "..", "//"])


@settings(max_examples=2000, deadline=None)
@given(st.lists(TARGET_CHARS, max_size=20).map(lambda p: "/" + "".join(p)))
def test_normalised_paths_are_canonical_and_stable(target: str) -> None:
    try:
        t = normalise_target(target)
    except PathError:
        return
    p = t.path
    assert p.startswith("/")
    segments = p.split("/")[1:]
    assert "." not in segments and ".." not in segments
    assert "//" not in p
    assert normalise_target(p).path == p  # idempotent: what is forwarded re-normalises to itself
    # No segment is a dot segment in any spelling once decoded.
    for seg in segments:
        assert unquote_to_bytes(seg) not in (b".", b"..")


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=300))
def test_head_parser_raises_only_its_own_error_on_any_bytes(data: bytes) -> None:
    try:
        parse_request_head(data + b"\r\n\r\n")
    except HeadError as e:
        assert 400 <= e.status < 600


HEAD_PIECES = st.sampled_from(
    [
        b"GET / HTTP/1.1\r\n",
        b"POST /a/../b HTTP/1.1\r\n",
        b"Host: a\r\n",
        b"Host: b\r\n",
        b"Content-Length: 5\r\n",
        b"Content-Length: 05\r\n",
        b"Transfer-Encoding: chunked\r\n",
        b"Transfer-Encoding: gzip\r\n",
        b" folded\r\n",
        b"X : y\r\n",
        b"\n",
        b"\r",
        b"Connection: close\r\n",
        b"Upgrade: h2c\r\n",
        b"Upgrade: websocket\r\n",
        b"Connection: upgrade\r\n",
        b"Expect: 100-continue\r\n",
    ]
)


@settings(max_examples=3000, deadline=None)
@given(st.lists(HEAD_PIECES, min_size=1, max_size=10))
def test_head_parser_never_accepts_ambiguous_framing(pieces: list[bytes]) -> None:
    data = b"".join(pieces) + b"\r\n"
    try:
        h = parse_request_head(data)
    except HeadError:
        return
    lower = data.lower()
    # Whatever is accepted has exactly one way to find the end of its body.
    assert not (b"content-length" in lower and b"transfer-encoding" in lower)
    assert lower.count(b"content-length") <= 1 and lower.count(b"transfer-encoding") <= 1
    assert b"h2c" not in lower and b"\r\n " not in data and b" :" not in data
    assert h.chunked == (b"transfer-encoding" in lower)


def test_response_heads() -> None:
    r = parse_response_head(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n")
    assert (r.status, r.content_length, r.chunked, r.keep_alive) == (200, 3, False, True)
    r = parse_response_head(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n")
    assert r.status == 101
    r = parse_response_head(b"HTTP/1.0 200 OK\r\n\r\n")
    assert not r.keep_alive and r.content_length is None
    with pytest.raises(HeadError) as e:
        parse_response_head(b"HTTP/1.1 OK\r\n\r\n")
    assert e.value.status == 502


# -- the fast paths agree with the step-by-step ones -----------------------------------------

PATH_PIECES = st.sampled_from(
    [*"/.aZ09-_~!$&'()*+,;=:@", "%2e", "%41", "%2F", "%", "..", "//", "/.", "./", " ", "é"]
)


@settings(max_examples=3000, deadline=None)
@given(st.lists(PATH_PIECES, max_size=16).map(lambda p: "/" + "".join(p)))
def test_fast_path_normalisation_equals_the_full_one(raw_path: str) -> None:
    try:
        full: str | PathError = normalise_path(raw_path)
    except PathError as e:
        full = e
    try:
        fast: str | PathError = normalise_target(raw_path).path
    except PathError as e:
        fast = e
    if isinstance(full, PathError):
        assert isinstance(fast, PathError), (raw_path, fast)
    else:
        assert fast == full


HEADER_LINE_PIECES = st.sampled_from(
    [
        b"Name",
        b"X-A",
        b":",
        b" ",
        b"\t",
        b"value",
        b"\x00",
        b"\x7f",
        b"\xe9",
        b"\r",
        b"\n",
        b"\r\n",
        b"(",
        b"a:b",
        b"",
    ]
)


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.lists(HEADER_LINE_PIECES, max_size=6), max_size=6))
def test_one_pass_header_parsing_equals_line_by_line(lines: list[list[bytes]]) -> None:
    """split_head reads the header block with two regular expressions; parse_headers vets it
    line by line. They must accept the same heads and read the same fields."""
    block = b"".join(b"".join(line) + b"\r\n" for line in lines)
    head = b"GET / HTTP/1.1\r\n" + block + b"\r\n"
    try:
        reference: list[tuple[str, str]] | int = parse_headers(_lines(head)[1:], 100)
    except HeadError as e:
        reference = e.status
    try:
        fast: list[tuple[str, str]] | int = split_head(head, 100)[1]
    except HeadError as e:
        fast = e.status
    assert fast == reference, head


def test_header_values_lose_surrounding_whitespace_only() -> None:
    h = parse_request_head(b"GET / HTTP/1.1\r\nHost: a \r\nX-A:\t b  c \t\r\nX-B:\r\n\r\n")
    assert h.headers == [("Host", "a"), ("X-A", "b  c"), ("X-B", "")]


RESPONSE_FIELDS = st.sampled_from(
    [
        "Content-Type: text/plain",
        "Content-Length: 12",
        "content-length: 12",
        "Transfer-Encoding: chunked",
        "Connection: keep-alive",
        "Connection: close",
        "connection: Keep-Alive, X-Private",
        "Connection: upgrade",
        "Keep-Alive: timeout=5",
        "Upgrade: websocket",
        "TE: trailers",
        "Trailer: X-Sum",
        "Proxy-Authenticate: Basic",
        "X-Private: secret",
        "Close: odd but legal",
        "X-Connection: not hop-by-hop",
        "Set-Cookie: a=b; Path=/",
        "Server: nginx  ",
    ]
)


@settings(max_examples=3000, deadline=None)
@given(
    st.lists(RESPONSE_FIELDS, max_size=8),
    st.booleans(),
    st.booleans(),
    st.booleans(),
)
def test_response_head_fast_path_equals_field_by_field(
    fields: list[str], keep_alive: bool, rechunk: bool, drop_length: bool
) -> None:
    raw = ("\r\n".join(["HTTP/1.1 200 OK", *fields]) + "\r\n\r\n").encode("latin-1")
    try:
        rhead = parse_response_head(raw)
    except HeadError:
        return
    fast = response_head_bytes(rhead, "OK", keep_alive, rechunk, drop_length)
    reference = response_head_bytes_by_field(rhead, "OK", keep_alive, rechunk, drop_length)
    # The same status line and fields in the same order (the fast path keeps the upstream's
    # optional whitespace around values, which is not part of them).
    assert split_head(fast, 100) == split_head(reference, 100)
    lower = fast.lower()
    assert b"keep-alive: " not in lower and b"\r\nupgrade:" not in lower
    assert lower.count(b"\r\nconnection:") == 1


QUERY_PART = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABC0123456789%-_.+", max_size=12)


@settings(max_examples=2000, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.one_of(st.sampled_from(sorted(SECRET_PARAMETERS)), QUERY_PART),
            st.sampled_from(["=", ""]),
            QUERY_PART,
        ),
        min_size=1,
        max_size=6,
    )
)
def test_query_redaction_hides_every_secret_value_and_keeps_the_rest(
    params: list[tuple[str, str, str]],
) -> None:
    parts = [
        f"{name.upper() if i % 2 else name}{eq}{value}"
        for i, (name, eq, value) in enumerate(params)
    ]
    out = redact_query("&".join(parts)).split("&")
    assert len(out) == len(parts)
    for part, shown in zip(parts, out, strict=True):
        name, eq, _ = part.partition("=")
        if eq and unquote_plus(name).lower() in SECRET_PARAMETERS:
            assert shown == f"{name}={REDACTED}"
        else:
            assert shown == part


# -- what Home Assistant's parser would read otherwise (issue 11) -------------------------


@pytest.mark.parametrize(
    "host",
    [
        "ha.test:@evil.test",
        "ha.test:443@evil.test",
        "ha.test:x@evil.test",
        "ha.test:/@evil.test",
        "user@ha.test",
        "ha.test:99999",
        "ha.test:65536",
        "ha.test:0",
        "ha.test:abc",
        "ha.test:-1",
        "ha.test:443/x",
        "ha.test:",
        "ha.test:443:443",
        "ha.test/x",
        "ha.test?x",
        "ha.test#x",
        "ha.test\\evil.test",
        "",
        "[::1",
        "[ha.test]",
        "[::1]x",
        "ha.test :443",
    ],
)
def test_a_host_that_is_not_exactly_host_and_port_is_refused(host: str) -> None:
    assert refused(head(f"Host: {host}")).status == 400


@pytest.mark.parametrize(
    ("host", "name"),
    [
        ("ha.test", "ha.test"),
        ("HA.Test", "ha.test"),
        ("ha.test.", "ha.test"),
        ("ha.test:443", "ha.test"),
        ("ha.test:1", "ha.test"),
        ("ha.test:65535", "ha.test"),
        ("127.0.0.1:8443", "127.0.0.1"),
        ("[::1]:443", "[::1]"),
        ("[2001:DB8::1]", "[2001:db8::1]"),
    ],
)
def test_a_host_and_port_gives_its_name(host: str, name: str) -> None:
    assert parse_request_head(head(f"Host: {host}")).host_name == name


@given(st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=30))
def test_an_accepted_host_is_a_name_and_an_optional_port_only(value: str) -> None:
    """Whatever Host the parser lets through splits into a name without userinfo or path and
    a port in range, and the name is the start of the value as sent."""
    try:
        h = parse_request_head(head(f"Host: {value}"))
    except HeadError:
        return
    assert not set("@/?#\\") & set(value)
    if value.startswith("["):
        inside, _, after = value[1:].partition("]")
        assert after == "" or (after[0] == ":" and 0 < int(after[1:]) < 65536)
        assert h.host_name == f"[{inside}]".lower()
    else:
        name, colon, port = value.partition(":")
        assert not colon or (port.isdigit() and len(port) <= 5 and 0 < int(port) < 65536)
        assert h.host_name == name.lower().rstrip(".")


@pytest.mark.parametrize(
    "named",
    [
        "Host",
        "Content-Length",
        "Transfer-Encoding",
        "Authorization",
        "Cookie",
        "User-Agent",
        "X-Forwarded-For",
        "X-Forwarded-Proto",
        "X-Forwarded-Host",
        "keep-alive, HOST",
    ],
)
def test_a_connection_header_naming_an_end_to_end_field_is_refused(named: str) -> None:
    e = refused(head("Host: a", f"Connection: {named}"))
    assert e.status == 400 and "Connection header names" in e.reason


@pytest.mark.parametrize("value", ["close", "keep-alive", "Upgrade", "keep-alive, X-Hop"])
def test_connection_keeps_its_meaning_for_its_own_tokens(value: str) -> None:
    h = parse_request_head(head("Host: a", f"Connection: {value}"))
    assert h.keep_alive == (value != "close")


@pytest.mark.parametrize(
    "lines",
    [
        ["Upgrade: websocket", "Connection: Upgrade", "Content-Length: 36"],
        ["Upgrade: websocket", "Connection: Upgrade", "Transfer-Encoding: chunked"],
        ["Upgrade: websocket", "Content-Length: 1"],  # with or without Connection: Upgrade
        ["Upgrade: tcp", "Connection: Upgrade", "Content-Length: 5"],
    ],
)
def test_a_request_with_upgrade_and_a_body_is_refused(lines: list[str]) -> None:
    e = refused(head("Host: a", *lines, request="POST /auth/token HTTP/1.1"))
    assert e.status == 400 and "Upgrade" in e.reason


def test_an_upgrade_without_a_body_is_accepted() -> None:
    h = parse_request_head(
        head("Host: a", "Upgrade: websocket", "Connection: Upgrade", "Content-Length: 0")
    )
    assert h.websocket and h.upgrade and not h.has_body


@pytest.mark.parametrize("lines", [["Content-Length: 5"], ["Transfer-Encoding: chunked"]])
def test_a_head_request_with_a_body_is_refused(lines: list[str]) -> None:
    e = refused(head("Host: a", *lines, request="HEAD / HTTP/1.1"))
    assert e.status == 400 and "HEAD" in e.reason
    assert not parse_request_head(
        head("Host: a", "Content-Length: 0", request="HEAD / HTTP/1.1")
    ).has_body


@pytest.mark.parametrize(
    "name",
    [
        "User-Agent",
        "Content-Type",
        "Content-Location",
        "Content-Range",
        "ETag",
        "Max-Forwards",
        "Server",
    ],
)
def test_two_of_a_field_that_may_appear_once_are_refused(name: str) -> None:
    e = refused(head("Host: a", f"{name}: one", f"{name.lower()}: two"))
    assert e.status == 400 and name.lower() in e.reason
    assert parse_request_head(head("Host: a", f"{name}: one", "Cookie: a", "Cookie: b"))


def test_the_obsolete_websocket_handshake_is_refused() -> None:
    e = refused(head("Host: a", "Sec-WebSocket-Key1: 4 @1  46546xW%0l 1 5"))
    assert e.status == 400 and "Sec-WebSocket-Key1" in e.reason


def test_a_response_with_a_coding_other_than_chunked_lasts_until_the_close() -> None:
    r = parse_response_head(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 5\r\n\r\n"
    )
    assert r.content_length is None and not r.chunked


@pytest.mark.parametrize("method", ["POS", "GT", "POSTPOST", "PROPFIND", "TRACE", "PRI"])
def test_a_method_home_assistant_does_not_serve_is_answered_501(method: str) -> None:
    e = refused(head("Host: a", request=f"{method} / HTTP/1.1"))
    assert e.status == 501 and method in e.reason


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"])
def test_the_methods_home_assistant_serves_are_accepted(method: str) -> None:
    assert parse_request_head(head("Host: a", request=f"{method} / HTTP/1.1")).method == method


# How parse_response_head once found those lines: one regex, anchored at every line start.
HOP_OR_LENGTH_REFERENCE = re.compile(
    r"^(" + "|".join(sorted(HOP_BY_HOP | {"content-length"})) + r"):[ \t]*([^\r]*)\r\n",
    re.I | re.M,
)
FIELD_NAMES = st.one_of(
    st.sampled_from(sorted(HOP_BY_HOP | {"content-length", "x-te", "tes", "connections"})).map(
        lambda n: "".join(c.upper() if i % 2 else c for i, c in enumerate(n))
    ),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12),
)
FIELD_VALUES = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=20,
).map(lambda v: v.replace("\t", " "))


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.tuples(FIELD_NAMES, st.sampled_from([":", ": ", ":\t"]), FIELD_VALUES)))
def test_hop_by_hop_lines_are_found_as_the_regex_found_them(
    fields: list[tuple[str, str, str]],
) -> None:
    raw = "HTTP/1.1 200 OK\r\n" + "".join(f"{n}{sep}{v}\r\n" for n, sep, v in fields) + "\r\n"
    try:
        _, block = split_block(raw.encode("latin-1"), 200)
    except HeadError:
        return
    lines = [
        (m.start(), m.group(1).lower(), m.group(2).rstrip(" \t"), m.end())
        for m in HOP_OR_LENGTH_REFERENCE.finditer(block)
    ]
    lengths = [value for _, name, value, _ in lines if name == "content-length"]
    codings = [value.lower() for _, name, value, _ in lines if name == "transfer-encoding"]
    tokens = {
        t.strip().lower() for _, name, v, _ in lines if name == "connection" for t in v.split(",")
    }
    end_to_end, at = "", 0
    for start, name, _, end in lines:
        if name != "content-length":
            end_to_end, at = end_to_end + block[at:start], end
    end_to_end += block[at:]
    if (
        lengths
        and not codings
        and (len(set(lengths)) != 1 or not re.fullmatch("[0-9]{1,18}", lengths[0]))
    ):
        with pytest.raises(HeadError):
            parse_response_head(raw.encode("latin-1"))
        return
    rhead = parse_response_head(raw.encode("latin-1"))
    assert rhead.end_to_end == end_to_end
    assert rhead.connection_tokens == tokens
    assert rhead.length_header == bool(lengths)
    assert rhead.chunked == (bool(codings) and codings[-1].split(",")[-1].strip() == "chunked")
    if lengths and not codings:
        assert rhead.content_length == int(lengths[0])
    else:
        assert rhead.content_length is None
