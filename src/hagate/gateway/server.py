"""The gateway's connection handler: TLS, then each request decided by the rules and proxied.

Rules of this module:
  1. Every request on a connection is parsed, vetted and decided on its own; nothing about an
     earlier request (its rule result, its path) carries over to the next.
  2. A refused request never reaches Home Assistant. A refused request with a body closes the
     connection, so no unread body can be taken for the next request.
  3. Bodies are streamed in both directions in pieces of at most `CHUNK` bytes, with
     backpressure (drain) on every write: memory per connection is bounded.
  4. What the rules matched is what is forwarded: the normalised target, the client's Host,
     and X-Forwarded-* built here (whatever the client sent is replaced).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
import os
import socket
import ssl
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cryptography import x509

from hagate.acme import answer as acme_answer
from hagate.acme.follow import FollowedContext
from hagate.acme.store import AcmeFiles
from hagate.clienthello import ClientHelloError, peek_client_hello
from hagate.config import Config
from hagate.enrol import answer as enrol_answer
from hagate.enrol import pages as enrol_pages
from hagate.enrol.service import Enrolments
from hagate.events.store import EventStore
from hagate.gateway.channel import Channel, LimitOverrun
from hagate.gateway.http1 import (
    LAST_CHUNK,
    MAX_CHUNK_LINE,
    HeadError,
    RequestHead,
    ResponseHead,
    encode_chunk,
    forwarded_head,
    parse_chunk_size,
    parse_request_head,
    parse_response_head,
    response_head_bytes,
)
from hagate.gateway.identity import (
    NO_CERT,
    CertState,
    ClientCertificate,
    Inventory,
    client_certificate,
)
from hagate.gateway.pages import page, reason_phrase, response
from hagate.gateway.tls import SNI_ATTR, handshake_reason
from hagate.gateway.upstream import RESPONSE_HEAD_LIMIT, UpstreamError, UpstreamPool
from hagate.gateway.verdict import Outcome, judge
from hagate.geoip import GeoIP, Location
from hagate.rules.ruleset import Decision, RuleSet
from hagate.watch.status import Links

if TYPE_CHECKING:
    from hagate.watch.alerts import Alerter
    from hagate.watch.metrics import Metrics

CHUNK = 65536
REVOKED_FIELD = "cf.tls_client_auth.cert_revoked"
USE_RECORD_EVERY = 3600.0  # a certificate's last use goes on record at most this often
MAX_TRAILERS = 16384
_NO_BODY_STATUS = {204, 304}


class BodyError(Exception):
    """The client's body broke off or broke the rules; the connection is closed."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


@dataclass
class Setup:
    """What a gateway needs that SIGHUP may replace: config, rules, GeoIP."""

    config: Config
    ruleset: RuleSet
    geoip: GeoIP


@dataclass
class Exchange:
    """One request's record: becomes an event row and a log line."""

    request_id: str
    client_ip: str
    started: float = field(default_factory=time.monotonic)
    method: str = ""
    path: str = ""
    host: str = ""
    user_agent: str = ""
    status: int = 0
    action: str = "allow"
    rule: str | None = None
    reason: str | None = None
    bytes_in: int = 0
    bytes_out: int = 0
    location: Location | None = None  # when already looked up


_ID_PREFIX = os.urandom(4).hex()
_ID_COUNTER = itertools.count(1)


def new_request_id() -> str:
    """16 hex digits, unique across processes and restarts: a random prefix drawn once per
    process and a counter (an id names a request in logs; it is not a secret)."""
    return f"{_ID_PREFIX}{next(_ID_COUNTER) & 0xFFFFFFFF:08x}"


def _reseed_request_ids() -> None:
    global _ID_PREFIX
    _ID_PREFIX = os.urandom(4).hex()


os.register_at_fork(after_in_child=_reseed_request_ids)  # workers must not share a prefix


class Gateway:
    def __init__(
        self,
        setup: Setup,
        contexts: FollowedContext,
        inventory: Inventory,
        ca_cert: x509.Certificate,
        events: EventStore | None = None,
        acme_files: AcmeFiles | None = None,
        enrolments: Enrolments | None = None,
    ) -> None:
        self.setup = setup
        self.enrolments = enrolments  # the one-time enrolment links (/.hagate/enrol/...)
        self.contexts = contexts
        self.acme_files = acme_files  # where tls-alpn-01 challenges are published
        # Whether the CA can reach this gateway now (a connector sets it: connected or not).
        self.reachable: Callable[[], bool] = lambda: True
        self.inventory = inventory
        self.ca_cert = ca_cert
        self.events = events
        settings = setup.config.gateway
        self.pool = UpstreamPool(setup.config.upstream, settings.connect_timeout)
        self.closing = False
        self.connections: set[asyncio.Task[None]] = set()
        self.busy = 0
        self.metrics: Metrics | None = None  # with an admin listener
        self.alerts: Alerter | None = None  # with alerts configured
        self.links = Links()  # the connector's relays, up or down
        self.used_at: dict[str, float] = {}  # certificate sha256 -> last use put on record

    # -- connections ------------------------------------------------------------------------

    async def accept(self, sock: socket.socket, peer: tuple[str, int]) -> None:
        """Serve one accepted TCP connection: the TLS handshake, then its requests.

        The loop does the handshake on the raw socket, so no byte is read before TLS is in
        place, and a failed handshake comes back here to become an event.
        """
        loop = asyncio.get_running_loop()
        settings = self.setup.config.gateway
        sock.setblocking(False)
        # Peek at the ClientHello first (nothing is consumed), so that even a failed
        # handshake is an event with the name the client asked for.
        sni: str | None = None
        try:
            async with asyncio.timeout(settings.header_timeout):
                hello = await peek_client_hello(sock)
        except (TimeoutError, ClientHelloError, OSError) as e:
            reason = (
                "not TLS (plain HTTP sent to the TLS port?)"
                if isinstance(e, ClientHelloError)
                else handshake_reason(e)
            )
            sock.close()
            ex = Exchange(new_request_id(), peer[0], action="tls_error", reason=reason)
            self._event(ex, sni=None, cert=NO_CERT)
            return
        if hello is None:
            sock.close()
            reason = "the client closed the connection before the TLS handshake"
            self._event(
                Exchange(new_request_id(), peer[0], action="tls_error", reason=reason),
                sni=None,
                cert=NO_CERT,
            )
            return
        sni = hello.sni
        if acme_answer.offers_acme(hello.alpn):
            await self._acme_challenge(sock, peer, sni)
            return
        client = Channel(loop)
        try:
            await loop.connect_accepted_socket(
                lambda: client,
                sock,
                ssl=self.contexts.current(),
                ssl_handshake_timeout=settings.header_timeout,
            )
        except Exception as e:  # every handshake failure is an event, whatever its kind
            sock.close()
            ex = Exchange(new_request_id(), peer[0], action="tls_error", reason=handshake_reason(e))
            self._event(ex, sni=sni, cert=NO_CERT)
            return
        await self.handle(client, peer)

    async def _acme_challenge(
        self, sock: socket.socket, peer: tuple[str, int], sni: str | None
    ) -> None:
        """A CA validating this name (tls-alpn-01): the validation certificate, no HTTP."""
        ex = Exchange(new_request_id(), peer[0], action="acme_challenge")
        if self.acme_files is None or sni != self.setup.config.hostname:
            sock.close()
            ex.reason = f"tls-alpn-01 connection for {sni or 'no name'}: no ACME here, closed"
        else:
            ex.reason = await acme_answer.answer(
                self.acme_files, sni, sock, self.setup.config.gateway.header_timeout
            )
        self._event(ex, sni=sni, cert=NO_CERT)

    async def handle(self, client: Channel, peer: tuple[str, int]) -> None:
        """Serve the requests of one client connection over an established TLS channel."""
        task = asyncio.current_task()
        if task is not None:
            self.connections.add(task)
        try:
            await self._serve(client, peer)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            if task is not None:
                self.connections.discard(task)
            client.close()

    async def _serve(self, client: Channel, peer: tuple[str, int]) -> None:
        client_ip = peer[0]
        sslobj = client.get_extra_info("ssl_object")
        sni: str | None = getattr(sslobj, SNI_ATTR, None) if sslobj is not None else None
        der = sslobj.getpeercert(binary_form=True) if sslobj is not None else None
        client_cert = client_certificate(der, self.ca_cert) if der else None
        ip = ipaddress.ip_address(client_ip)
        location = self.setup.geoip.lookup(ip)
        sockname = client.get_extra_info("sockname")
        port = sockname[1] if sockname else 443
        first = True
        while not self.closing:
            head_bytes = await self._read_head(client, client_ip, sni, first)
            if head_bytes is None:
                return
            first = False
            self.busy += 1
            try:
                keep = await self._request(
                    head_bytes, client, client_ip, ip, location, sni, client_cert, port
                )
            finally:
                self.busy -= 1
            if not keep:
                return

    async def _read_head(
        self, client: Channel, client_ip: str, sni: str | None, first: bool
    ) -> bytes | None:
        """The next request head, or None when the connection should end."""
        settings = self.setup.config.gateway
        try:
            # Waiting for the next request is idle time; once it starts, the whole head must
            # arrive within header_timeout (a slowloris client gets cut off).
            idle = settings.header_timeout if first else settings.idle_timeout
            if not await client.wait_data(client.deadline(idle)):
                return None
        except TimeoutError:
            return None
        try:
            head = client.take_until(b"\r\n\r\n", settings.max_header_bytes)
            if head is not None:  # the whole head came at once, as it usually does
                return head
            return await client.readuntil(
                b"\r\n\r\n", settings.max_header_bytes, client.deadline(settings.header_timeout)
            )
        except TimeoutError:
            await self._refuse(
                client,
                Exchange(new_request_id(), client_ip),
                408,
                "the request head did not arrive in time",
                sni,
            )
            return None
        except LimitOverrun:
            await self._refuse(
                client,
                Exchange(new_request_id(), client_ip),
                431,
                "the request head is too large",
                sni,
            )
            return None
        except (asyncio.IncompleteReadError, ConnectionError):
            return None

    async def _refuse(
        self,
        client: Channel,
        ex: Exchange,
        status: int,
        reason: str,
        sni: str | None,
        as_html: bool = False,
    ) -> None:
        ex.status, ex.action, ex.reason = status, "refused", reason
        with contextlib.suppress(Exception):
            self._write_page(
                client,
                ex,
                page(
                    status, reason_phrase(status), reason, ex.request_id, as_html, keep_alive=False
                ),
            )
            await asyncio.wait_for(client.drain(), 5)
        self._event(ex, sni=sni, cert=NO_CERT)

    # -- one request ------------------------------------------------------------------------

    async def _request(
        self,
        head_bytes: bytes,
        client: Channel,
        client_ip: str,
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address,
        location: Location,
        sni: str | None,
        client_cert: ClientCertificate | None,
        port: int,
    ) -> bool:
        setup = self.setup
        settings = setup.config.gateway
        ex = Exchange(new_request_id(), client_ip, location=location)
        try:
            head = parse_request_head(head_bytes, settings.max_headers)
        except HeadError as e:
            await self._refuse(client, ex, e.status, e.reason, sni)
            return False
        ex.method, ex.path, ex.host = head.method, head.target.loggable, head.host
        ex.user_agent = head.get("user-agent") or ""
        wants_html = "text/html" in (head.get("accept") or "")
        cert = client_cert.state(self.inventory) if client_cert else NO_CERT

        verdict = judge(
            head,
            sni,
            setup.config.hostname,
            settings.max_body_bytes,
            setup.ruleset,
            ip,
            port,
            location,
            cert,
        )
        if verdict.outcome is Outcome.WRONG_HOST:
            return await self._wrong_host(client, ex, head, verdict.reason, sni, cert, wants_html)
        if verdict.outcome is Outcome.GATEWAY_PATH:
            return await self._gateway_path(client, ex, head, sni, cert)
        if verdict.outcome is Outcome.TOO_LARGE:
            await self._refuse(client, ex, 413, verdict.reason, sni, wants_html)
            return False
        if cert.verified and cert.sha256 is not None:
            used = self.used_at.get(cert.sha256)
            if used is None or ex.started - used > USE_RECORD_EVERY:
                self.used_at[cert.sha256] = ex.started
                self._record_use(cert.sha256, ex)
        decision = verdict.decision
        assert decision is not None
        if decision.logged:
            ex.rule = "; ".join(r.description or f"#{r.number}" for r in decision.logged)
        if decision.blocked:
            keep = head.keep_alive and not head.has_body and not head.expect_continue
            try:
                await self._block(client, ex, head, decision, cert, wants_html, keep)
            finally:  # a blocked request keeps its row, even when the client is already gone
                self._event(ex, sni, cert)
            return keep
        if decision.rule is not None:
            ex.rule = decision.rule.description or f"#{decision.rule.number}"
            ex.action = "skip"
        keep = await self._forward(head, client, ex, wants_html, sni, cert)
        return keep and not self.closing

    async def _forward(
        self,
        head: RequestHead,
        client: Channel,
        ex: Exchange,
        wants_html: bool,
        sni: str | None,
        cert: CertState,
    ) -> bool:
        """Proxy an allowed request to Home Assistant; its failures become pages and rows."""
        try:
            keep = await self._proxy(head, client, ex)
        except UpstreamError as e:
            ex.status, ex.reason = e.status, e.reason
            ex.action = "upstream_error"
            with contextlib.suppress(Exception):
                title = (
                    "Home Assistant is not answering"
                    if e.status == 504
                    else "Home Assistant cannot be reached"
                )
                self._write_page(
                    client,
                    ex,
                    page(
                        e.status,
                        title,
                        "The gateway could not get an answer from "
                        "Home Assistant. Try again in a moment.",
                        ex.request_id,
                        wants_html,
                        keep_alive=False,
                        kind="upstream",
                    ),
                )
                await client.drain()
            keep = False
        except BodyError as e:
            # Home Assistant already had the head (bodies stream): the row keeps the rule's
            # action, since HA was asked, and says the connection to it was cut.
            ex.status = e.status
            ex.reason = f"{e}; Home Assistant had the head, its connection was closed"
            with contextlib.suppress(Exception):
                self._write_page(
                    client,
                    ex,
                    page(
                        e.status,
                        reason_phrase(e.status),
                        str(e),
                        ex.request_id,
                        wants_html,
                        keep_alive=False,
                    ),
                )
                await client.drain()
            keep = False
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError) as e:
            # The client went away, or Home Assistant broke off mid-response: the request
            # still gets its row, with what was sent and why it ended.
            ex.reason = f"cut short: {str(e) or type(e).__name__}"
            keep = False
        except asyncio.CancelledError:
            # The gateway stopped past its drain deadline (a websocket open for hours, say):
            # the row is written now, or it would never be.
            ex.reason = "cut short: the gateway stopped"
            self._event(ex, sni, cert)
            raise
        self._event(ex, sni, cert)
        return keep

    async def _wrong_host(
        self,
        client: Channel,
        ex: Exchange,
        head: RequestHead,
        reason: str,
        sni: str | None,
        cert: CertState,
        wants_html: bool,
    ) -> bool:
        """421: the Host (or the TLS name) is not the one this gateway serves."""
        expected = self.setup.config.hostname
        ex.status, ex.action, ex.reason = 421, "refused", reason
        self._write_page(
            client,
            ex,
            page(
                421,
                "Wrong address",
                f"This connection was made for {expected}, not {head.host_name}.",
                ex.request_id,
                wants_html,
                keep_alive=False,
                body_allowed=head.method != "HEAD",
                kind="wrong-host",
            ),
        )
        self._event(ex, sni, cert)  # before the drain: a client gone by then keeps its row
        await client.drain()
        return False

    async def _gateway_path(
        self, client: Channel, ex: Exchange, head: RequestHead, sni: str | None, cert: CertState
    ) -> bool:
        """`/.hagate/...`: the enrolment link, or a 404; never forwarded, whatever the rules."""
        target = head.target
        r = enrol_answer.route(head.method, target.path, target.as_sent, target.query)
        ex.path = enrol_answer.loggable(target.path)  # a token is a secret: never in a log
        ex.action = "enrol"
        if self.enrolments is None:
            reply = enrol_answer.Reply(
                404, "text/html; charset=utf-8", enrol_pages.not_found(), "no enrolment here"
            )
        else:
            reply = await asyncio.to_thread(
                self.enrolments.reply, r, ex.user_agent, ex.client_ip, head.method == "HEAD"
            )
        ex.status, ex.reason = reply.status, reply.reason
        keep = head.keep_alive and not head.has_body and not head.expect_continue
        headers: tuple[tuple[str, str], ...] = ()
        if reply.filename:
            headers = (("Content-Disposition", f'attachment; filename="{reply.filename}"'),)
        self._write_page(
            client,
            ex,
            response(
                reply.status,
                reply.content_type,
                reply.body,
                ex.request_id,
                keep,
                "enrol",
                headers,
                body_allowed=head.method != "HEAD",
            ),
        )
        self._event(ex, sni, cert)
        await client.drain()
        return keep

    def _record_use(self, sha256: str, ex: Exchange) -> None:
        """Put a certificate's first use on record, and later ones as the record's time
        (off the event loop; `hagate audit` reads it for certificates unused for months)."""
        if self.enrolments is None:
            return
        loc = ex.location
        facts = {
            "time": time.time(),
            "ip": ex.client_ip,
            "asn": loc.asn if loc else None,
            "country": loc.country if loc else None,
            "user_agent": ex.user_agent,
        }
        store = self.enrolments.store
        loop = asyncio.get_running_loop()
        loop.run_in_executor(None, store.record_use, sha256, facts)

    async def _block(
        self,
        client: Channel,
        ex: Exchange,
        head: RequestHead,
        decision: Decision,
        cert: CertState,
        wants_html: bool,
        keep: bool,
    ) -> None:
        rule = decision.rule
        assert rule is not None
        ex.status, ex.action = decision.status, "block"
        ex.rule = rule.description or f"#{rule.number}"
        mentions_cert = "cf.tls_client_auth" in rule.expression
        if decision.status == 429:
            title, message = "Too many requests", "Slow down and try again in a while."
            hint = ""
        elif mentions_cert and cert.problem:
            title = "A client certificate is required"
            message = (
                f"This Home Assistant only lets in devices holding a valid client "
                f"certificate, and {cert.problem}."
            )
            hint = (
                "Ask whoever runs it for a new certificate, install it, and reload."
                if cert.name
                else "Install your certificate on this device and reload."
            )
        else:
            title = "Blocked"
            message = f'This request was blocked by the rule "{ex.rule}".'
            hint = ""
        if rule.response:
            message, hint = rule.response, ""
        ex.reason = cert.problem if mentions_cert else None
        self._write_page(
            client,
            ex,
            page(
                decision.status,
                title,
                message,
                ex.request_id,
                wants_html,
                keep,
                hint,
                body_allowed=head.method != "HEAD",
                kind="blocked",
            ),
        )
        await client.drain()

    # -- proxying ---------------------------------------------------------------------------

    def _upstream_head(self, head: RequestHead, client_ip: str) -> bytes:
        return forwarded_head(head, client_ip, self.setup.config.hostname)

    async def _proxy(self, head: RequestHead, client: Channel, ex: Exchange) -> bool:
        settings = self.setup.config.gateway
        upstream_head = self._upstream_head(head, ex.client_ip)
        attempts = 1 if head.has_body else 2  # a stale pooled connection gets one retry
        body_task: asyncio.Task[None] | None = None
        for attempt in range(attempts):
            # A pooled connection without a wait; a stale one gets one retry on a new one.
            pooled = self.pool.pooled() if attempt == 0 else None
            reused = pooled is not None
            up = pooled if pooled is not None else await self.pool.connect()
            sent_at = time.monotonic()
            try:
                up.write(upstream_head)
                body_task = (
                    asyncio.create_task(self._pump_body(head, client, up, ex))
                    if head.has_body
                    else None
                )
                try:
                    rhead_bytes, rhead = await self._response_head(
                        up, client, settings.response_timeout
                    )
                except BaseException:
                    if body_task is not None:
                        body_task.cancel()
                    raise
            except (ConnectionError, asyncio.IncompleteReadError) as e:
                up.close()
                failed = _body_error(body_task)
                if failed is not None:
                    raise failed from None  # the client's body broke off or broke a limit
                if reused and attempt + 1 < attempts:
                    continue
                why = str(e) or "connection closed"
                raise UpstreamError(502, f"Home Assistant closed the connection ({why})") from None
            except TimeoutError:
                up.close()
                raise UpstreamError(504, "Home Assistant did not answer in time") from None
            except LimitOverrun:
                up.close()
                raise UpstreamError(502, "the response head from upstream is too large") from None
            except HeadError as e:
                up.close()
                raise UpstreamError(502, e.reason) from None
            break
        if self.metrics is not None:
            self.metrics.upstream_latency.observe(time.monotonic() - sent_at)
        ex.status = rhead.status
        if rhead.status == 101:
            if not head.websocket:
                up.close()
                raise UpstreamError(502, "Home Assistant switched protocols unasked")
            client.write(rhead_bytes)
            await client.drain()
            await self._pipe(client, up, ex)
            return False
        try:
            upstream_done, keep_client = await self._respond(head, rhead, up, client, ex)
        except BaseException:
            up.close()
            if body_task is not None:
                body_task.cancel()
            raise
        body_ok = True
        if body_task is not None:
            if not body_task.done():
                # The response finished before the request body was read: close both ends.
                body_task.cancel()
                body_ok = False
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await body_task
            if body_task.cancelled() or body_task.exception() is not None:
                body_ok = False
        # An upgrade that was not answered 101 leaves Home Assistant reading whatever follows
        # as a new request (aiohttp does): that connection carries nothing more.
        if upstream_done and rhead.keep_alive and body_ok and not head.websocket:
            self.pool.release(up)
        else:
            up.close()
        return keep_client and head.keep_alive and body_ok

    async def _response_head(
        self, up: Channel, client: Channel, timeout: float
    ) -> tuple[bytes, ResponseHead]:
        while True:
            raw = await up.readuntil(b"\r\n\r\n", RESPONSE_HEAD_LIMIT, up.deadline(timeout))
            rhead = parse_response_head(raw)
            if 100 <= rhead.status < 200 and rhead.status != 101:
                client.write(raw)  # 100 Continue and friends go straight to the client
                await client.drain()
                continue
            return raw, rhead

    async def _pump_body(
        self, head: RequestHead, client: Channel, up: Channel, ex: Exchange
    ) -> None:
        try:
            await self._copy_body(head, client, up, ex)
        except BodyError:
            up.close()  # Home Assistant sees the request cut short and answers nothing
            raise

    async def _copy_body(
        self, head: RequestHead, client: Channel, up: Channel, ex: Exchange
    ) -> None:
        limit = self.setup.config.gateway.max_body_bytes
        if head.content_length is not None:
            remaining = head.content_length
            while remaining:
                data = await client.read(min(CHUNK, remaining))
                if not data:
                    raise BodyError(400, "the request body ended early")
                remaining -= len(data)
                ex.bytes_in += len(data)
                up.write(data)
                await up.drain()
            return
        async for piece in read_chunked(client):
            ex.bytes_in += len(piece)
            if limit and ex.bytes_in > limit:
                raise BodyError(413, "the request body is too large")
            up.write(encode_chunk(piece))
            await up.drain()
        up.write(LAST_CHUNK)
        await up.drain()

    async def _respond(
        self,
        head: RequestHead,
        rhead: ResponseHead,
        up: Channel,
        client: Channel,
        ex: Exchange,
    ) -> tuple[bool, bool]:
        """Send the response; returns (upstream connection reusable, client keep-alive)."""
        no_body = head.method == "HEAD" or rhead.status in _NO_BODY_STATUS
        keep_client = head.keep_alive and not self.closing
        close_delimited = not no_body and not rhead.chunked and rhead.content_length is None
        rechunk = not no_body and (rhead.chunked or close_delimited) and head.version == "HTTP/1.1"
        if not rechunk and not no_body and rhead.content_length is None:
            keep_client = False  # HTTP/1.0 client, unknown length: the end is the close
        out = response_head_bytes(
            rhead,
            rhead.reason or reason_phrase(rhead.status),
            keep_client,
            rechunk,
            drop_length=not no_body and rhead.content_length is None,
        )
        if no_body:
            client.write(out)
            await client.drain()
            return True, keep_client
        if rhead.content_length is not None:
            remaining = rhead.content_length
            if remaining:
                # The head waits for the first piece of the body, so both leave in one write
                # and one TLS record (servers sending a file write them apart). Nothing has
                # reached the client yet: an upstream that stops here still gets a 502 or 504.
                timeout = self.setup.config.gateway.response_timeout
                try:
                    data = up.take(min(CHUNK, remaining))
                    if data is None:
                        data = await up.read(min(CHUNK, remaining), up.deadline(timeout))
                except TimeoutError:
                    raise UpstreamError(
                        504, "Home Assistant did not send the body in time"
                    ) from None
                if not data:
                    raise UpstreamError(502, "Home Assistant closed the connection before the body")
                remaining -= len(data)
                ex.bytes_out += len(data)
                out += data
            client.write(out)
            while remaining:
                await client.drain()
                data = await up.read(min(CHUNK, remaining))
                if not data:
                    raise ConnectionError("Home Assistant closed mid-response")
                remaining -= len(data)
                ex.bytes_out += len(data)
                client.write(data)
            await client.drain()
            return True, keep_client
        client.write(out)
        pieces = read_chunked(up) if rhead.chunked else read_until_eof(up)
        async for piece in pieces:
            ex.bytes_out += len(piece)
            client.write(encode_chunk(piece) if rechunk else piece)
            await client.drain()
        if rechunk:
            client.write(LAST_CHUNK)
        await client.drain()
        return rhead.chunked, keep_client

    async def _pipe(self, client: Channel, up: Channel, ex: Exchange) -> None:
        """After a 101: bytes both ways until either side closes."""

        async def copy(src: Channel, dst: Channel, inbound: bool) -> None:
            try:
                while data := await src.read(CHUNK):
                    if inbound:
                        ex.bytes_in += len(data)
                    else:
                        ex.bytes_out += len(data)
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
                pass

        tasks = [
            asyncio.create_task(copy(client, up, True)),
            asyncio.create_task(copy(up, client, False)),
        ]
        metrics = self.metrics
        if metrics is not None:
            metrics.websockets.inc()
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                t.cancel()
            up.close()
            if metrics is not None:
                metrics.websockets.dec()

    def _write_page(self, client: Channel, ex: Exchange, response: bytes) -> None:
        """Send one of the gateway's own pages; its body counts as the bytes sent."""
        client.write(response)
        ex.bytes_out += len(response) - response.find(b"\r\n\r\n") - 4

    # -- events and logs --------------------------------------------------------------------

    def record_note(self, action: str, reason: str, sni: str | None = None) -> None:
        """An event that is not a client's request (the certificate renewed, say)."""
        self._event(Exchange(new_request_id(), "", action=action, reason=reason), sni, NO_CERT)

    def _event(self, ex: Exchange, sni: str | None, cert: CertState) -> None:
        loc = ex.location
        if loc is None:
            loc = self.setup.geoip.lookup(ex.client_ip) if ex.client_ip else Location()
        row = {
            "time": time.time(),
            "request_id": ex.request_id,
            "client_ip": ex.client_ip or None,
            "asn": loc.asn or None,
            "country": loc.country or None,
            "sni": sni,
            "host": ex.host or None,
            "method": ex.method or None,
            "path": ex.path or None,
            "user_agent": ex.user_agent or None,
            "cert_name": cert.name,
            "cert_sha256": cert.sha256,
            "rule": ex.rule,
            "action": ex.action,
            "status": ex.status or None,
            "bytes_in": ex.bytes_in,
            "bytes_out": ex.bytes_out,
            "duration_ms": round((time.monotonic() - ex.started) * 1000, 3),
            "reason": ex.reason,
        }
        if self.events is not None:  # its writer also writes the log line
            self.events.record(row)
        if self.metrics is not None:
            self.metrics.event(ex.action, ex.status, ex.reason)
        if self.alerts is not None:
            self.alerts.observe(
                ex.action,
                ex.client_ip,
                loc.asn or None,
                loc.country or None,
                cert.name,
                cert.sha256,
                cert.verified,
                bool(cert.fields.get(REVOKED_FIELD)),
                ex.rule,
            )


def _body_error(task: asyncio.Task[None] | None) -> BodyError | None:
    if task is None or not task.done() or task.cancelled():
        return None
    exc = task.exception()
    return exc if isinstance(exc, BodyError) else None


async def read_chunked(src: Channel) -> AsyncIterator[bytes]:
    """Body pieces of a chunked message, read exactly (never past the end)."""
    while True:
        try:
            line = await src.readuntil(b"\r\n", MAX_CHUNK_LINE)
        except LimitOverrun:
            raise BodyError(400, "chunk size line too long") from None
        try:
            size = parse_chunk_size(line[:-2])
        except HeadError as e:
            raise BodyError(400, e.reason) from None
        if size == 0:
            break
        while size:
            data = await src.readexactly(min(CHUNK, size))
            size -= len(data)
            yield data
        if await src.readexactly(2) != b"\r\n":
            raise BodyError(400, "chunk data longer than its size")
    # Trailers: read and dropped, bounded.
    total = 0
    while True:
        try:
            line = await src.readuntil(b"\r\n", MAX_TRAILERS)
        except LimitOverrun:
            raise BodyError(400, "trailers too large") from None
        total += len(line)
        if total > MAX_TRAILERS:
            raise BodyError(400, "trailers too large")
        if line == b"\r\n":
            return


async def read_until_eof(src: Channel) -> AsyncIterator[bytes | bytearray]:
    while data := await src.read(CHUNK):
        yield data
