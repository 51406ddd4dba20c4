"""The differential test's corpus: hostile requests, odd-but-legal ones, and seeded mutations.

A case is what one client sends on one TLS connection, in parts (each part its own write, so
heads and bodies also arrive split). `cert` says whether the client presents a certificate.
`legal` cases are well-formed HTTP/1.1 that a real client may send: every request in them must
be answered by Home Assistant, not refused. Every disagreement the differential has found is a
fixed case here (see FOUND), so it stays fixed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

HOST = "ha.test"
SKIP_PATH = "/auth/token"  # the rule set's one exception for clients without a certificate


@dataclass
class Case:
    name: str
    parts: list[bytes]
    cert: bool = False
    legal: bool = False
    requests: int = 0  # for legal cases: how many answers the client must get
    tags: set[str] = field(default_factory=set)


def req(
    method: str = "GET",
    target: str = "/",
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
    version: str = "HTTP/1.1",
    host: str | None = HOST,
    length: bool = True,
) -> bytes:
    lines = [f"{method} {target} {version}"]
    if host is not None:
        lines.append(f"Host: {host}")
    lines += [f"{k}: {v}" for k, v in headers or []]
    if body and length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


CLOSE = [("Connection", "close")]

# -- the disagreements found so far (issue 11) -----------------------------------------------

FOUND: list[Case] = [
    Case(
        "upgrade with a body smuggles a head into the pooled connection",
        [
            b"POST /auth/token HTTP/1.1\r\nHost: ha.test\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nContent-Length: 36\r\n\r\n"
            b"GET /manifest.json HTTP/1.1\r\nX-Ignore: ",
            b"GET /auth/token HTTP/1.1\r\nHost: ha.test\r\nContent-Length: 0\r\n\r\n",
        ],
        tags={"found"},
    ),
    Case(
        "upgrade with a chunked body",
        [
            b"POST /auth/token HTTP/1.1\r\nHost: ha.test\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"24\r\nGET /manifest.json HTTP/1.1\r\nX-Ignore: \r\n0\r\n\r\n",
        ],
        tags={"found"},
    ),
    Case(
        "upgrade without a body, then a pipelined request",
        [
            b"GET /auth/token HTTP/1.1\r\nHost: ha.test\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
            b"GET /manifest.json HTTP/1.1\r\nHost: ha.test\r\n\r\n",
        ],
        tags={"found"},
    ),
    *(
        Case(f"Host with userinfo or path: {h!r}", [req(host=h, headers=CLOSE)], tags={"found"})
        for h in (
            "ha.test:@evil.test",
            "ha.test:443@evil.test",
            "ha.test:x@evil.test",
            "ha.test:/@evil.test",
            "ha.test:99999",
            "ha.test:abc",
            "ha.test:-1",
            "ha.test:443/x",
        )
    ),
    *(
        Case(
            f"Connection names {name}",
            [req(target="/auth/token", headers=[("Connection", f"keep-alive, {name}")])],
            tags={"found"},
        )
        for name in ("Host", "User-Agent", "Authorization", "Cookie", "X-Forwarded-For")
    ),
    # Found by this differential after the four:
    Case(
        "HEAD with a body (aiohttp reads none, so the body is its next request)",
        [
            b"HEAD /auth/token HTTP/1.1\r\nHost: ha.test\r\nContent-Length: 45\r\n\r\n"
            b"GET /manifest.json HTTP/1.1\r\nHost: ha.test\r\n\r\n"
        ],
        tags={"found"},
    ),
    Case(
        "the obsolete websocket handshake aiohttp refuses",
        [req(target="/auth/token", headers=[("Sec-WebSocket-Key1", "4 @1  46546xW%0l 1 5")])],
        tags={"found"},
    ),
    Case(
        "two User-Agent fields (a rule sees the first, aiohttp refuses both)",
        [req(target="/api/", headers=[("User-Agent", "a"), ("User-Agent", "b")])],
        cert=True,
        tags={"found"},
    ),
    *(
        Case(f"a method llhttp does not know: {m}", [req(m, "/auth/token")], tags={"found"})
        for m in ("POS", "ST", "POSTPOST", "PROPFIND", "GT")
    ),
    Case(
        "a chunk goes bad after the head was forwarded",
        [
            b"POST /auth/token HTTP/1.1\r\nHost: ha.test\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n",
            b"zz\r\nGET /manifest.json HTTP/1.1\r\nX-Ignore: ",
        ],
        tags={"found"},
    ),
]

# -- hand-written hostile cases --------------------------------------------------------------

PATH_TRICKS = [
    "/auth/token/../../api/states",
    "/auth/token/..%2f..%2fapi/states",
    "/auth/token%2f..%2f..%2fapi%2fstates",
    "/auth/%2e%2e/api/states",
    "/auth/token/%2e%2e/%2e%2e/api/states",
    "/auth/token/%2E%2E/%2E%2E/api/states",
    "/auth/token;/../../api/states",
    "/auth/token?x=/../../api/states",
    "/%61uth/token",
    "//auth/token",
    "/auth//token",
    "/auth/token/",
    "/auth/token/.",
    "/auth/token#/../../api",
    "/auth/token%00",
    "/auth/token%23/../../api",
    "/auth/token%3f/../../api",
    "/AUTH/TOKEN",
    "/auth/token\\..\\..\\api\\states",
    "/auth/token%5c..%5c..%5capi",
    "/auth/token%252e%252e/api",
    "/auth/token%c0%ae%c0%ae/api",
    "/auth/token/%u002e%u002e/api",
    "/./auth/token/../../api/states",
    "/auth/./token",
    "/auth/token%20HTTP/1.1",
    "/auth/token\t",
    "http://ha.test/api/states",
    "https://ha.test/auth/token",
    "*",
    "ha.test/auth/token",
    "/auth/token/..",
    "/api/../auth/token",
    "/auth/token/..;/..;/api",
    "/auth/token/%2e/",
    "/auth/token/.%2e/.%2e/api",
    "/auth/token%2F",
    "/auth/token/%2e%2e%2f%2e%2e%2fapi",
]

HEADER_TRICKS: list[list[tuple[str, str]]] = [
    [("Host", HOST)],  # a second Host
    [("Transfer-Encoding ", "chunked")],
    [("Content-Length\t", "0")],
    [("X-Forwarded-For", "127.0.0.1")],
    [("X-Forwarded-Host", "evil.test")],
    [("X-Forwarded-Proto", "http")],
    [("Forwarded", "for=127.0.0.1;host=evil.test")],
    [("X-Real-IP", "127.0.0.1")],
    [("Expect", "100-continue")],
    [("Expect", "something-else")],
    [("TE", "trailers")],
    [("Trailer", "Host")],
    [
        ("Upgrade", "h2c"),
        ("Connection", "Upgrade, HTTP2-Settings"),
        ("HTTP2-Settings", "AAMAAABkAAQAAP__"),
    ],
    [("Upgrade", "tcp"), ("Connection", "Upgrade")],
    [("Upgrade", "websocket")],  # without Connection: Upgrade
    [("Connection", "Upgrade")],  # without Upgrade
    [("Upgrade", "websocket"), ("Connection", "keep-alive, Upgrade")],
    [("Proxy-Connection", "keep-alive")],
    [("Sec-WebSocket-Key1", "4 @1  46546xW%0l 1 5")],
    [("X-Odd", "caf\xe9")],
    [("X-Odd", "\u00ff\u00fe")],
    [("X-Long", "a" * 9000)],
    [("X-Very-Long", "b" * 25000)],
    [("", "empty name")],
    [("X Space", "v")],
    [("X-Colon:", "v")],
    [("Content-Length", "+0")],
    [("Content-Length", "-0")],
    [("Content-Length", "0x0")],
    [("Content-Length", " 0 ")],
    [("Content-Length", "0, 0")],
    [("Transfer-Encoding", "identity")],
    [("Transfer-Encoding", "chunked, identity")],
    [("Transfer-Encoding", "xchunked")],
    [("Transfer-Encoding", "chunked\x0b")],
    [("Transfer-Encoding", "\x0bchunked")],
    [("Connection", "close, close")],
    [("Connection", "Keep-Alive")],
    [("User-Agent", "Home Assistant/2026.1 (io.robbie.HomeAssistant; build:1; iOS 17.5.1)")],
]

HOSTS = [
    "HA.TEST",
    "ha.test.",
    "ha.test:443",
    "ha.test:0",
    "ha.test:65536",
    "ha.test:",
    " ha.test",
    "ha.test ",
    "ha.test:443:443",
    "ha.test%2f",
    "ha.test/x",
    "ha.test?x",
    "ha.test#x",
    "user@ha.test",
    "ha.test@evil.test",
    "evil.test#@ha.test",
    "[::1]",
    "[::1]:443",
    "[ha.test]",
    "127.0.0.1",
    "",
    "ha.test\\evil.test",
    "ha%2etest",
    "ha.test,evil.test",
]

RAW: list[tuple[str, list[bytes]]] = [
    (
        "CL and TE",
        [
            b"POST /auth/token HTTP/1.1\r\nHost: ha.test\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /api/ HTTP/1.1\r\nHost: ha.test\r\n\r\n"
        ],
    ),
    (
        "TE and CL",
        [
            b"POST /auth/token HTTP/1.1\r\nHost: ha.test\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\nGET /api/ HTTP/1.1\r\nHost: ha.test\r\n\r\n"
        ],
    ),
    (
        "two Content-Lengths",
        [
            b"POST /auth/token HTTP/1.1\r\nHost: ha.test\r\nContent-Length: 0\r\nContent-Length: 30\r\n\r\nGET /api/ HTTP/1.1\r\nHost: ha.test\r\n\r\n"
        ],
    ),
    (
        "TE chunked twice",
        [
            b"POST /auth/token HTTP/1.1\r\nHost: ha.test\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        ],
    ),
    (
        "TE in HTTP/1.0",
        [
            b"POST /auth/token HTTP/1.0\r\nHost: ha.test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        ],
    ),
    ("obs-fold", [b"GET /auth/token HTTP/1.1\r\nHost: ha.test\r\nX-A: a\r\n b\r\n\r\n"]),
    ("obs-fold Host", [b"GET /auth/token HTTP/1.1\r\nHost: ha.test\r\n .evil\r\n\r\n"]),
    ("bare LF head", [b"GET /auth/token HTTP/1.1\nHost: ha.test\n\n"]),
    ("bare CR", [b"GET /auth/token HTTP/1.1\rHost: ha.test\r\n\r\n"]),
    (
        "LF inside a value",
        [b"GET /auth/token HTTP/1.1\r\nHost: ha.test\r\nX-A: a\nGET /api/ HTTP/1.1\r\n\r\n"],
    ),
    ("NUL in a value", [b"GET /auth/token HTTP/1.1\r\nHost: ha.test\r\nX-A: a\x00b\r\n\r\n"]),
    (
        "space before colon",
        [
            b"GET /auth/token HTTP/1.1\r\nHost: ha.test\r\nContent-Length : 30\r\n\r\nGET /api/ HTTP/1.1\r\nHost: ha.test\r\n\r\n"
        ],
    ),
    (
        "chunk size overflow",
        [
            b"POST /auth/token HTTP/1.1\r\nHost: ha.test\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff1\r\nx\r\n0\r\n\r\n"
        ],
    ),
    (
        "chunk size with 0x",
        [
            b"POST /auth/token HTTP/1.1\r\nHost: ha.test\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n"
        ],
    ),
    (
        "chunk size with a space",
        [
            b"POST /auth/token HTTP/1.1\r\nHost: ha.test\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n"
        ],
    ),
    (
        "chunk line with bare LF",
        [
            b"POST /auth/token HTTP/1.1\r\nHost: ha.test\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n"
        ],
    ),
    (
        "chunk data longer than its size",
        [
            b"POST /auth/token HTTP/1.1\r\nHost: ha.test\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n"
        ],
    ),
    (
        "chunk extension with a quote",
        [
            b'POST /auth/token HTTP/1.1\r\nHost: ha.test\r\nTransfer-Encoding: chunked\r\n\r\n5;a="x\r\nhello\r\n0\r\n\r\n'
        ],
    ),
    (
        "trailer carrying a header",
        [
            b"POST /auth/token HTTP/1.1\r\nHost: ha.test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nHost: evil.test\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n"
        ],
    ),
    (
        "trailer with a bare LF",
        [
            b"POST /auth/token HTTP/1.1\r\nHost: ha.test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: y\n\r\n"
        ],
    ),
    (
        "last chunk without the final CRLF, then a request",
        [
            b"POST /auth/token HTTP/1.1\r\nHost: ha.test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nGET /api/ HTTP/1.1\r\nHost: ha.test\r\n\r\n"
        ],
    ),
    (
        "body shorter than its length",
        [b"POST /auth/token HTTP/1.1\r\nHost: ha.test\r\nContent-Length: 100\r\n\r\nshort"],
    ),
    (
        "body longer than its length",
        [
            b"POST /auth/token HTTP/1.1\r\nHost: ha.test\r\nContent-Length: 2\r\n\r\n{}GET /manifest.json HTTP/1.1\r\nHost: ha.test\r\n\r\n"
        ],
    ),
    (
        "GET with a body then a request",
        [
            b"GET /auth/token HTTP/1.1\r\nHost: ha.test\r\nContent-Length: 45\r\n\r\nGET /manifest.json HTTP/1.1\r\nHost: ha.test\r\n\r\n"
        ],
    ),
    (
        "HEAD with a body",
        [
            b"HEAD /auth/token HTTP/1.1\r\nHost: ha.test\r\nContent-Length: 45\r\n\r\nGET /manifest.json HTTP/1.1\r\nHost: ha.test\r\n\r\n"
        ],
    ),
    ("CONNECT", [b"CONNECT ha.test:443 HTTP/1.1\r\nHost: ha.test\r\n\r\n"]),
    ("lower-case method", [b"get /auth/token HTTP/1.1\r\nHost: ha.test\r\n\r\n"]),
    ("odd method", [b"G\xc9T /auth/token HTTP/1.1\r\nHost: ha.test\r\n\r\n"]),
    ("HTTP/2 version", [b"GET /auth/token HTTP/2.0\r\nHost: ha.test\r\n\r\n"]),
    ("HTTP/1.10", [b"GET /auth/token HTTP/1.10\r\nHost: ha.test\r\n\r\n"]),
    ("no version", [b"GET /auth/token\r\nHost: ha.test\r\n\r\n"]),
    ("two spaces", [b"GET  /auth/token HTTP/1.1\r\nHost: ha.test\r\n\r\n"]),
    ("tab separator", [b"GET\t/auth/token\tHTTP/1.1\r\nHost: ha.test\r\n\r\n"]),
    ("leading empty lines", [b"\r\n\r\nGET /auth/token HTTP/1.1\r\nHost: ha.test\r\n\r\n"]),
    ("HTTP/1.0 without Host", [b"GET /auth/token HTTP/1.0\r\n\r\n"]),
    (
        "HTTP/1.0 keep-alive",
        [
            b"GET /auth/token HTTP/1.0\r\nHost: ha.test\r\nConnection: keep-alive\r\n\r\nGET /api/ HTTP/1.0\r\nHost: ha.test\r\n\r\n"
        ],
    ),
    (
        "allowed then blocked, pipelined",
        [
            b"POST /auth/token HTTP/1.1\r\nHost: ha.test\r\nContent-Length: 0\r\n\r\nGET /api/ HTTP/1.1\r\nHost: ha.test\r\n\r\nGET /manifest.json HTTP/1.1\r\nHost: ha.test\r\n\r\n"
        ],
    ),
    (
        "a head split across writes",
        [
            b"POST /auth/to",
            b"ken HTTP/1.1\r\nHo",
            b"st: ha.test\r\nContent-Length: 4\r\n\r",
            b"\nab",
            b"cd",
        ],
    ),
    (
        "websocket to the skip path then a request",
        [
            b"GET /auth/token HTTP/1.1\r\nHost: ha.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nContent-Length: 0\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
            b"GET /manifest.json HTTP/1.1\r\nHost: ha.test\r\n\r\n",
        ],
    ),
    (
        "expect 100-continue then a different request as the body",
        [
            b"POST /auth/token HTTP/1.1\r\nHost: ha.test\r\nExpect: 100-continue\r\nContent-Length: 45\r\n\r\n",
            b"GET /manifest.json HTTP/1.1\r\nHost: ha.test\r\n\r\n",
        ],
    ),
]

# -- legal, odd requests from a certificate holder: all must be answered -------------------


def legal_cases() -> list[Case]:
    ws_key = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ]
    cases = [
        ("plain", [req("GET", "/api/", CLOSE)], 1),
        ("pipelined three", [req("GET", "/a") + req("GET", "/b") + req("GET", "/c", CLOSE)], 3),
        ("POST with a length", [req("POST", "/api/services/x", CLOSE, b'{"a": 1}')], 1),
        (
            "POST chunked with an extension",
            [
                b"POST /api/x HTTP/1.1\r\nHost: ha.test\r\nTransfer-Encoding: chunked\r\n"
                b"Connection: close\r\n\r\n5;name=value\r\nhello\r\n6\r\n world\r\n0\r\n"
                b"X-Trailer: t\r\n\r\n"
            ],
            1,
        ),
        ("a body in pieces", [req("PUT", "/api/x", CLOSE, b"x" * 1000)[:-600], b"x" * 600], 1),
        ("HTTP/1.0", [req("GET", "/api/", version="HTTP/1.0")], 1),
        ("HEAD", [req("HEAD", "/api/", CLOSE)], 1),
        ("OPTIONS", [req("OPTIONS", "/api/", CLOSE)], 1),
        ("DELETE with a body", [req("DELETE", "/api/x", CLOSE, b"{}")], 1),
        ("upper-case Host", [req("GET", "/api/", CLOSE, host="HA.TEST")], 1),
        ("Host with the port", [req("GET", "/api/", CLOSE, host="ha.test:443")], 1),
        ("Host with a trailing dot", [req("GET", "/api/", CLOSE, host="ha.test.")], 1),
        ("a tab in a value", [req("GET", "/api/", [("X-A", "a\tb"), *CLOSE])], 1),
        ("Latin-1 in a value", [req("GET", "/api/", [("X-A", "caf\xe9"), *CLOSE])], 1),
        ("two Cookie fields", [req("GET", "/", [("Cookie", "a=1"), ("Cookie", "b=2"), *CLOSE])], 1),
        ("escaped unreserved", [req("GET", "/api/%7Euser/%41", CLOSE)], 1),
        ("dot segments", [req("GET", "/api/./x/../states", CLOSE)], 1),
        ("a query", [req("GET", "/api/history?filter_entity_id=a.b&x=%20y", CLOSE)], 1),
        ("a long path", [req("GET", "/api/" + "a" * 4000, CLOSE)], 1),
        (
            "expect 100-continue",
            [req("POST", "/api/x", [("Expect", "100-continue"), *CLOSE], b"{}")],
            1,
        ),
        (
            "keep-alive listed",
            [req("GET", "/a", [("Connection", "keep-alive")]) + req("GET", "/b", CLOSE)],
            2,
        ),
        (
            "Connection naming a custom field",
            [req("GET", "/a", [("Connection", "close, X-Hop"), ("X-Hop", "1")])],
            1,
        ),
        ("empty value", [req("GET", "/a", [("X-Empty", ""), *CLOSE])], 1),
        ("websocket", [req("GET", "/ws/echo", ws_key)], 1),
        (
            "websocket with Content-Length 0",
            [req("GET", "/ws/echo", [*ws_key, ("Content-Length", "0")])],
            1,
        ),
    ]
    return [Case(f"legal: {n}", p, cert=True, legal=True, requests=k) for n, p, k in cases]


def hostile_cases() -> list[Case]:
    cases = list(FOUND)
    for target in PATH_TRICKS:
        for method in ("GET", "POST"):
            body = b"{}" if method == "POST" else b""
            cases.append(Case(f"path {method} {target!r}", [req(method, target, CLOSE, body)]))
    for headers in HEADER_TRICKS:
        cases.append(Case(f"headers {headers!r}"[:120], [req("POST", SKIP_PATH, headers, b"{}")]))
        cases.append(
            Case(f"headers {headers!r} (cert)"[:120], [req("GET", "/api/", headers)], cert=True)
        )
    for host in HOSTS:
        cases.append(Case(f"Host {host!r}", [req("GET", SKIP_PATH, CLOSE, host=host)]))
        cases.append(
            Case(f"Host {host!r} (cert)", [req("GET", "/api/", CLOSE, host=host)], cert=True)
        )
    for name, parts in RAW:
        cases.append(Case(f"raw: {name}", parts))
        cases.append(
            Case(
                f"raw: {name} (cert)",
                [p.replace(b"/auth/token", b"/api/x") for p in parts],
                cert=True,
            )
        )
    return cases


# -- seeded mutations --------------------------------------------------------------------

_INSERTS = [
    b"\r\n",
    b"\n",
    b"\r",
    b" ",
    b"\t",
    b"\x00",
    b":",
    b"%2e",
    b"/..",
    b"Content-Length: 5\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"Upgrade: websocket\r\nConnection: Upgrade\r\n",
    b"Host: evil.test\r\n",
    b"Connection: Host\r\n",
    b"GET /manifest.json HTTP/1.1\r\nHost: ha.test\r\n\r\n",
    b"0\r\n\r\n",
    b"\xff",
    b"@evil.test",
]


def mutate(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        pos = rng.randrange(len(out) + 1)
        op = rng.randrange(5)
        if op == 0:
            out[pos:pos] = rng.choice(_INSERTS)
        elif op == 1 and out:
            del out[pos : pos + rng.randint(1, 4)]
        elif op == 2 and pos < len(out):
            out[pos] = rng.randrange(256)
        elif op == 3:
            line_start = out.rfind(b"\r\n", 0, pos)
            out[pos:pos] = out[max(line_start, 0) : pos]
        else:
            out = bytearray(bytes(out).swapcase()) if rng.random() < 0.2 else out
    return bytes(out)


def mutated_cases(seed: int, count: int) -> list[Case]:
    rng = random.Random(seed)
    bases = [c for c in hostile_cases() + legal_cases() if len(c.parts) <= 3]
    cases = []
    for i in range(count):
        base = rng.choice(bases)
        data = mutate(rng, b"".join(base.parts))
        cuts = sorted(
            rng.sample(range(1, max(len(data), 2)), k=min(rng.randint(0, 2), len(data) - 1))
        )
        parts = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
        cases.append(
            Case(
                f"mutation {seed}/{i} of {base.name}"[:120],
                [p for p in parts if p],
                cert=rng.random() < 0.3,
            )
        )
    return cases
