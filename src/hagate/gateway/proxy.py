"""The forward of one allowed request to Home Assistant, and its response back.

Rules of this module:
  1. What the rules matched is what is forwarded: the normalised target, the client's Host,
     and X-Forwarded-* built here (whatever the client sent is replaced).
  2. Bodies stream in both directions in pieces of at most `CHUNK` bytes, with backpressure
     (drain) on every write, framed by hagate.http1.bodies: memory per connection is bounded,
     and a framing error is blamed on the side that sent it.
  3. The client's body may pause at most `body_timeout` between reads. Home Assistant has
     `response_timeout` for its response head, counted from the end of the request body.
  4. Failures are raised to request.py, which answers or cuts: UpstreamError (nothing was
     sent to the client yet), UpstreamBodyError and ClientBodyError (ex.answered says whether
     a response head went out), ConnectionError (the client is gone).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from hagate.credentials.extract import MAX_JSON
from hagate.gateway import pages
from hagate.gateway.channel import Channel, LimitOverrun
from hagate.gateway.credentials import CLOSE_POLICY, NO_TAPS, Hold, Refused, Taps
from hagate.gateway.pages import reason_phrase
from hagate.gateway.record import Exchange, write_page
from hagate.gateway.upstream import RESPONSE_HEAD_LIMIT, UpstreamError
from hagate.http1.bodies import (
    LAST_CHUNK,
    BodyReader,
    ClientBodyError,
    encode_chunk,
    request_body_reader,
    response_body_reader,
)
from hagate.http1.heads import (
    HeadError,
    RequestHead,
    ResponseHead,
    forwarded_head,
    parse_response_head,
    response_head_bytes,
)
from hagate.http1.state import ConnState, after_exchange

if TYPE_CHECKING:
    from hagate.gateway.identity import CertState
    from hagate.gateway.server import Gateway

CHUNK = 65536
_NO_BODY_STATUS = {204, 304}


async def forward(
    gw: Gateway,
    head: RequestHead,
    client: Channel,
    ex: Exchange,
    cert: CertState | None = None,
    taps: Taps = NO_TAPS,
) -> bool:
    """Forward `head` (and its body) to Home Assistant and its response to the client;
    whether the client connection carries another request. `cert`: the client's certificate,
    whose revocation cuts an upgraded connection opened with it; `taps`: what sees the
    credentials on the way (gateway/credentials.py)."""
    settings = gw.setup.config.gateway
    upstream_head = forwarded_head(head, ex.client_ip, gw.setup.config.hostname)
    attempts = 1 if head.has_body else 2  # a stale pooled connection gets one retry
    pump: asyncio.Task[None] | None = None
    pool = gw.pool  # a reload may put a new one in its place meanwhile
    for attempt in range(attempts):
        pooled = pool.pooled() if attempt == 0 else None
        reused = pooled is not None
        up = pooled if pooled is not None else await pool.connect()
        sent_at = time.monotonic()
        try:
            up.write(upstream_head)
            if head.has_body:
                pump = asyncio.create_task(_pump_body(gw, head, client, up, ex))
                rhead_bytes, rhead = await _response_head_after_body(
                    up, client, pump, settings.response_timeout
                )
            else:
                rhead_bytes, rhead = await _response_head(
                    up, client, up.deadline(settings.response_timeout)
                )
        except (ConnectionError, asyncio.IncompleteReadError) as e:
            up.close()
            failed = _body_error(pump)
            if failed is not None:
                raise failed from None  # the client's body broke off, broke a limit or stalled
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
        except BaseException:
            up.close()
            raise
        break
    metrics = gw.recorder.metrics
    if metrics is not None:
        metrics.upstream_latency.observe(time.monotonic() - sent_at)
    ex.status = rhead.status
    if rhead.status == 101:
        if not head.websocket:
            up.close()
            raise UpstreamError(502, "Home Assistant switched protocols unasked")
        client.write(rhead_bytes)
        ex.answered = True
        await client.drain()
        sha256 = cert.sha256 if cert is not None and cert.verified else None
        await _pipe(gw, client, up, ex, sha256, taps, rhead)
        return False
    try:
        upstream_done, keep_client = await _respond(gw, head, rhead, up, client, ex, taps.answer)
    except BaseException:
        up.close()
        if pump is not None:
            pump.cancel()
        raise
    body_done = True
    if pump is not None:
        if not pump.done():
            # The response finished before the request body was read: close both ends.
            pump.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await pump
        body_done = not pump.cancelled() and pump.exception() is None
    # An upgrade that was not answered 101 leaves Home Assistant reading whatever follows
    # as a new request (aiohttp does): that connection carries nothing more.
    upstream = after_exchange(
        request_keep_alive=True,
        response_keep_alive=rhead.keep_alive,
        request_body_done=body_done,
        response_body_done=upstream_done,
        upgraded=head.websocket,
    )
    if upstream is ConnState.IDLE:
        pool.release(up)
    else:
        up.close()
    return (
        after_exchange(
            request_keep_alive=head.keep_alive,
            response_keep_alive=keep_client,
            request_body_done=body_done,
            closing=gw.closing,
        )
        is ConnState.IDLE
    )


async def _response_head(
    up: Channel, client: Channel, deadline: float | None
) -> tuple[bytes, ResponseHead]:
    """Home Assistant's final response head; 1xx heads go straight to the client."""
    while True:
        raw = await up.readuntil(b"\r\n\r\n", RESPONSE_HEAD_LIMIT, deadline)
        rhead = parse_response_head(raw)
        if 100 <= rhead.status < 200 and rhead.status != 101:
            client.write(raw)  # 100 Continue and friends
            await client.drain()
            continue
        return raw, rhead


async def _response_head_after_body(
    up: Channel, client: Channel, pump: asyncio.Task[None], timeout: float
) -> tuple[bytes, ResponseHead]:
    """The response head of a request with a body: Home Assistant may answer at any time
    (early, as to a refused upload), but its `timeout` counts only once the body is sent."""
    reading = asyncio.create_task(_response_head(up, client, None))
    try:
        await asyncio.wait((reading, pump), return_when=asyncio.FIRST_COMPLETED)
        if not reading.done():
            failed = pump.exception()
            if failed is not None:
                raise failed
            async with asyncio.timeout(timeout):
                await asyncio.wait((reading,))
        return reading.result()
    finally:
        if not reading.done():
            reading.cancel()
            with contextlib.suppress(BaseException):
                await reading


async def _pump_body(
    gw: Gateway, head: RequestHead, client: Channel, up: Channel, ex: Exchange
) -> None:
    """The client's request body to Home Assistant, as it arrives."""
    settings = gw.setup.config.gateway
    reader = request_body_reader(head.content_length, head.chunked, settings.max_body_bytes)
    timeout = settings.body_timeout
    chunked = head.chunked
    try:
        while True:
            try:
                piece = await client.read_body(reader, CHUNK, client.deadline(timeout))
            except TimeoutError:
                raise ClientBodyError(
                    408, f"the request body stalled (nothing for {timeout:g} s)"
                ) from None
            if not piece:
                break
            ex.bytes_in += len(piece)
            up.write(encode_chunk(piece) if chunked else piece)
            await up.drain()
        if chunked:
            up.write(LAST_CHUNK)
            await up.drain()
    except ClientBodyError:
        up.close()  # Home Assistant sees the request cut short and answers nothing
        raise


async def _respond(
    gw: Gateway,
    head: RequestHead,
    rhead: ResponseHead,
    up: Channel,
    client: Channel,
    ex: Exchange,
    tap: Callable[[bytes], None] | None = None,
) -> tuple[bool, bool]:
    """Send the response; returns (upstream body read to its end, client keep-alive).
    `tap` sees a body of at most MAX_JSON bytes that arrived whole in its first piece."""
    no_body = head.method == "HEAD" or rhead.status in _NO_BODY_STATUS
    keep_client = head.keep_alive and not gw.closing
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
    length = rhead.content_length
    reader: BodyReader | None = None  # none: the response is whole in `out`
    if no_body:
        pass
    elif length:
        # The head waits for the first piece of the body, so both leave in one write and one
        # TLS record (servers sending a file write them apart). Nothing has reached the client
        # yet: an upstream that stops here still gets a 502 or 504. A small body is usually
        # here whole with its head: then it needs no reader.
        data = up.take_exactly(length) if length <= CHUNK else None
        if data is None:
            reader = response_body_reader(length, False)
            timeout = gw.setup.config.gateway.response_timeout
            try:
                data = up.take_body(reader, CHUNK)
                if data is None:
                    data = await up.read_body(reader, CHUNK, up.deadline(timeout))
            except TimeoutError:
                raise UpstreamError(504, "Home Assistant did not send the body in time") from None
        if rhead.status == 400 and data == pages.HA_UNTRUSTED_PROXY:
            return _untrusted(head, up, client, ex, keep_client), keep_client
        if tap is not None and len(data) == length <= MAX_JSON:
            tap(bytes(data))
        ex.bytes_out += len(data)
        out += data
    else:
        reader = response_body_reader(length, rhead.chunked)
    client.write(out)
    ex.answered = True
    if reader is not None:
        write = client.write
        while True:
            piece = up.take_body(reader, CHUNK)  # no coroutine when the bytes are here
            if piece is None:
                if not client.drained:
                    await client.drain()
                piece = await up.read_body(reader, CHUNK)
            if not piece:
                break
            ex.bytes_out += len(piece)
            write(encode_chunk(piece) if rechunk else piece)
        if rechunk:
            write(LAST_CHUNK)
    if not client.drained:
        await client.drain()
    return not close_delimited, keep_client


def _untrusted(head: RequestHead, up: Channel, client: Channel, ex: Exchange, keep: bool) -> bool:
    """Home Assistant's answer to a proxy it does not trust, as a page that says the fix."""
    sockname = up.transport.get_extra_info("sockname") if up.transport else None
    gateway_ip = sockname[0] if sockname else "this host's address"
    ex.reason = "Home Assistant does not trust the gateway as a proxy (http: trusted_proxies)"
    page = pages.untrusted_proxy(
        gateway_ip, ex.request_id, "text/html" in head.accept, keep, head.method != "HEAD"
    )
    write_page(client, ex, page)
    return True  # the upstream body (those 16 bytes) was read to its end


REVOKED_CHECK_EVERY = 1.0


async def _until_revoked(gw: Gateway, sha256: str, ex: Exchange) -> None:
    """Returns once the certificate is revoked (or gone from the inventory): a websocket
    opened with it is cut then, not when it next sends a request (it never does)."""
    while True:
        await asyncio.sleep(REVOKED_CHECK_EVERY)
        record = gw.inventory.lookup(sha256)
        if record is None or record.revoked:
            ex.reason = "cut: the certificate was revoked while the connection was open"
            return


async def _pipe(
    gw: Gateway,
    client: Channel,
    up: Channel,
    ex: Exchange,
    cert_sha256: str | None,
    taps: Taps,
    rhead: ResponseHead,
) -> None:
    """After a 101: bytes both ways until either side closes (or the certificate it was
    opened with is revoked). A held websocket sends nothing upstream until `taps.hold` has
    read its first message and named the certificate its token is bound to."""

    async def copy(
        src: Channel, dst: Channel, inbound: bool, first: Callable[[bytes], None] | None = None
    ) -> None:
        try:
            while data := await src.read(CHUNK):
                if inbound:
                    ex.bytes_in += len(data)
                    if first is not None:
                        first(bytes(data))
                        first = None
                else:
                    ex.bytes_out += len(data)
                dst.write(data)
                await dst.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass

    refused: list[str] = []

    async def held(hold: Hold) -> None:
        try:
            sha256, ex.reason, name = await hold(client, rhead)
            ex.bound_to = (name, sha256)
        except Refused as e:
            refused.append(str(e))
            return
        inner = [
            asyncio.create_task(copy(client, up, True)),
            asyncio.create_task(_until_revoked(gw, sha256, ex)),
        ]
        try:
            await asyncio.wait(inner, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in inner:
                t.cancel()

    tasks = [asyncio.create_task(copy(up, client, False))]
    if taps.hold is not None:
        tasks.append(asyncio.create_task(held(taps.hold)))
    else:
        tasks.append(asyncio.create_task(copy(client, up, True, taps.first)))
    if cert_sha256 is not None:
        tasks.append(asyncio.create_task(_until_revoked(gw, cert_sha256, ex)))
    metrics = gw.metrics
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
    if refused:
        # Home Assistant's bytes have stopped (their copy is cancelled): the close goes last.
        await asyncio.wait(tasks)
        ex.action, ex.reason = "block", refused[0]
        with contextlib.suppress(Exception):
            client.write(CLOSE_POLICY)
            await asyncio.wait_for(client.drain(), 5)


def _body_error(task: asyncio.Task[None] | None) -> ClientBodyError | None:
    if task is None or not task.done() or task.cancelled():
        return None
    exc = task.exception()
    return exc if isinstance(exc, ClientBodyError) else None
