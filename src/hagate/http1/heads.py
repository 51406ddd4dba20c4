"""HTTP/1.1 message heads, as pure code over bytes (bodies are in bodies.py).

Rules for requests (the gateway's security boundary):
  1. Every line ends in CRLF; a bare CR or LF anywhere in the head is refused.
  2. A header name is a token directly followed by ":"; whitespace before the colon, obsolete
     line folding and control characters in values are refused.
  3. Body framing is unambiguous or refused: Content-Length with Transfer-Encoding, more than
     one Content-Length, a malformed length, any transfer coding but a single "chunked", and
     `Upgrade: h2c` all get 400.
  4. Limits on head size and header count are enforced by the caller before and here after.
  5. What Home Assistant's parser (aiohttp) would read differently is refused, not repaired:
     a Host that is not exactly `host[:port]` (userinfo, a path, a bad port), a Connection
     header naming a field that is relied on end to end, two of a field that may appear once,
     a body on HEAD (aiohttp reads none) or on a request with Upgrade (aiohttp takes the bytes
     after such a head as the upgraded protocol, and as its next request when it does not
     switch), the obsolete websocket handshake aiohttp refuses, and a method HA's C parser
     does not know.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from hagate.http1.paths import PathError, Target, normalise_target

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VALUE_BAD = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
# The header block (each line with its CRLF) as one match: names are tokens directly followed
# by ":", values hold no control character but HTAB. Whatever fails it is re-parsed line by
# line to say exactly what is wrong.
# Possessive (nothing to backtrack into: a name ends at its colon, a value at its CR), which
# spares the engine its bookkeeping: a quarter faster.
_HEADER_BLOCK = re.compile(r"(?:[!#$%&'*+\-.^_`|~0-9A-Za-z]++:[^\x00-\x08\x0a-\x1f\x7f]*+\r\n)*+")
_HEADER_PAIR = re.compile(r"([^:]+):[ \t]*([^\r]*)\r\n")
_METHOD_TEXT = re.compile(r"[A-Z]{1,20}")
# The methods Home Assistant serves. Its C parser (llhttp) knows a fixed list of methods and
# refuses any other token that its pure-Python parser, and RFC 9110, would take: a made-up
# method is answered here (501), never forwarded for HA to read some other way.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"})
_DIGITS_TEXT = re.compile(r"[0-9]{1,18}")
_STATUS_LINE = re.compile(r"(HTTP/1\.[01]) ([0-9]{3})(?: ([^\r\n]*))?")
MAX_HEADERS = 100
# RFC 3986 `host [":" port]`: an IP-literal in brackets, or a reg-name (IPv4 addresses are
# reg-names by this spelling); the port 1-5 digits. Userinfo, a path or a bad port fail it.
_PLAIN_NAME = re.compile(r"[a-z0-9.\-]+")
_HOST_FIELD = re.compile(
    r"(\[[0-9A-Fa-f:.]+\]|(?:[A-Za-z0-9\-._~!$&'()*+,;=]|%[0-9A-Fa-f]{2})+)(?::([0-9]{1,5}))?"
)

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "proxy-authenticate",
        "proxy-authorization",
    }
)
# Fields that may appear once: aiohttp refuses a request with two of any of them (RFC 9110
# 5.5), and a rule would see only the first.
SINGLETONS = frozenset(
    {
        "content-location",
        "content-range",
        "content-type",
        "etag",
        "max-forwards",
        "server",
        "user-agent",
    }
)
# Fields that the rules read or Home Assistant relies on end to end, and the ones the gateway
# builds: a client's Connection header may not name them (a proxy drops what Connection names,
# so naming Host or User-Agent would strip what the rules saw before HA gets the request).
END_TO_END = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "authorization",
        "cookie",
        "user-agent",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "forwarded",
        "x-real-ip",
    }
)

# What parse_request_head reads of a field, by its lower-case name; it passes over the others.
(
    _HOST,
    _USER_AGENT,
    _ACCEPT,
    _CONNECTION,
    _SINGLE,
    _LENGTH,
    _CODING,
    _AUTHORIZATION,
    _UPGRADE,
    _EXPECT,
    _WEBSOCKET_KEY1,
) = range(11)
_READS = {
    **dict.fromkeys(SINGLETONS, _SINGLE),
    "host": _HOST,
    "user-agent": _USER_AGENT,
    "accept": _ACCEPT,
    "connection": _CONNECTION,
    "content-length": _LENGTH,
    "transfer-encoding": _CODING,
    "authorization": _AUTHORIZATION,
    "upgrade": _UPGRADE,
    "expect": _EXPECT,
    "sec-websocket-key1": _WEBSOCKET_KEY1,
}


def header_value(headers: list[tuple[str, str]], name: str) -> str | None:
    """The first value of header `name` (case-insensitive), or None."""
    lname = name.lower()
    for k, v in headers:
        if k.lower() == lname:
            return v
    return None


class HeadError(ValueError):
    """A request the gateway refuses before it reaches rules or upstream."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(slots=True)
class RequestHead:
    method: str
    target: Target
    version: str
    headers: list[tuple[str, str]]  # as sent; values as Latin-1 text
    host: str  # the Host field as sent (vetted): what the rules see and what is forwarded
    content_length: int | None = None
    chunked: bool = False
    keep_alive: bool = True
    websocket: bool = False
    expect_continue: bool = False
    connection_tokens: frozenset[str] = field(default_factory=frozenset)
    upgrade: bool = False  # an Upgrade field was sent (the gateway forwards only websocket's)
    host_name: str = ""  # the name part of Host, lower case, without a trailing dot
    user_agent: str = ""  # read while parsing: every request's event shows it
    accept: str = ""  # the first Accept field: whether to answer a page in HTML
    authorization: str | None = None  # the first Authorization field, as Home Assistant reads it

    @property
    def has_body(self) -> bool:
        return self.chunked or bool(self.content_length)

    def get(self, name: str) -> str | None:
        return header_value(self.headers, name)


def _lines(head: bytes) -> list[bytes]:
    """Split a head (ending in CRLFCRLF) into lines, refusing bare CR and bare LF."""
    if not head.endswith(b"\r\n\r\n"):
        raise HeadError(400, "the request head is not terminated by CRLF CRLF")
    body = head[:-4]
    lines = body.split(b"\r\n")
    for line in lines:
        if b"\r" in line or b"\n" in line:
            raise HeadError(400, "bare CR or LF in the request head")
    return lines


def parse_headers(lines: list[bytes], limit: int) -> list[tuple[str, str]]:
    if len(lines) > limit:
        raise HeadError(431, f"more than {limit} header fields")
    headers: list[tuple[str, str]] = []
    for line in lines:
        if not line:
            raise HeadError(400, "empty header line")
        if line[0] in b" \t":
            raise HeadError(400, "obsolete line folding is not allowed")
        name, colon, value = line.partition(b":")
        if not colon:
            raise HeadError(400, "a header line without a colon")
        if not _TOKEN.fullmatch(name):
            raise HeadError(400, "invalid header name (whitespace before the colon?)")
        value = value.strip(b" \t")
        if _VALUE_BAD.search(value):
            raise HeadError(400, "control character in a header value")
        headers.append((name.decode("ascii"), value.decode("latin-1")))
    return headers


def split_head(head: bytes, max_headers: int) -> tuple[str, list[tuple[str, str]]]:
    """The first line and the vetted header fields of a head (CRLF CRLF included)."""
    first, block = split_block(head, max_headers)
    return first, header_pairs(block)


def header_pairs(block: str) -> list[tuple[str, str]]:
    """The (name, value) pairs of a vetted header block."""
    headers: list[tuple[str, str]] = _HEADER_PAIR.findall(block)
    if " \r\n" in block or "\t\r\n" in block:  # trailing whitespace is not part of a value
        headers = [(name, value.rstrip(" \t")) for name, value in headers]
    return headers


def split_block(head: bytes, max_headers: int) -> tuple[str, str]:
    """The first line and the vetted header block (each field line with its CRLF)."""
    if not head.endswith(b"\r\n\r\n"):
        raise HeadError(400, "the request head is not terminated by CRLF CRLF")
    text = head.decode("latin-1")
    end = text.find("\r\n")
    first = text[:end]
    block = text[end + 2 : -2]
    if "\n" in first or "\r" in first:
        raise HeadError(400, "bare CR or LF in the request head")
    if block.count("\r\n") > max_headers:
        raise HeadError(431, f"more than {max_headers} header fields")
    if not _HEADER_BLOCK.fullmatch(block):
        parse_headers(_lines(head)[1:], max_headers)  # raises the precise error
        raise HeadError(400, "malformed header field")
    return first, block


def parse_request_head(head: bytes, max_headers: int = MAX_HEADERS) -> RequestHead:
    """Parse and vet one request head (request line through the blank line)."""
    request_line, headers = split_head(head, max_headers)
    parts = request_line.split(" ")
    if len(parts) != 3:
        raise HeadError(400, "malformed request line")
    method, raw_target, version = parts
    if method not in METHODS:
        if not _METHOD_TEXT.fullmatch(method):
            raise HeadError(400, "malformed method")
        if method == "CONNECT":
            raise HeadError(405, "CONNECT is not supported")
        raise HeadError(501, f"the method {method} is not supported")
    if version != "HTTP/1.1" and version != "HTTP/1.0":
        if re.fullmatch(r"HTTP/[0-9]\.[0-9]", version):
            raise HeadError(505, "only HTTP/1.0 and HTTP/1.1 are supported")
        raise HeadError(400, "malformed HTTP version")
    try:
        target = normalise_target(raw_target)
    except PathError as e:
        raise HeadError(400, str(e)) from None

    hosts: list[str] = []
    lengths: list[str] = []
    codings: list[str] = []
    conn: set[str] = set()
    upgrade: list[str] = []
    expect: list[str] = []
    singles: list[str] = []
    user_agent = accept = ""
    authorization: str | None = None
    for name, value in headers:
        n = name.lower()
        kind = _READS.get(n)
        if kind is None:  # most of a browser's fields: nothing here reads them
            continue
        if kind == _HOST:
            hosts.append(value)
        elif kind == _USER_AGENT:
            singles.append(n)
            user_agent = value  # a second one is refused below
        elif kind == _ACCEPT:
            accept = accept or value
        elif kind == _CONNECTION:
            for token in value.split(","):
                token = token.strip()
                if token:
                    conn.add(token.lower())
        elif kind == _SINGLE:
            singles.append(n)
        elif kind == _LENGTH:
            lengths.append(value)
        elif kind == _CODING:
            codings.append(value)
        elif kind == _AUTHORIZATION:
            if authorization is None:
                authorization = value
        elif kind == _UPGRADE:
            upgrade.append(value.lower())
        elif kind == _EXPECT:
            expect.append(value.lower())
        else:  # Sec-WebSocket-Key1: the 2010 websocket draft, which aiohttp refuses
            raise HeadError(400, "the obsolete websocket handshake (Sec-WebSocket-Key1)")

    if len(hosts) > 1:
        raise HeadError(400, "more than one Host header")
    if len(singles) > 1 and len(set(singles)) != len(singles):
        twice = next(n for n in singles if singles.count(n) > 1)
        raise HeadError(400, f"more than one {twice} header")
    if not hosts and version == "HTTP/1.1":
        raise HeadError(400, "missing Host header")
    host = hosts[0] if hosts else ""
    host_name = parse_host(host) if hosts else ""

    if lengths and codings:
        raise HeadError(400, "both Content-Length and Transfer-Encoding")
    content_length: int | None = None
    if lengths:
        if len(lengths) > 1:
            raise HeadError(400, "more than one Content-Length")
        if not _DIGITS_TEXT.fullmatch(lengths[0]):
            raise HeadError(400, "malformed Content-Length")
        content_length = int(lengths[0])
    chunked = False
    if codings:
        if len(codings) > 1 or codings[0].strip().lower() != "chunked":
            raise HeadError(400, "only a single 'Transfer-Encoding: chunked' is accepted")
        if version == "HTTP/1.0":
            raise HeadError(400, "Transfer-Encoding in an HTTP/1.0 request")
        chunked = True

    if any("h2c" in u for u in upgrade):
        raise HeadError(400, "Upgrade: h2c is refused")
    if method == "HEAD" and (chunked or content_length):
        # aiohttp reads no body for HEAD: the bytes would be its next request.
        raise HeadError(400, "a HEAD request cannot carry a body")
    if upgrade and (chunked or content_length):
        raise HeadError(400, "a request with Upgrade cannot carry a body")
    named = conn & END_TO_END
    if named:
        raise HeadError(400, f"the Connection header names {sorted(named)[0]!r}")
    websocket = bool(upgrade) and "upgrade" in conn and upgrade[-1].strip() == "websocket"
    if expect and expect != ["100-continue"]:
        raise HeadError(417, "only 'Expect: 100-continue' is supported")

    keep_alive = "close" not in conn if version == "HTTP/1.1" else "keep-alive" in conn
    return RequestHead(  # by position: keywords cost a request a microsecond here
        method,
        target,
        version,
        headers,
        host,
        content_length,
        chunked,
        keep_alive,
        websocket,
        bool(expect),
        frozenset(conn),
        bool(upgrade),
        host_name,
        user_agent,
        accept,
        authorization,
    )


def parse_host(value: str) -> str:
    """The name part of a Host field (lower case, no trailing dot); anything but
    `host[:port]` with a port in 1-65535 is a HeadError."""
    if _PLAIN_NAME.fullmatch(value):  # the usual Host: a lower-case name, no port
        return value[:-1] if value[-1] == "." else value
    m = _HOST_FIELD.fullmatch(value)
    if not m:
        raise HeadError(400, "malformed Host header")
    name, port = m.group(1), m.group(2)
    if port is not None and not 0 < int(port) < 65536:
        raise HeadError(400, "the port in the Host header is out of range")
    if name.startswith("["):
        try:
            ipaddress.IPv6Address(name[1:-1])
        except ValueError:
            raise HeadError(400, "malformed IP literal in the Host header") from None
        return name.lower()
    return name.lower().rstrip(".")


@dataclass(slots=True)
class ResponseHead:
    version: str
    status: int
    reason: str
    block: str  # the vetted header lines, each with its CRLF
    content_length: int | None
    chunked: bool
    keep_alive: bool
    connection_tokens: frozenset[str] = frozenset()
    length_header: bool = False  # a Content-Length line is present (ignored when chunked)
    end_to_end: str = ""  # `block` without its hop-by-hop lines

    @property
    def headers(self) -> list[tuple[str, str]]:
        """The fields as (name, value) pairs (made when asked: the proxy needs none)."""
        return header_pairs(self.block)

    def get(self, name: str) -> str | None:
        return header_value(self.headers, name)


# The header lines framing reads and the head sent on may leave out: hop-by-hop fields and
# Content-Length, found in one pass without splitting the other lines.
# A hop-by-hop or Content-Length line of a lower-cased block with "\n" in front: the literal
# "\n" lets the regex engine skip from line to line (anchoring at every line start with re.M
# and re.I, as this once did, costs half as much again).
_HOP_OR_LENGTH_LINE = re.compile(
    r"\n(" + "|".join(sorted(HOP_BY_HOP | {"content-length"})) + r"):[ \t]*([^\r]*)"
)


def parse_response_head(head: bytes, max_headers: int = 200) -> ResponseHead:
    """Parse an upstream response head; anything odd becomes a 502 for the client."""
    status_line, block = split_block(head, max_headers)
    m = _STATUS_LINE.fullmatch(status_line)
    if not m:
        raise HeadError(502, "malformed status line from upstream")
    lengths: list[str] = []
    codings: list[str] = []
    conn: set[str] = set()
    kept: list[str] = []  # the block's pieces between hop-by-hop lines
    at = 0
    # The lines are found in the lower-cased block, whose offsets are the block's; the values
    # framing reads are taken lower-cased from it too.
    for line in _HOP_OR_LENGTH_LINE.finditer("\n" + block.lower()):
        name, value = line.group(1, 2)
        if name == "content-length":
            lengths.append(value.rstrip(" \t"))
            continue
        kept.append(block[at : line.start()])
        at = line.end() + 1  # past the line's CRLF
        if name == "transfer-encoding":
            codings.append(value.rstrip(" \t"))
        elif name == "connection":
            for token in value.split(","):
                conn.add(token.strip())
    chunked = bool(codings) and codings[-1].split(",")[-1].strip() == "chunked"
    content_length = None
    # A transfer coding that does not end in chunked makes the body last until the close,
    # whatever Content-Length says (RFC 9112 6.3).
    if lengths and not codings:
        if len(set(lengths)) != 1 or not _DIGITS_TEXT.fullmatch(lengths[0]):
            raise HeadError(502, "malformed Content-Length from upstream")
        content_length = int(lengths[0])
    version, status, reason = m.group(1, 2, 3)
    keep_alive = "close" not in conn if version == "HTTP/1.1" else "keep-alive" in conn
    return ResponseHead(
        version,
        int(status),
        reason or "",
        block,
        content_length,
        chunked,
        keep_alive,
        frozenset(conn),
        bool(lengths),
        "".join(kept) + block[at:] if at else block,
    )


def response_head_bytes(
    rhead: ResponseHead, reason: str, keep_alive: bool, rechunk: bool, drop_length: bool
) -> bytes:
    """The head the gateway sends its client for an upstream response: hop-by-hop fields and
    those the upstream's Connection names are dropped, Content-Length too when `drop_length`,
    then Transfer-Encoding (when `rechunk`) and Connection are the gateway's own."""
    if rhead.connection_tokens <= HOP_BY_HOP and not (drop_length and rhead.length_header):
        # Nothing to drop beyond the hop-by-hop fields, which parsing has already cut out.
        te = "Transfer-Encoding: chunked\r\n" if rechunk else ""
        conn = "keep-alive" if keep_alive else "close"
        return (
            f"HTTP/1.1 {rhead.status} {reason}\r\n{rhead.end_to_end}{te}Connection: {conn}\r\n\r\n"
        ).encode("latin-1")
    return response_head_bytes_by_field(rhead, reason, keep_alive, rechunk, drop_length)


def response_head_bytes_by_field(
    rhead: ResponseHead, reason: str, keep_alive: bool, rechunk: bool, drop_length: bool
) -> bytes:
    """`response_head_bytes`, field by field (the general case, and its reference)."""
    named = rhead.connection_tokens
    lines = [f"HTTP/1.1 {rhead.status} {reason}"]
    for name, value in rhead.headers:
        n = name.lower()
        if n in HOP_BY_HOP or n in named or (n == "content-length" and drop_length):
            continue
        lines.append(f"{name}: {value}")
    if rechunk:
        lines.append("Transfer-Encoding: chunked")
    lines.append(f"Connection: {'keep-alive' if keep_alive else 'close'}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


# Forwarding headers a client may not set: the gateway sets them itself.
DROP_FROM_CLIENT = HOP_BY_HOP | {
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "forwarded",
    "x-real-ip",
    "expect",
}


def forwarded_head(head: RequestHead, client_ip: str, hostname: str) -> bytes:
    """The request head the gateway sends Home Assistant for `head` from `client_ip`: hop-by-hop
    and client-supplied forwarding headers dropped, X-Forwarded-For/-Proto/-Host set."""
    named = head.connection_tokens
    lines = [f"{head.method} {head.target.uri} HTTP/1.1"]
    for name, value in head.headers:
        n = name.lower()
        if n in DROP_FROM_CLIENT or n in named or n == "content-length":
            continue
        lines.append(f"{name}: {value}")
    if not head.host:
        lines.append(f"Host: {hostname}")
    lines.append(f"X-Forwarded-For: {client_ip}")
    lines.append("X-Forwarded-Proto: https")
    lines.append(f"X-Forwarded-Host: {head.host or hostname}")
    if head.expect_continue:
        lines.append("Expect: 100-continue")
    if head.chunked:
        lines.append("Transfer-Encoding: chunked")
    elif head.content_length is not None:
        lines.append(f"Content-Length: {head.content_length}")
    if head.websocket:
        lines.append("Upgrade: websocket")
        lines.append("Connection: Upgrade")
    else:
        lines.append("Connection: keep-alive")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
