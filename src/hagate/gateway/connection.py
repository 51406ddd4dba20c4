"""One client connection: admitted or refused, TLS, then its request heads one by one.

Rules of this module:
  0. On the gateway's own listener, a connection from a trusted front (gateway.proxy_protocol)
     names its client in a PROXY protocol header first (hagate.front); from then on that
     client is the connection's address for the caps, rules, events and X-Forwarded-For.
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
from hagate.front.accept import Client, FrontRefused, client_from_front, sent_proxy_header, trusts
from hagate.gateway.channel import Channel, LimitOverrun
from hagate.gateway.identity import NO_CERT, client_certificate
from hagate.gateway.record import Exchange, new_request_id
from hagate.gateway.request import Conn, refuse, serve_request
from hagate.gateway.tls import SNI_ATTR, handshake_reason

if TYPE_CHECKING:
    from hagate.gateway.server import Gateway


async def serve_connection(
    gw: Gateway, sock: socket.socket, peer: tuple[str, int], *, own_listener: bool = False
) -> None:
    """Serve one accepted TCP connection, within the caps on open connections. On the
    gateway's own listener (`own_listener`) a connection from a trusted front first names
    its client in a PROXY protocol header; tunnel streams come with theirs."""
    settings = gw.setup.config.gateway
    if settings.max_connections and gw.open_total >= settings.max_connections:
        _refused(gw, sock, peer[0], f"too many open connections ({settings.max_connections})")
        return
    gw.open_total += 1
    try:
        server_port = None
        if own_listener and settings.proxy_trusted:
            try:
                client = await _through_front(gw, sock, peer)
            except FrontRefused as e:
                _refused(gw, sock, peer[0], str(e))
                return
            if client is not None:
                peer, server_port = (client.ip, client.port), client.server_port
        await _admitted(gw, sock, peer, server_port)
    finally:
        gw.open_total -= 1
        if gw.on_close is not None:
            gw.on_close(gw.open_total)


async def _through_front(gw: Gateway, sock: socket.socket, peer: tuple[str, int]) -> Client | None:
    """The client a trusted front names (None: not from a front). A PROXY header from an
    address that is not a trusted front is refused later, with the TLS that it is not."""
    if not trusts(gw.setup.config.gateway.proxy_trusted, peer[0]):
        return None
    sock.setblocking(False)
    return await client_from_front(sock, peer, gw.setup.config.gateway.header_timeout)


def _refused(gw: Gateway, sock: socket.socket, client_ip: str, reason: str) -> None:
    sock.close()
    ex = Exchange(new_request_id(), client_ip, action="refused", reason=reason)
    gw.recorder.observe(ex, None, NO_CERT)


async def _admitted(
    gw: Gateway, sock: socket.socket, peer: tuple[str, int], server_port: int | None
) -> None:
    """The cap on open connections from one client address, then TLS and the requests."""
    client_ip = peer[0]
    limit = gw.setup.config.gateway.max_connections_per_ip
    from_ip = gw.open_by_ip.get(client_ip, 0)
    if limit and from_ip >= limit:
        _refused(gw, sock, client_ip, f"too many open connections from this address ({from_ip})")
        return
    gw.open_by_ip[client_ip] = from_ip + 1
    try:
        await _tls(gw, sock, peer, server_port)
    finally:
        left = gw.open_by_ip[client_ip] - 1
        if left:
            gw.open_by_ip[client_ip] = left
        else:
            del gw.open_by_ip[client_ip]


async def _tls(
    gw: Gateway, sock: socket.socket, peer: tuple[str, int], server_port: int | None
) -> None:
    """The TLS handshake (or ACME's validation connection), then the requests."""
    loop = asyncio.get_running_loop()
    timeout = gw.setup.config.gateway.header_timeout
    sock.setblocking(False)
    try:
        async with asyncio.timeout(timeout):
            hello = await peek_client_hello(sock)
    except (TimeoutError, ClientHelloError, OSError) as e:
        if isinstance(e, ClientHelloError) and sent_proxy_header(sock):
            reason = (
                "a PROXY protocol header from an address that is not a trusted front "
                "(gateway.proxy_protocol.trusted)"
            )
        elif isinstance(e, ClientHelloError):
            reason = "not TLS (plain HTTP sent to the TLS port?)"
        else:
            reason = handshake_reason(e)
        sock.close()
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
    await handle(gw, client, peer, server_port)


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


async def handle(
    gw: Gateway, client: Channel, peer: tuple[str, int], server_port: int | None = None
) -> None:
    """Serve the requests of one client connection over an established TLS channel."""
    task = asyncio.current_task()
    if task is not None:
        gw.connections.add(task)
    try:
        await _requests(gw, client, peer, server_port)
    except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
        pass
    finally:
        if task is not None:
            gw.connections.discard(task)
        client.close()


def connection_facts(
    gw: Gateway, client: Channel, client_ip: str, server_port: int | None = None
) -> Conn:
    """The connection's facts, once: its TLS name, certificate, address and location (and
    the port the client connected to: a front's header says it, else the socket's own)."""
    sslobj = client.get_extra_info("ssl_object")
    sni: str | None = getattr(sslobj, SNI_ATTR, None) if sslobj is not None else None
    der = sslobj.getpeercert(binary_form=True) if sslobj is not None else None
    ip = ipaddress.ip_address(client_ip)
    if server_port is None:
        sockname = client.get_extra_info("sockname")
        server_port = sockname[1] if sockname else 443
    return Conn(
        client_ip,
        ip,
        sni,
        client_certificate(der, gw.ca_cert) if der else None,
        gw.setup.geoip.lookup(ip),
        server_port,
    )


async def _requests(
    gw: Gateway, client: Channel, peer: tuple[str, int], server_port: int | None
) -> None:
    conn = connection_facts(gw, client, peer[0], server_port)
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
