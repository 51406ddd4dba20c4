"""Answering the CA's tls-alpn-01 connection (RFC 8737 section 3).

A ClientHello offering `acme-tls/1` for a name with a published validation certificate gets a
handshake with that certificate and the `acme-tls/1` protocol, then the connection closes:
such connections carry no application data. Without a pending challenge the connection is
closed without a handshake, as the RFC asks (never the normal certificate).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl

from hagate.acme.store import AcmeFiles

ALPN = "acme-tls/1"  # RFC 8737's protocol name


def offers_acme(alpn: tuple[str, ...]) -> bool:
    return ALPN in alpn


def challenge_context(files: AcmeFiles, name: str) -> ssl.SSLContext | None:
    """A TLS context presenting the validation certificate for `name`, if one is pending."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(files.challenge_path(name))
    except (FileNotFoundError, ssl.SSLError, ValueError):
        return None
    ctx.set_alpn_protocols([ALPN])
    return ctx


async def answer(files: AcmeFiles, name: str, sock: socket.socket, timeout: float) -> str:
    """Serve the validation handshake on `sock` (closed afterwards); what happened, in words."""
    ctx = challenge_context(files, name)
    if ctx is None:
        sock.close()
        return f"tls-alpn-01 connection for {name}, but no challenge is pending: closed"
    loop = asyncio.get_running_loop()
    try:
        transport, _ = await loop.connect_accepted_socket(
            asyncio.Protocol, sock, ssl=ctx, ssl_handshake_timeout=timeout
        )
    except (OSError, ssl.SSLError, TimeoutError, ConnectionError) as e:
        sock.close()
        return f"tls-alpn-01 handshake for {name} failed: {e}"
    with contextlib.suppress(Exception):
        transport.close()
    return f"tls-alpn-01 validation certificate for {name} served"
