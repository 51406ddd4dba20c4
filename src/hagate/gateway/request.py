"""One request: its head parsed and judged, then answered by the gateway or forwarded.

Rules of this module:
  1. Every request on a connection is parsed, vetted and judged on its own; nothing about an
     earlier request (its rule result, its path) carries over to the next.
  2. A refused request never reaches Home Assistant. A refused request with a body closes the
     connection, so no unread body can be taken for the next request; so does a request
     blocked for want of a valid certificate.
  3. Each request makes exactly one event (record.py), also when the client is gone.
  4. Once a response head has gone to the client, nothing else is written on the connection:
     a failure after that cuts it (no close_notify, so the client knows the body is short).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import ssl
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hagate.enrol import answer as enrol_answer
from hagate.enrol import pages as enrol_pages
from hagate.gateway import credentials, pages
from hagate.gateway.channel import Channel
from hagate.gateway.console import console_request, is_console_path
from hagate.gateway.identity import NO_CERT, CertState, ClientCertificate
from hagate.gateway.proxy import forward
from hagate.gateway.record import Exchange, new_request_id, write_page
from hagate.gateway.upstream import UpstreamError
from hagate.gateway.verdict import Outcome, judge
from hagate.geoip import Location
from hagate.http1.bodies import ClientBodyError, UpstreamBodyError
from hagate.http1.heads import HeadError, RequestHead, parse_request_head
from hagate.http1.state import ConnState, after_exchange
from hagate.rules.fields import reads_credentials
from hagate.rules.ruleset import Decision, RateLimitRule

if TYPE_CHECKING:
    from hagate.gateway.server import Gateway

USE_RECORD_EVERY = 3600.0  # a certificate's last use goes on record at most this often


@dataclass(slots=True)
class Conn:
    """What the gateway knows of a client connection once TLS is up (worked out once)."""

    client_ip: str
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address
    sni: str | None
    cert: ClientCertificate | None
    location: Location
    port: int


async def serve_request(gw: Gateway, conn: Conn, client: Channel, head_bytes: bytes) -> bool:
    """Serve the request whose head is `head_bytes`; whether the connection carries more."""
    setup = gw.setup
    settings = setup.config.gateway
    ex = Exchange(new_request_id(), conn.client_ip, location=conn.location)
    try:
        head = parse_request_head(head_bytes, settings.max_headers)
    except HeadError as e:
        await refuse(gw, client, conn, ex, e.status, e.reason)
        return False
    ex.method, ex.path, ex.host = head.method, head.target.loggable, head.host
    ex.user_agent = head.user_agent
    wants_html = "text/html" in head.accept
    cert = conn.cert.state(gw.inventory) if conn.cert else NO_CERT
    claim: credentials.Claim | None = None
    taps = credentials.NO_TAPS
    if gw.binder is not None:
        if cert.verified:
            target = head.target
            if (  # most requests carry nothing to bind: checked here, without a call
                head.authorization is not None
                or target.query
                or head.method == "POST"
                or head.websocket
                or target.path.startswith(credentials.WEBHOOK)
            ):
                taps = credentials.bind_verified(gw, client, head, cert)
        elif reads_credentials(setup.ruleset.fields_used):
            claim = await credentials.claim_of_head(gw, head)

    verdict = judge(
        head,
        conn.sni,
        setup.config.hostname,
        settings.max_body_bytes,
        setup.ruleset,
        conn.ip,
        conn.port,
        conn.location,
        cert,
        extra=(
            None
            if claim is None and gw.webhooks is None
            else credentials.extra_fields(gw, head, claim)
        ),
    )
    outcome = verdict.outcome
    if outcome is Outcome.WRONG_HOST:
        ex.status, ex.action, ex.reason = 421, "refused", verdict.reason
        write_page(
            client,
            ex,
            pages.wrong_host(
                setup.config.hostname,
                head.host_name,
                ex.request_id,
                wants_html,
                head.method != "HEAD",
            ),
        )
        gw.recorder.observe(ex, conn.sni, cert)  # before the drain: a client gone keeps its row
        await client.drain()
        return False
    if outcome is Outcome.GATEWAY_PATH:
        return await _gateway_path(gw, client, conn, ex, head, cert)
    if outcome is Outcome.TOO_LARGE:
        await refuse(gw, client, conn, ex, 413, verdict.reason, wants_html)
        return False
    if cert.verified and cert.sha256 is not None:
        used = gw.used_at.get(cert.sha256)
        if used is None or ex.started - used > USE_RECORD_EVERY:
            gw.used_at[cert.sha256] = ex.started
            _record_use(gw, cert.sha256, ex)
    decision = verdict.decision
    assert decision is not None
    if claim is not None and decision.blocked and not isinstance(decision.rule, RateLimitRule):
        # What a form or a websocket's first message carries, read only now.
        later = await credentials.look_further(gw, client, head, conn, cert, claim, decision)
        if later is None:
            await refuse(gw, client, conn, ex, 408, "the /auth/token form did not arrive")
            return False
        decision = later
    if claim is not None and claim.found is not None:
        ex.reason = claim.found.words()
        binding = claim.found.binding
        if binding is not None:
            ex.bound_to = (claim.found.cert_name, binding.cert_sha256)
    elif gw.webhooks is not None:
        ex.reason = credentials.webhook_words(gw, head)
    if decision.logged:
        ex.rule = "; ".join(r.description or f"#{r.number}" for r in decision.logged)
    if decision.blocked:
        keep = after_exchange(
            request_keep_alive=head.keep_alive,
            response_keep_alive=cert.verified,  # no valid certificate: nothing more to say
            request_body_done=not head.has_body and not head.expect_continue,
        )
        try:
            await _block(client, ex, head, decision, cert, wants_html, keep is ConnState.IDLE)
        finally:  # a blocked request keeps its row, even when the client is already gone
            gw.recorder.observe(ex, conn.sni, cert)
        return keep is ConnState.IDLE
    if decision.rule is not None:
        ex.rule = decision.rule.description or f"#{decision.rule.number}"
        ex.action = "skip"
    if claim is None:
        return await _forward(gw, client, conn, ex, head, cert, wants_html, taps)
    try:
        return await _forward(
            gw, client, conn, ex, head, cert, wants_html, credentials.Taps(hold=claim.hold)
        )
    finally:
        if ex.action != "block":
            credentials.note_use(gw, claim, conn)


async def _forward(
    gw: Gateway,
    client: Channel,
    conn: Conn,
    ex: Exchange,
    head: RequestHead,
    cert: CertState,
    wants_html: bool,
    taps: credentials.Taps,
) -> bool:
    """Proxy an allowed request to Home Assistant; its failures become pages or cuts, and
    each its row."""
    keep = False
    try:
        keep = await forward(gw, head, client, ex, cert, taps)
    except (UpstreamError, UpstreamBodyError) as e:
        # Home Assistant's fault, never the client's: a page while nothing was sent yet.
        ex.action, ex.reason = "upstream_error", e.reason
        if ex.answered:
            ex.reason = f"{e.reason}; the response had begun, the client connection was cut"
            client.cut()
        else:
            ex.status = e.status
            with contextlib.suppress(Exception):
                write_page(client, ex, pages.upstream_failed(e.status, ex.request_id, wants_html))
                await client.drain()
    except ClientBodyError as e:
        # The client's body broke off, broke a limit or stalled. Home Assistant already had
        # the head (bodies stream): the row keeps the rule's action, and says what was cut.
        if ex.answered:
            ex.reason = f"{e.reason}; the response had begun, both connections were closed"
            client.cut()
        else:
            ex.status = e.status
            ex.reason = f"{e.reason}; Home Assistant had the head, its connection was closed"
            with contextlib.suppress(Exception):
                write_page(client, ex, pages.refused(e.status, e.reason, ex.request_id, wants_html))
                await client.drain()
    except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError) as e:
        # The client went away: the request still gets its row, with what was sent.
        ex.reason = f"cut short: {str(e) or type(e).__name__}"
    except asyncio.CancelledError:
        # The gateway stopped past its drain deadline (a websocket open for hours, say):
        # the row is written now, or it would never be.
        ex.reason = "cut short: the gateway stopped"
        gw.recorder.observe(ex, conn.sni, cert)
        raise
    gw.recorder.observe(ex, conn.sni, cert)
    return keep and not gw.closing


async def _block(
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
    problem = cert.problem if mentions_cert else None
    ex.reason = "; ".join(words for words in (problem, ex.reason) if words) or None
    write_page(
        client,
        ex,
        pages.blocked(
            decision.status,
            ex.rule,
            rule.response,
            problem,
            cert.standing,
            ex.request_id,
            wants_html,
            keep,
            head.method != "HEAD",
        ),
    )
    await client.drain()


async def _gateway_path(
    gw: Gateway, client: Channel, conn: Conn, ex: Exchange, head: RequestHead, cert: CertState
) -> bool:
    """`/.hagate/...`: the enrolment link, the console for an admin certificate, or a 404;
    never forwarded, whatever the rules."""
    target = head.target
    if (
        gw.console is not None
        and is_console_path(target.path)
        and cert.verified
        and cert.sha256 is not None
        and await asyncio.to_thread(gw.console.is_admin, cert.sha256)
    ):
        return await _console_path(gw, client, conn, ex, head, cert, cert.sha256)
    r = enrol_answer.route(head.method, target.path, target.as_sent, target.query)
    ex.path = enrol_answer.loggable(target.path)  # a token is a secret: never in a log
    ex.action = "enrol"
    if gw.enrolments is None:
        reply = enrol_answer.Reply(
            404, "text/html; charset=utf-8", enrol_pages.not_found(), "no enrolment here"
        )
    else:
        reply = await asyncio.to_thread(
            gw.enrolments.reply, r, ex.user_agent, ex.client_ip, head.method == "HEAD"
        )
    ex.status, ex.reason = reply.status, reply.reason
    keep = after_exchange(
        request_keep_alive=head.keep_alive,
        response_keep_alive=True,
        request_body_done=not head.has_body and not head.expect_continue,
    )
    headers: tuple[tuple[str, str], ...] = ()
    if reply.filename:
        headers = (("Content-Disposition", f'attachment; filename="{reply.filename}"'),)
    write_page(
        client,
        ex,
        pages.response(
            reply.status,
            reply.content_type,
            reply.body,
            ex.request_id,
            keep is ConnState.IDLE,
            "enrol",
            headers,
            body_allowed=head.method != "HEAD",
        ),
    )
    gw.recorder.observe(ex, conn.sni, cert)
    await client.drain()
    return keep is ConnState.IDLE


def _record_use(gw: Gateway, sha256: str, ex: Exchange) -> None:
    """Put a certificate's first use on record, and later ones as the record's time
    (off the event loop; `hagate audit` reads it for certificates unused for months)."""
    if gw.enrolments is None:
        return
    loc = ex.location
    facts = {
        "time": time.time(),
        "ip": ex.client_ip,
        "asn": loc.asn if loc else None,
        "country": loc.country if loc else None,
        "user_agent": ex.user_agent,
    }
    store = gw.enrolments.store
    asyncio.get_running_loop().run_in_executor(None, store.record_use, sha256, facts)


async def refuse(
    gw: Gateway,
    client: Channel,
    conn: Conn,
    ex: Exchange,
    status: int,
    reason: str,
    as_html: bool = False,
) -> None:
    """Refuse a request before the rules with a page, and close."""
    ex.status, ex.action, ex.reason = status, "refused", reason
    with contextlib.suppress(Exception):
        write_page(client, ex, pages.refused(status, reason, ex.request_id, as_html))
        await asyncio.wait_for(client.drain(), 5)
    gw.recorder.observe(ex, conn.sni, NO_CERT)


async def _console_path(
    gw: Gateway,
    client: Channel,
    conn: Conn,
    ex: Exchange,
    head: RequestHead,
    cert: CertState,
    sha256: str,
) -> bool:
    """An admin certificate's request to `/.hagate/console/`: answered by the console."""
    assert gw.console is not None
    ex.action = "console"
    request = console_request(head, sha256)
    answer = await gw.console.exchange(request, client) if request is not None else None
    if answer is None:
        if request is None:
            ex.status, ex.reason = 413, "a console request's body must be a small form"
        else:
            ex.status, ex.reason = 503, "the console is not running (admin: in hagate.yaml)"
        write_page(
            client,
            ex,
            pages.refused(ex.status, ex.reason, ex.request_id, "text/html" in head.accept),
        )
    else:
        parts = answer.split(b" ", 2)
        ex.status = int(parts[1]) if len(parts) > 2 and parts[1].isdigit() else 502
        ex.bytes_out += len(answer)
        ex.answered = True
        client.write(answer)
    gw.recorder.observe(ex, conn.sni, cert)
    await client.drain()
    return False  # the console's answer ends with the connection (Connection: close)
