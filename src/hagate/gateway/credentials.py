"""Home Assistant credentials on the request path (hagate.credentials does the reading and
keeps the bindings; this module decides when the gateway looks, and waits for the bytes).

Rules of this module:
  1. A request whose certificate is verified binds the credentials it carries to it: a bearer
     token, a signed path's signature, a webhook id in its path, the refresh token of its
     `/auth/token` form and the tokens in the answer, the webhook id of a mobile_app
     registration, the token of its websocket's first message. Nothing waits for that.
  2. A request without a valid certificate is looked at only when the rules read the
     `hagate.credential.*` fields. Its head's credential is looked up before the rules run; a
     `/auth/token` form or a websocket's first message is read only when the rules would block
     the request without it, within `WAIT` and `extract`'s size limits, and the bytes read are
     forwarded unchanged.
  3. A websocket without a certificate is let through to Home Assistant only after its first
     message carried a bound token and the rules allowed it with that binding; until then no
     byte of the client's goes upstream (Home Assistant's `auth_required` does come back).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hagate.credentials import extract
from hagate.credentials.binder import Found, candidate_fields
from hagate.credentials.extract import Credential
from hagate.credentials.frames import FirstMessage, FrameError, first_message
from hagate.gateway.identity import CertState
from hagate.gateway.verdict import decide
from hagate.http1.heads import RequestHead, ResponseHead
from hagate.rules.fields import reads_webhooks
from hagate.rules.ruleset import Decision

if TYPE_CHECKING:
    from hagate.gateway.channel import Channel
    from hagate.gateway.request import Conn
    from hagate.gateway.server import Gateway

WAIT = 10.0  # the longest the gateway waits for a form or a websocket's first message
TOKEN_PATH = "/auth/token"
REGISTRATION_PATH = "/api/mobile_app/registrations"
WEBSOCKET_PATH = "/api/websocket"
CLOSE_POLICY = b"\x88\x02\x03\xf0"  # a websocket close frame, 1008 (policy violation)
WEBHOOK = extract.WEBHOOK_PREFIX


class Refused(Exception):
    """A held websocket is not let through: why, for the event."""


@dataclass(slots=True)
class Claim:
    """A request without a valid certificate, to rules that read `hagate.credential.*`: the
    credential it carried with its binding (once known), and the hold of its websocket."""

    found: Found | None = None
    hold: Hold | None = None

    def fields(self) -> dict[str, Any] | None:
        return self.found.fields() if self.found is not None else None


def extra_fields(gw: Gateway, head: RequestHead, claim: Claim | None) -> dict[str, Any] | None:
    """hagate's own fields for the rules: the credential's, and the webhook's when the rules
    read them and the request is to a webhook's path."""
    extra = claim.fields() if claim is not None else None
    webhooks = gw.webhooks
    if webhooks is None:
        return extra
    path = head.target.path
    if path.startswith(WEBHOOK) and reads_webhooks(gw.setup.ruleset.fields_used):
        fields = webhooks.fields(path, head.method)
        if fields is not None:
            extra = {**extra, **fields} if extra else fields
    return extra


def webhook_words(gw: Gateway, head: RequestHead) -> str | None:
    """For the event of a request to a webhook Home Assistant registered: whose it is."""
    webhooks = gw.webhooks
    domain = webhooks.domain_of(head.target.path) if webhooks is not None else None
    return f"a webhook of {domain} registered in Home Assistant" if domain else None


def in_head(head: RequestHead) -> Credential | None:
    """The credential a request's head carries: its bearer token, else its signed path's
    signature, else its webhook id; a websocket's is in its first message, whatever its head
    says."""
    if head.websocket:
        return None
    target = head.target
    return _bearer(head) or extract.signed_path(target.query) or extract.webhook(target.path)


async def claim_of_head(gw: Gateway, head: RequestHead) -> Claim:
    binder = gw.binder
    assert binder is not None
    carried = in_head(head)
    return Claim(await binder.find(carried) if carried is not None else None)


async def look_further(
    gw: Gateway,
    client: Channel,
    head: RequestHead,
    conn: Conn,
    cert: CertState,
    claim: Claim,
    decision: Decision,
) -> Decision | None:
    """A request the rules block without a credential: the decision with the one its form
    carries, or a decision to hold its websocket for its first message (`claim.hold`); None
    when the form did not arrive."""
    binder = gw.binder
    assert binder is not None
    if posts_token_form(head):
        form = await read_form(client, head)
        if form is None:
            return None
        carried = extract.refresh_token_in_form(form)
        if carried is None:
            return decision
        claim.found = await binder.find(carried)
        return decide(
            gw.setup.ruleset,
            head,
            conn.ip,
            conn.port,
            conn.location,
            cert,
            extra=extra_fields(gw, head, claim),
        )
    pending = may_hold(gw, head, conn, cert)
    if pending is None:
        return decision
    claim.hold = websocket_hold(gw, head, conn, cert, claim)
    return pending


def note_use(gw: Gateway, claim: Claim, conn: Conn) -> None:
    """A bound credential let a request in: when and from where, on its binding."""
    found = claim.found
    if gw.binder is not None and found is not None and found.binding is not None:
        loc = conn.location
        gw.binder.used(found, conn.client_ip, loc.asn or None, loc.country or None)


def bind_verified(gw: Gateway, client: Channel, head: RequestHead, cert: CertState) -> Taps:
    """A verified request that may carry credentials: bind those of its head (and of its
    `/auth/token` form when it is here), and what binds those of its answer or first
    message."""
    bind_head(gw, head, cert)
    path = head.target.path
    if head.method == "POST" and path == TOKEN_PATH:
        bind_form(gw, client, head, cert)
        return Taps(answer=answer_tap(gw, cert, extract.tokens_in_answer))
    if head.method == "POST" and path == REGISTRATION_PATH:
        return Taps(answer=answer_tap(gw, cert, registration_answer))
    if head.websocket and path == WEBSOCKET_PATH:
        return Taps(first=first_message_tap(gw, cert))
    return NO_TAPS


def bind_head(gw: Gateway, head: RequestHead, cert: CertState) -> None:
    """A verified request: bind what its head carries."""
    target = head.target
    if head.authorization is None and not target.query and not target.path.startswith(WEBHOOK):
        return
    binding = _binding_to(gw, cert)
    if binding is None:
        return
    carried = (_bearer(head), extract.signed_path(target.query), extract.webhook(target.path))
    found = [c for c in carried if c is not None]
    if found:
        binding(found)


def _binding_to(gw: Gateway, cert: CertState) -> Callable[[list[Credential]], None] | None:
    """What binds credentials to a verified request's certificate (None: nothing can)."""
    binder = gw.binder
    sha256, name = cert.sha256, cert.name
    if binder is None or sha256 is None or name is None:
        return None

    def bind(credentials: list[Credential]) -> None:
        binder.seen_with(credentials, sha256, name)

    return bind


def _bearer(head: RequestHead) -> Credential | None:
    authorization = head.authorization
    return extract.access_token(authorization) if authorization is not None else None


def posts_token_form(head: RequestHead) -> bool:
    """A `POST /auth/token` whose form is small enough to read before deciding."""
    return (
        head.method == "POST"
        and head.target.path == TOKEN_PATH
        and not head.chunked
        and 0 < (head.content_length or 0) <= extract.MAX_FORM
    )


async def read_form(client: Channel, head: RequestHead) -> bytes | None:
    """The form body, once it is all here (it stays in the channel, to be forwarded); None
    if it does not arrive within WAIT."""
    n = head.content_length or 0
    try:
        if not await client.wait_buffered(n, client.deadline(WAIT)):
            return None
    except TimeoutError:
        return None
    return bytes(client.buffer[:n])


def bind_form(gw: Gateway, client: Channel, head: RequestHead, cert: CertState) -> None:
    """A verified `/auth/token`: bind its form's refresh token if the form is already here."""
    binding = _binding_to(gw, cert)
    n = head.content_length or 0
    if binding is None or len(client.buffer) < n:
        return
    credential = extract.refresh_token_in_form(bytes(client.buffer[:n]))
    if credential is not None:
        binding([credential])


def answer_tap(
    gw: Gateway, cert: CertState, read: Callable[[bytes], list[Credential]]
) -> Callable[[bytes], None] | None:
    """What binds the credentials `read` finds in Home Assistant's answer to a verified
    request (the tokens of `/auth/token`, the webhook id of a mobile_app registration)."""
    binding = _binding_to(gw, cert)
    if binding is None:
        return None

    def tap(body: bytes) -> None:
        found = read(body)
        if found:
            binding(found)

    return tap


def registration_answer(body: bytes) -> list[Credential]:
    hook = extract.webhook_in_registration(body)
    return [hook] if hook is not None else []


def first_message_tap(gw: Gateway, cert: CertState) -> Callable[[bytes], None] | None:
    """What binds the token of a verified websocket's first message (when its first read
    holds all of it; the connection never waits for it)."""
    binding = _binding_to(gw, cert)
    if binding is None:
        return None

    def tap(data: bytes) -> None:
        try:
            message = first_message(data, extract.MAX_JSON)
        except FrameError:
            return
        credential = extract.websocket_auth(message.payload) if message else None
        if credential is not None:
            binding([credential])

    return tap


def may_hold(gw: Gateway, head: RequestHead, conn: Conn, cert: CertState) -> Decision | None:
    """Whether a websocket without a certificate may wait for its first message: the rules'
    decision for a token bound to some valid certificate, if one would let it in (asked
    without counting it for rate limits)."""
    binder = gw.binder
    if binder is None or not head.websocket or head.target.path != WEBSOCKET_PATH:
        return None
    ruleset = gw.setup.ruleset
    for fields in candidate_fields(extract.WEBSOCKET, binder.valid_names()):
        decision = decide(
            ruleset, head, conn.ip, conn.port, conn.location, cert, extra=fields, count=False
        )
        if not decision.blocked:
            return decision
    return None


# A held websocket's wait: the certificate whose revocation cuts it, words for its event, and
# the certificate's name.
Hold = Callable[["Channel", ResponseHead], Awaitable[tuple[str, str, str]]]


@dataclass(frozen=True, slots=True)
class Taps:
    """What the forward of one request calls on the way: `hold` (a websocket without a
    certificate, before any of its bytes go upstream), `first` (a verified websocket's first
    read), `answer` (the body of Home Assistant's answer, when small)."""

    hold: Hold | None = None
    first: Callable[[bytes], None] | None = None
    answer: Callable[[bytes], None] | None = None


NO_TAPS = Taps()


def websocket_hold(
    gw: Gateway, head: RequestHead, conn: Conn, cert: CertState, claim: Claim
) -> Hold:
    """The wait for a held websocket's first message: returns the certificate whose
    revocation then cuts it, or raises Refused."""

    async def hold(client: Channel, rhead: ResponseHead) -> tuple[str, str, str]:
        binder = gw.binder
        assert binder is not None
        extensions = (rhead.get("sec-websocket-extensions") or "").lower()
        message = await _first(client, "permessage-deflate" in extensions)
        credential = extract.websocket_auth(message.payload)
        if credential is None:
            raise Refused("the websocket's first message is not an auth message with a token")
        try:
            found = claim.found = await binder.find(credential)
        except (sqlite3.Error, OSError) as e:
            raise Refused(f"the bindings could not be read ({e}): the websocket was closed") from e
        if found.binding is None:
            raise Refused(f"websocket closed before Home Assistant: {found.words()}")
        decision = decide(
            gw.setup.ruleset, head, conn.ip, conn.port, conn.location, cert, extra=found.fields()
        )
        if decision.blocked:
            rule = decision.rule
            which = (rule.description or f"#{rule.number}") if rule else "the rules"
            raise Refused(f"websocket closed before Home Assistant: {which} blocked it")
        return found.binding.cert_sha256, found.words(), found.cert_name

    return hold


async def _first(client: Channel, deflate: bool) -> FirstMessage:
    deadline = client.deadline(WAIT)
    while True:
        try:
            message = first_message(client.buffer, extract.MAX_JSON, deflate)
        except FrameError as e:
            raise Refused(str(e)) from None
        if message is not None:
            return message
        if client.eof:
            raise Refused("the client closed the websocket before its first message")
        if len(client.buffer) > extract.MAX_JSON + 14:
            raise Refused("the websocket's first message is too long")
        try:
            await client.wait_more(deadline)
        except TimeoutError:
            raise Refused(f"no first message on the websocket within {WAIT:g} s") from None
