"""A reference point for the gateway benchmark: the least a Python TLS proxy can do.

It ends TLS (client certificate required, verified by OpenSSL), forwards each request head to
the upstream unchanged over a kept-alive connection and relays the response, on uvloop with
plain asyncio Protocols. No parsing beyond finding the ends of messages, no rules, no events,
no limits: it is not a gateway, only a measure of what the language and event loop cost here,
so the benchmark can tell the cost of hagate's checks from the cost of Python itself.

With STEPS (a comma-separated subset of `STEPS` below) it also does those of hagate's own
per-request steps, in place, with hagate's code: bench/steps_bench.py uses this to measure what
each step costs inside a running proxy, as opposed to in a loop of its own.

Usage: python -m bench.floor_proxy STATE_DIR LISTEN_PORT UPSTREAM_PORT [STEPS]
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import ssl
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import uvloop

from hagate.events.store import EVENTS_NAME, EventStore
from hagate.gateway.identity import NO_CERT, CertState, client_certificate
from hagate.gateway.pages import reason_phrase
from hagate.gateway.record import Exchange, new_request_id
from hagate.gateway.request import Conn as ConnFacts
from hagate.gateway.tls import SNI_ATTR
from hagate.gateway.verdict import decide
from hagate.http1.heads import (
    RequestHead,
    forwarded_head,
    parse_request_head,
    parse_response_head,
    response_head_bytes,
)
from hagate.run.gateway import build_gateway, load_setup
from hagate.state import StateDir

STEPS = ("parse", "rules", "forward-head", "response-head", "event")
# What ab sends: the request used in place of a parsed one when "parse" is off.
SAMPLE_REQUEST = (
    b"GET /small.txt HTTP/1.0\r\nConnection: Keep-Alive\r\nHost: ha.test\r\n"
    b"User-Agent: ApacheBench/2.3\r\nAccept: */*\r\n\r\n"
)


@dataclass
class Conn:
    """The gateway's facts of a client connection, and the request being served on it."""

    facts: ConnFacts
    exchange: Exchange | None = None
    standing: CertState = field(default_factory=lambda: NO_CERT)

    @property
    def client_ip(self) -> str:
        return self.facts.client_ip

    @property
    def sni(self) -> str | None:
        return self.facts.sni


class Steps:
    """hagate's per-request steps, each on or off, done with hagate's own functions:
    parse          - parse and vet the request head (the exchange record is always made)
    rules          - the certificate's standing, the rule fields and the rule set's verdict
    forward-head   - the head sent upstream (hop-by-hop fields out, X-Forwarded-* in)
    response-head  - parse and vet the response head, and the head sent to the client
    event          - the event row (to the event store's writer thread) and the log line
    """

    def __init__(
        self, state: Path, names: set[str], log_to: IO[Any] | None = None, capacity: int = 10_000
    ) -> None:
        unknown = names - set(STEPS)
        if unknown:
            raise SystemExit(f"unknown steps: {', '.join(sorted(unknown))}")
        st = StateDir(state)
        self.setup = load_setup(st)
        self.store = (
            EventStore(st / EVENTS_NAME, capacity=capacity, log_format="text", log_to=log_to)
            if "event" in names
            else None
        )
        self.gateway = build_gateway(st, self.setup, self.store and self.store.start())
        self.names = names
        self.sample = parse_request_head(SAMPLE_REQUEST)

    def connection(self, client_ip: str, sni: str | None, der: bytes | None, port: int) -> Conn:
        ip = ipaddress.ip_address(client_ip)
        cert = client_certificate(der, self.gateway.ca_cert) if der else None
        return Conn(ConnFacts(client_ip, ip, sni, cert, self.setup.geoip.lookup(ip), port))

    def request(self, conn: Conn, raw: bytes) -> bytes:
        """The bytes to send upstream for the request head `raw`."""
        head: RequestHead = parse_request_head(raw) if "parse" in self.names else self.sample
        facts = conn.facts
        ex = conn.exchange = Exchange(new_request_id(), facts.client_ip, location=facts.location)
        ex.method, ex.path, ex.host = head.method, head.target.loggable, head.host
        ex.user_agent = head.get("user-agent") or ""
        if "rules" in self.names:
            cert = facts.cert.state(self.gateway.inventory) if facts.cert else NO_CERT
            conn.standing = cert
            decision = decide(self.setup.ruleset, head, facts.ip, facts.port, facts.location, cert)
            if decision.blocked:
                raise SystemExit("the benchmark's request was blocked: check its certificate")
        if "forward-head" in self.names:
            return forwarded_head(head, conn.client_ip, self.setup.config.hostname)
        return raw

    def response(self, conn: Conn, head: bytes, body: bytes) -> bytes:
        """The bytes to send the client for an upstream response."""
        ex = conn.exchange
        assert ex is not None
        if "response-head" in self.names:
            rhead = parse_response_head(head)
            reason = rhead.reason or reason_phrase(rhead.status)
            head = response_head_bytes(rhead, reason, True, False, False)
        ex.status, ex.bytes_out = 200, len(body)
        if "event" in self.names:
            self.gateway.recorder.observe(ex, conn.sni, conn.standing)
        return head + body


_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.I)
_CLOSE = re.compile(rb"\r\nconnection:\s*close", re.I)


class Upstream(asyncio.Protocol):
    def __init__(self, pool: list[Upstream]) -> None:
        self.pool = pool
        self.buffer = bytearray()
        self.client: Client | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        if self in self.pool:
            self.pool.remove(self)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0 or self.client is None:
            return
        m = _LENGTH.search(self.buffer, 0, end)
        total = end + 4 + (int(m.group(1)) if m else 0)
        if len(self.buffer) < total:
            return
        response = bytes(self.buffer[:total])
        del self.buffer[:total]
        client, self.client = self.client, None
        close = bool(_CLOSE.search(response, 0, end))
        if client.conn is not None and client.steps is not None:
            response = client.steps.response(client.conn, response[: end + 4], response[end + 4 :])
        client.respond(response, close)
        if close:  # the upstream ends this connection too
            if self.transport is not None:
                self.transport.close()
        elif self.transport is not None and not self.transport.is_closing():
            self.pool.append(self)


class Client(asyncio.Protocol):
    def __init__(self, upstream_port: int, pool: list[Upstream], steps: Steps | None) -> None:
        self.upstream_port = upstream_port
        self.pool = pool
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.steps = steps
        self.conn: Conn | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        if self.steps is not None:
            sslobj = transport.get_extra_info("ssl_object")
            self.conn = self.steps.connection(
                transport.get_extra_info("peername")[0],
                getattr(sslobj, SNI_ATTR, None),
                sslobj.getpeercert(binary_form=True),
                transport.get_extra_info("sockname")[1],
            )

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        request = bytes(self.buffer[: end + 4])
        del self.buffer[: end + 4]
        if self.conn is not None and self.steps is not None:
            request = self.steps.request(self.conn, request)
        while self.pool:
            up = self.pool.pop()
            if up.transport is not None and not up.transport.is_closing():
                self.send(up, request)
                return
        else:
            asyncio.get_running_loop().create_task(self.connect_and_send(request))

    async def connect_and_send(self, request: bytes) -> None:
        loop = asyncio.get_running_loop()
        _, up = await loop.create_connection(
            lambda: Upstream(self.pool), "127.0.0.1", self.upstream_port
        )
        self.send(up, request)

    def send(self, up: Upstream, request: bytes) -> None:
        up.client = self
        assert up.transport is not None
        up.transport.write(request)

    def respond(self, response: bytes, close: bool) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(response)
            if close:  # an HTTP/1.0 exchange without keep-alive ends with the connection
                self.transport.close()


async def main(state: Path, port: int, upstream_port: int, steps: Steps | None) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(state / "server.crt", state / "server.key")
    ctx.load_verify_locations(cafile=str(state / "ca.crt"))
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.num_tickets = 1
    pool: list[Upstream] = []
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: Client(upstream_port, pool, steps), "127.0.0.1", port, ssl=ctx, backlog=1024
    )
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    state = Path(sys.argv[1])
    names = set(filter(None, sys.argv[4].split(","))) if len(sys.argv) > 4 else None
    steps = Steps(state, names) if names is not None else None
    uvloop.run(main(state, int(sys.argv[2]), int(sys.argv[3]), steps))
