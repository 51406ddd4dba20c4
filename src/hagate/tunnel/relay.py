"""The relay: one public port, raw TLS routed by SNI, connectors' control connections.

For every accepted connection the relay peeks at the ClientHello without consuming it
(MSG_PEEK), so the bytes it forwards are exactly the client's:
  - SNI = the relay's own name: a connector's control connection. TLS ends here (the relay's
    own certificate); the connector's token must verify and names the one hostname it serves.
    A browser there (it offers ALPN http/1.1 or h2; a connector offers none) gets a page of
    which homes are connected (relaypage.py).
  - SNI = a hostname with a live connector: a new stream on that connector's tunnel, carrying
    the client's address. The relay never holds a key for this TLS.
  - anything else, or no ClientHello in time: closed and counted.
A connection from a front given by `--proxy-protocol-from` first names its client in a PROXY
protocol header (hagate.front): the per-address limits, the relay's rules and the stream's
client address are that client's. A PROXY header from anywhere else is refused and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import socket
import ssl
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hagate.acme import answer as acme_answer
from hagate.acme.follow import FollowedContext
from hagate.acme.store import AcmeFiles
from hagate.clienthello import ClientHelloError, peek_client_hello
from hagate.errors import HagateError
from hagate.front.accept import FrontRefused, Network, client_from_front, sent_proxy_header, trusts
from hagate.state import atomic_write
from hagate.tunnel import relaypage
from hagate.tunnel import token as tokens
from hagate.tunnel.frames import PROTOCOL_VERSION, FrameDecoder, FrameError, FrameType, encode
from hagate.tunnel.mux import Mux, keepalive, splice
from hagate.tunnel.relaystate import STATUS, TLS_CERT, TLS_KEY, RelayState
from hagate.tunnel.streams import accept_tls

HELLO_TIMEOUT = 5.0
DEAD_AFTER = 60.0  # connectors send a heartbeat every 15 s
STATUS_REFRESH = 30.0  # the status file's per-connector stream counts are this fresh
WATCH_EVERY = 5.0  # how often a connector's token and heartbeat are looked at


def _control_context(relay_state: RelayState, acme_certificate: Path | None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    # No session tickets: a connector's session lasts for hours and a restarted relay has new
    # ticket keys anyway, so they would only cost two encryptions per connection in the rush
    # after a restart.
    ctx.num_tickets = 0
    ctx.set_alpn_protocols(["http/1.1"])  # a browser at the relay's name gets its page
    if acme_certificate is not None:
        ctx.load_cert_chain(acme_certificate)
    else:
        ctx.load_cert_chain(relay_state.state / TLS_CERT, relay_state.state / TLS_KEY)
    return ctx


@dataclass
class Limits:
    per_ip_concurrent: int = 64
    per_ip_per_minute: int = 600


@dataclass
class Connector:
    hostname: str
    token_id: str
    address: str
    mux: Mux
    expires: float  # the token's expiry: the connector is dropped then
    since: float = field(default_factory=time.time)
    why: str = ""  # why the relay dropped it, for the log line when it is gone

    def drop(self, why: str) -> None:
        self.why = why
        self.mux.close()


class Relay:
    def __init__(
        self,
        relay_state: RelayState,
        limits: Limits | None = None,
        admit: Any = None,
        fronts: tuple[Network, ...] = (),
    ) -> None:
        self.rs = relay_state
        self.limits = limits or Limits()
        self.admit = admit  # optional callable(ip) -> bool: relay-level rules
        self.fronts = fronts  # trusted to name the client in a PROXY protocol header
        self.public = relay_state.signing_key().public_key()
        # The control certificate: the one `relay init` made, or an ACME CA's once obtained.
        self.acme = AcmeFiles(relay_state.state) if relay_state.acme is not None else None
        self.tls = FollowedContext(
            lambda path: _control_context(relay_state, path),
            self.acme.certificate_path if self.acme else None,
        )
        self.connectors: dict[str, list[Connector]] = defaultdict(list)
        self.down_since: dict[str, float] = {}  # homes seen since the start, gone since
        self.counters: Counter[str] = Counter()
        self.active_streams = 0
        self.per_ip: Counter[str] = Counter()
        self.recent: dict[str, list[float]] = defaultdict(list)
        self._rr: Counter[str] = Counter()
        self._version = 0  # bumped when a connector comes or goes
        self._listed = "[]"
        self._listed_version = -1
        self._listed_at = -math.inf
        self._written: tuple[Any, ...] | None = None

    # -- accepting ------------------------------------------------------------------------

    async def serve(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        status = asyncio.create_task(self._status_loop())
        watching = asyncio.create_task(self._watch_loop())
        tasks: set[asyncio.Task[None]] = set()
        try:
            while True:
                try:
                    conn, peer = await loop.sock_accept(sock)
                except OSError:
                    await asyncio.sleep(0.05)
                    continue
                task = asyncio.create_task(self._accept(conn, peer))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        finally:
            status.cancel()
            watching.cancel()
            for group in self.connectors.values():
                for c in group:
                    c.mux.close()

    def prune(self, now: float | None = None) -> None:
        """Forget addresses not seen for a minute: the table stays as large as the traffic."""
        now = time.monotonic() if now is None else now
        for ip in [ip for ip, times in self.recent.items() if not times or now - times[-1] >= 60]:
            del self.recent[ip]

    def _allowed(self, ip: str) -> bool:
        now = time.monotonic()
        window = [t for t in self.recent[ip] if now - t < 60]
        if len(window) >= self.limits.per_ip_per_minute:
            self.recent[ip] = window
            self.counters["dropped_rate"] += 1
            return False
        window.append(now)
        self.recent[ip] = window
        if self.per_ip[ip] >= self.limits.per_ip_concurrent:
            self.counters["dropped_concurrency"] += 1
            return False
        if self.admit is not None and not self.admit(ip):
            self.counters["dropped_rule"] += 1
            return False
        return True

    async def _accept(self, conn: socket.socket, peer: tuple[str, int]) -> None:
        self.counters["connections"] += 1
        if self.fronts and trusts(self.fronts, peer[0]):
            conn.setblocking(False)
            try:
                client = await client_from_front(conn, peer, HELLO_TIMEOUT)
            except FrontRefused as e:
                self.counters["front_refused"] += 1
                conn.close()
                print(f"hagate relay: refused: {e}", file=sys.stderr, flush=True)
                return
            peer = (client.ip, client.port)
        ip = peer[0]
        if not self._allowed(ip):
            conn.close()
            return
        self.per_ip[ip] += 1
        try:
            conn.setblocking(False)
            with contextlib.suppress(OSError):
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                hello = await asyncio.wait_for(peek_client_hello(conn), HELLO_TIMEOUT)
            except (TimeoutError, ClientHelloError, ConnectionError, OSError) as e:
                if isinstance(e, ClientHelloError) and sent_proxy_header(conn):
                    self.counters["proxy_untrusted"] += (
                        1  # not a front given by --proxy-protocol-from
                    )
                else:
                    self.counters["not_tls" if isinstance(e, ClientHelloError) else "no_hello"] += 1
                conn.close()
                return
            if hello is None:
                conn.close()
                self.counters["no_hello"] += 1
                return
            if hello.sni == self.rs.hostname:
                if acme_answer.offers_acme(hello.alpn):
                    self.counters["acme_challenges"] += 1
                    if self.acme is None:
                        conn.close()
                    else:
                        said = await acme_answer.answer(self.acme, hello.sni, conn, HELLO_TIMEOUT)
                        print(f"hagate relay: {said}", file=sys.stderr, flush=True)
                    return
                if relaypage.offers_http(hello.alpn):
                    await self._page(conn)
                else:
                    await self._control(conn, ip)
                return
            target = self._pick(hello.sni)
            if target is None:
                self.counters[
                    "unknown_sni" if hello.sni not in self.connectors else "no_connector"
                ] += 1
                conn.close()
                return
            await self._forward(conn, peer, target)
        finally:
            self.per_ip[ip] -= 1
            if self.per_ip[ip] <= 0:
                del self.per_ip[ip]

    def _pick(self, sni: str | None) -> Connector | None:
        live = [c for c in self.connectors.get(sni or "", []) if not c.mux.closed]
        if not live:
            return None
        self._rr[sni or ""] += 1
        return live[self._rr[sni or ""] % len(live)]

    async def _forward(self, conn: socket.socket, peer: tuple[str, int], target: Connector) -> None:
        reader, writer = await asyncio.open_connection(sock=conn, limit=65536)
        stream = target.mux.open_stream({"client": peer[0], "port": peer[1]})
        self.counters["streams"] += 1
        self.active_streams += 1
        try:
            await splice(stream, reader, writer)
        finally:
            self.active_streams -= 1

    async def _page(self, conn: socket.socket) -> None:
        """A browser at the relay's own name: the page of which homes are connected."""
        try:
            reader, writer = await accept_tls(conn, self.tls.current(), 16384, HELLO_TIMEOUT)
        except Exception:  # a failed handshake: counted like a connector's
            conn.close()
            self.counters["control_tls_error"] += 1
            return
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HELLO_TIMEOUT)
            up = {h: len(group) for h, group in self.connectors.items() if group}
            page = relaypage.relay_page(
                self.rs.hostname, up, self.down_since, head.startswith(b"HEAD ")
            )
            writer.write(page)
            await writer.drain()
            self.counters["pages"] += 1
        except (TimeoutError, ValueError, ConnectionError, asyncio.IncompleteReadError):
            pass  # not a request head in time (LimitOverrunError is a ValueError): closed
        except ssl.SSLError:
            pass
        finally:
            writer.close()

    # -- connectors -----------------------------------------------------------------------

    async def _control(self, conn: socket.socket, ip: str) -> None:
        try:
            reader, writer = await accept_tls(conn, self.tls.current(), 1 << 20, HELLO_TIMEOUT)
        except Exception:  # a failed handshake on the control name: count it, nothing more
            conn.close()
            self.counters["control_tls_error"] += 1
            return
        keepalive(conn)  # a home that vanished is noticed by TCP, not only by silence
        try:
            claim = await asyncio.wait_for(self._hello(reader), HELLO_TIMEOUT)
        except (tokens.TokenError, FrameError, TimeoutError, ConnectionError, ValueError) as e:
            self.counters["refused_connectors"] += 1
            print(
                f"hagate relay: refused a connector from {ip}: {e or type(e).__name__}",
                file=sys.stderr,
                flush=True,
            )
            writer.write(encode(FrameType.REFUSED, 0, str(e).encode()))
            with contextlib.suppress(Exception):
                await writer.drain()
            writer.close()
            return
        writer.write(
            encode(
                FrameType.WELCOME,
                0,
                json.dumps({"version": PROTOCOL_VERSION, "hostname": claim.hostname}).encode(),
            )
        )
        mux = Mux(reader, writer, on_open=None, first_stream=random.randrange(1, 1 << 20))
        connector = Connector(claim.hostname, claim.id, ip, mux, claim.expires)
        self.connectors[claim.hostname].append(connector)
        self.down_since.pop(claim.hostname, None)
        self._version += 1
        print(
            f"hagate relay: connector for {claim.hostname} from {ip} (token {claim.id})",
            file=sys.stderr,
            flush=True,
        )
        try:
            await mux.run()
        except (FrameError, ConnectionError, ssl.SSLError):
            self.counters["connector_errors"] += 1
        finally:
            mux.close()
            self.connectors[claim.hostname].remove(connector)
            self._version += 1
            if not self.connectors[claim.hostname]:
                del self.connectors[claim.hostname]
                self.down_since[claim.hostname] = time.time()
            print(
                f"hagate relay: connector for {claim.hostname} from {ip} (token {claim.id}) "
                f"gone{connector.why}",
                file=sys.stderr,
                flush=True,
            )

    async def _hello(self, reader: asyncio.StreamReader) -> tokens.ConnectorToken:
        decoder = FrameDecoder()
        while True:
            data = await reader.read(65536)
            if not data:
                raise ConnectionError("closed before HELLO")
            frames = decoder.feed(data)
            if frames:
                frame = frames[0]
                if frame.type is not FrameType.HELLO or len(frames) > 1:
                    raise FrameError("expected HELLO first")
                hello = json.loads(frame.payload)
                if hello.get("version") != PROTOCOL_VERSION:
                    raise FrameError(f"protocol version {hello.get('version')} is not supported")
                return tokens.verify(self.public, str(hello.get("token", "")), self.rs.revoked())

    async def _watch_loop(self) -> None:
        """Every WATCH_EVERY seconds, one sweep over all connectors: one dropped when its
        token is revoked or expires, or when it has been silent for DEAD_AFTER seconds (no
        heartbeat). One task and one read of the revocation list per sweep, whatever the
        number of homes (a task and a read per connector cost 5,000 homes 5% of a core)."""
        while True:
            await asyncio.sleep(WATCH_EVERY)
            self.sweep()

    def sweep(self, now: float | None = None, wall: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        wall = time.time() if wall is None else wall
        try:
            revoked = self.rs.revoked()
        except HagateError as e:  # a damaged list: say so, and keep the connectors
            print(f"hagate relay: {e}", file=sys.stderr, flush=True)
            revoked = frozenset()
        for group in list(self.connectors.values()):
            for connector in list(group):
                if connector.token_id in revoked:
                    connector.drop(": its token was revoked")
                elif wall >= connector.expires:
                    connector.drop(": its token expired")
                elif now - connector.mux.last_received > DEAD_AFTER:
                    self.counters["dead_connectors"] += 1
                    connector.drop(f": silent for {DEAD_AFTER:g} s")

    # -- status ---------------------------------------------------------------------------

    def _connector_entries(self) -> list[dict[str, Any]]:
        return [
            {
                "hostname": c.hostname,
                "token": c.token_id,
                "expires": c.expires,
                "address": c.address,
                "since": c.since,
                "streams": len(c.mux.streams),
                "opened": c.mux.opened,
            }
            for group in self.connectors.values()
            for c in group
        ]

    def _head(self) -> dict[str, Any]:
        return {
            "time": time.time(),
            "hostname": self.rs.hostname,
            "active_streams": self.active_streams,
            "counters": dict(self.counters),
        }

    def status(self) -> dict[str, Any]:
        return {**self._head(), "connectors": self._connector_entries()}

    def status_bytes(self, now: float) -> bytes | None:
        """The status file's text, or None when nothing changed since the last one (and the
        last one is younger than STATUS_REFRESH). The connectors' list, the large part with
        thousands of homes (21 ms of the event loop for 5,000), is serialised again when homes
        came or went, and for their stream counts at most every N/200 seconds for N homes
        (every second for a few, up to STATUS_REFRESH)."""
        marker = (self._version, tuple(self.counters.items()), self.active_streams)
        homes = sum(len(group) for group in self.connectors.values())
        every = min(STATUS_REFRESH, max(1.0, homes / 200))
        fresh = now - self._listed_at < every
        if marker == self._written and now - self._listed_at < STATUS_REFRESH:
            return None
        if self._listed_version != self._version or not fresh:
            self._listed = json.dumps(self._connector_entries(), separators=(",", ":"))
            self._listed_version, self._listed_at = self._version, now
        self._written = marker
        head = json.dumps(self._head(), separators=(",", ":"))
        return (head[:-1] + ',"connectors":' + self._listed + "}").encode()

    async def _status_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self.prune()
            # Compact JSON (the indenting encoder is pure Python), rebuilt only for changes,
            # and written off the loop (fsync): with 5,000 homes, rewriting everything every
            # second held the event loop for 21 ms.
            data = self.status_bytes(time.monotonic())
            if data is not None:
                with contextlib.suppress(OSError):
                    await loop.run_in_executor(None, atomic_write, self.rs.state / STATUS, data)
            await asyncio.sleep(1)
