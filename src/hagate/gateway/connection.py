"""One client connection: admitted or refused, TLS, then its request heads one by one.

Rules of this module:
  1. A connection over the caps (`max_connections` in all, `max_connections_per_ip` from one
     address) is closed before any byte is read, with an event; the others are not slowed.
  2. The handshake runs on the raw socket after a peek at the ClientHello (nothing consumed),
     so even a failed handshake is an event with the name the client asked for.
  3. Every read has a deadline: the first head within `header_timeout` of the handshake, the
     next ones within `idle_timeout` of the last response, and once a head has begun it must
     be whole within `header_timeout` (a slowloris client is cut off).
  4. Each head is handed to request.py on its own, with the connection's facts (`Conn`),
     which are worked out once per connection.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from typing import TYPE_CHECKING

from hagate.acme import answer as acme_answer
from hagate.clienthello import ClientHelloError, peek_client_hello
from hagate.gateway.channel import Channel, LimitOverrun
from hagate.gateway.identity import NO_CERT, client_certificate
from hagate.gateway.record import Exchange, new_request_id
from hagate.gateway.request import Conn, refuse, serve_request
from hagate.gateway.tls import SNI_ATTR, handshake_reason

if TYPE_CHECKING:
    from hagate.gateway.server import Gateway


async def serve_connection(gw: Gateway, sock: socket.socket, peer: tuple[str, int]) -> None:
    """Serve one accepted TCP connection, within the caps on open connections."""
    client_ip = peer[0]
    settings = gw.setup.config.gateway
    from_ip = gw.open_by_ip.get(client_ip, 0)
    over = None
    if settings.max_connections and gw.open_total >= settings.max_connections:
        over = f"too many open connections ({settings.max_connections})"
    elif settings.max_connections_per_ip and from_ip >= settings.max_connections_per_ip:
        over = f"too many open connections from this address ({from_ip})"
    if over is not None:
        sock.close()
        ex = Exchange(new_request_id(), client_ip, action="refused", reason=over)
        gw.recorder.observe(ex, None, NO_CERT)
        return
    gw.open_total += 1
    gw.open_by_ip[client_ip] = from_ip + 1
    try:
        await _tls(gw, sock, peer)
    finally:
        gw.open_total -= 1
        left = gw.open_by_ip[client_ip] - 1
        if left:
            gw.open_by_ip[client_ip] = left
        else:
            del gw.open_by_ip[client_ip]
        if gw.on_close is not None:
            gw.on_close(gw.open_total)


async def _tls(gw: Gateway, sock: socket.socket, peer: tuple[str, int]) -> None:
    """The TLS handshake (or ACME's validation connection), then the requests."""
    loop = asyncio.get_running_loop()
    timeout = gw.setup.config.gateway.header_timeout
    sock.setblocking(False)
    try:
        async with asyncio.timeout(timeout):
            hello = await peek_client_hello(sock)
    except (TimeoutError, ClientHelloError, OSError) as e:
        sock.close()
        reason = (
            "not TLS (plain HTTP sent to the TLS port?)"
            if isinstance(e, ClientHelloError)
            else handshake_reason(e)
        )
        _handshake_failed(gw, peer[0], None, reason)
        return
    if hello is None:
        sock.close()
        reason = "the client closed the connection before the TLS handshake"
        _handshake_failed(gw, peer[0], None, reason)
        return
    sni = hello.sni
    if acme_answer.offers_acme(hello.alpn):
        await _acme_challenge(gw, sock, peer, sni)
        return
    client = Channel(loop)
    try:
        await loop.connect_accepted_socket(
            lambda: client, sock, ssl=gw.contexts.current(), ssl_handshake_timeout=timeout
        )
    except Exception as e:  # every handshake failure is an event, whatever its kind
        sock.close()
        _handshake_failed(gw, peer[0], sni, handshake_reason(e))
        return
    await handle(gw, client, peer)


def _handshake_failed(gw: Gateway, client_ip: str, sni: str | None, reason: str) -> None:
    ex = Exchange(new_request_id(), client_ip, action="tls_error", reason=reason)
    gw.recorder.observe(ex, sni, NO_CERT)


async def _acme_challenge(
    gw: Gateway, sock: socket.socket, peer: tuple[str, int], sni: str | None
) -> None:
    """A CA validating this name (tls-alpn-01): the validation certificate, no HTTP."""
    ex = Exchange(new_request_id(), peer[0], action="acme_challenge")
    if gw.acme_files is None or sni != gw.setup.config.hostname:
        sock.close()
        ex.reason = f"tls-alpn-01 connection for {sni or 'no name'}: no ACME here, closed"
    else:
        ex.reason = await acme_answer.answer(
            gw.acme_files, sni, sock, gw.setup.config.gateway.header_timeout
        )
    gw.recorder.observe(ex, sni, NO_CERT)


async def handle(gw: Gateway, client: Channel, peer: tuple[str, int]) -> None:
    """Serve the requests of one client connection over an established TLS channel."""
    task = asyncio.current_task()
    if task is not None:
        gw.connections.add(task)
    try:
        await _requests(gw, client, peer)
    except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
        pass
    finally:
        if task is not None:
            gw.connections.discard(task)
        client.close()


def connection_facts(gw: Gateway, client: Channel, client_ip: str) -> Conn:
    """The connection's facts, once: its TLS name, certificate, address and location."""
    sslobj = client.get_extra_info("ssl_object")
    sni: str | None = getattr(sslobj, SNI_ATTR, None) if sslobj is not None else None
    der = sslobj.getpeercert(binary_form=True) if sslobj is not None else None
    ip = ipaddress.ip_address(client_ip)
    sockname = client.get_extra_info("sockname")
    return Conn(
        client_ip,
        ip,
        sni,
        client_certificate(der, gw.ca_cert) if der else None,
        gw.setup.geoip.lookup(ip),
        sockname[1] if sockname else 443,
    )


async def _requests(gw: Gateway, client: Channel, peer: tuple[str, int]) -> None:
    conn = connection_facts(gw, client, peer[0])
    first = True
    while not gw.closing:
        head = await _read_head(gw, client, conn, first)
        if head is None:
            return
        first = False
        gw.busy += 1
        try:
            keep = await serve_request(gw, conn, client, head)
        finally:
            gw.busy -= 1
        if not keep:
            return


async def _read_head(gw: Gateway, client: Channel, conn: Conn, first: bool) -> bytes | None:
    """The next request head, or None when the connection should end."""
    settings = gw.setup.config.gateway
    try:
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
        await refuse(gw, client, conn, Exchange(new_request_id(), conn.client_ip), 408,
                     "the request head did not arrive in time")  # fmt: skip
    except LimitOverrun:
        await refuse(gw, client, conn, Exchange(new_request_id(), conn.client_ip), 431,
                     "the request head is too large")  # fmt: skip
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    return None
