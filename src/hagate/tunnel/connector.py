"""The connector: at home, beside the gateway, dialing out to every relay it is given.

Each tunnel stream is handed to the same gateway code as `hagate serve`, through a socket
pair and with the client's true address, so every rule, event and invariant holds unchanged.
Connections to relays are kept alive with heartbeats (a dead relay is noticed within
`DEAD_AFTER` seconds) and re-established with jittered exponential backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import random
import re
import socket
import ssl
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hagate.errors import HagateError
from hagate.tunnel.frames import PROTOCOL_VERSION, FrameDecoder, FrameType, encode
from hagate.tunnel.mux import Mux, Stream, keepalive, splice
from hagate.tunnel.streams import open_tls
from hagate.tunnel.token import ConnectorToken, TokenError, read_claim
from hagate.watch.status import Links

if TYPE_CHECKING:
    from hagate.watch.metrics import Metrics

# Where the connector hands each tunnel stream: the gateway's accept, with the client's address.
Accept = Callable[[socket.socket, tuple[str, int]], Coroutine[Any, Any, None]]

# A heartbeat every 15 s finds a relay that hangs within 45 s; a dead network or host is
# found sooner, by TCP itself (keepalive probes and a user timeout, in the kernel, at no CPU
# cost). A relay answers every PING: 5,000 homes at one every 5 s took a relay 10% of a core.
HEARTBEAT = 15.0
DEAD_AFTER = 45.0
BACKOFF_MIN, BACKOFF_MAX = 0.2, 30.0
EXPIRY_WARNING = 30 * 86400.0  # warn this long before the token expires, once a day


def token_claim(token: str, now: float | None = None) -> ConnectorToken:
    """The token's claim, or a plain error when it cannot serve: malformed, or expired (relays
    would refuse it, and cut a connection using it when it expires)."""
    try:
        claim = read_claim(token)
    except TokenError as e:
        raise HagateError(f"the connector token is not usable: {e}") from None
    if (now if now is not None else time.time()) >= claim.expires:
        raise HagateError(expired_message(claim))
    return claim


def expired_message(claim: ConnectorToken) -> str:
    return (
        f"the connector token for {claim.hostname} expired on {_day(claim.expires)}; "
        f"make a new one on the relay: hagate relay token --hostname {claim.hostname}"
    )


def expiry_warning(claim: ConnectorToken, now: float) -> str | None:
    """What to say when the token expires within EXPIRY_WARNING, else None."""
    left = claim.expires - now
    if left >= EXPIRY_WARNING:
        return None
    return (
        f"hagate connect: the connector token for {claim.hostname} expires on "
        f"{_day(claim.expires)} (in {max(0, int(left // 86400))} days); relays will then drop "
        f"this connector. Make a new one on the relay (hagate relay token --hostname "
        f"{claim.hostname}) and restart hagate connect with it."
    )


def pinned_fingerprint(text: str) -> str:
    """A --relay-fingerprint as 64 lower-case hex digits (colons and case as the user likes)."""
    fingerprint = text.strip().lower().replace(":", "")
    if not re.fullmatch(r"[0-9a-f]{64}", fingerprint):
        raise HagateError(
            f"bad --relay-fingerprint {text!r}: expected the SHA-256 that `hagate relay init` "
            "printed (64 hex digits)"
        )
    return fingerprint


def _day(unix: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(unix))


class PinMismatch(HagateError):
    """The relay's certificate is not the one pinned with --relay-fingerprint."""


@dataclass(frozen=True)
class RelayAddress:
    name: str  # the relay's hostname: the TLS name (SNI) of the control connection
    port: int
    address: str  # where to connect; the name itself unless given as NAME:PORT@ADDRESS

    @classmethod
    def parse(cls, text: str) -> RelayAddress:
        spec, _, address = text.partition("@")
        name, sep, port = spec.rpartition(":")
        if not sep or not name or not port.isdigit() or not 0 < int(port) < 65536:
            raise HagateError(f"bad --relay {text!r}: expected HOST:PORT (or HOST:PORT@ADDRESS)")
        return cls(name.lower(), int(port), address or name)

    def __str__(self) -> str:
        return f"{self.name}:{self.port}"


class Connector:
    """Keeps a connection to every relay and hands each stream to `accept`; says which relays
    are up in `links` and counts in `metrics`."""

    def __init__(
        self,
        accept: Accept,
        relays: list[RelayAddress],
        token: str,
        fingerprint: str | None = None,
        relay_ca: str | None = None,
        links: Links | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.accept = accept
        self.links = links if links is not None else Links()
        self.metrics = metrics
        self.relay_ca = relay_ca
        self.relays = relays
        self.token = token.strip()
        self.fingerprint = pinned_fingerprint(fingerprint) if fingerprint else None
        self.connected: dict[str, bool] = {str(r): False for r in relays}
        self.stopping = False
        self.source: tuple[str, int] | None = None  # the local address to dial out from
        self._tls: ssl.SSLContext | None = None
        for r in relays:
            self.links.set(str(r), False)

    def _context(self) -> ssl.SSLContext:
        """One TLS context for every session (loading the system's CA store each time a
        relay comes back would cost a reconnect storm's worth of CPU)."""
        if self._tls is None:
            self._tls = self._new_context()
        return self._tls

    def _new_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.relay_ca)
        if self.fingerprint:
            # Pinned: the relay's own certificate is trusted by its SHA-256, not by a CA.
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    async def run(self) -> None:
        await asyncio.gather(self._warn_expiry(), *(self._keep(relay) for relay in self.relays))

    async def _warn_expiry(self) -> None:
        """Say on stderr, once a day in its last EXPIRY_WARNING, that the token will expire."""
        claim = read_claim(self.token)  # run_connect has checked it
        while not self.stopping:
            now = time.time()
            if now >= claim.expires:
                print(f"hagate connect: {expired_message(claim)}", file=sys.stderr, flush=True)
                return
            warning = expiry_warning(claim, now)
            if warning:
                print(warning, file=sys.stderr, flush=True)
            until = 86400.0 if warning else claim.expires - EXPIRY_WARNING - now
            await asyncio.sleep(max(1.0, min(until, 86400.0, claim.expires - now)))

    async def _keep(self, relay: RelayAddress) -> None:
        delay = BACKOFF_MIN
        while not self.stopping:
            started = time.monotonic()
            try:
                await self._session(relay)
            except ssl.SSLCertVerificationError as e:
                print(
                    f"hagate connect: relay {relay}: certificate verify failed "
                    f"({e.verify_message}); pass --relay-fingerprint (printed by `hagate relay "
                    "init`), or --relay-ca for a relay whose certificate a private CA signed",
                    file=sys.stderr,
                    flush=True,
                )
            except (
                OSError,
                ssl.SSLError,
                ConnectionError,
                TimeoutError,
                ValueError,
                PinMismatch,
            ) as e:
                print(f"hagate connect: relay {relay}: {e}", file=sys.stderr, flush=True)
            except HagateError as e:
                print(f"hagate connect: relay {relay} refused us: {e}", file=sys.stderr, flush=True)
            self.connected[str(relay)] = False
            self.links.set(str(relay), False)
            if self.stopping:
                return
            if self.metrics is not None:
                self.metrics.tunnel_reconnects.inc()
            if time.monotonic() - started > 60:
                delay = BACKOFF_MIN  # it had been working: start over
            await asyncio.sleep(delay * random.uniform(0.5, 1.5))
            delay = min(delay * 2, BACKOFF_MAX)

    async def _session(self, relay: RelayAddress) -> None:
        reader, writer = await asyncio.wait_for(
            open_tls(
                relay.address,
                relay.port,
                self._context(),
                relay.name,
                limit=1 << 20,
                local_addr=self.source,
            ),
            10,
        )
        keepalive(writer.get_extra_info("socket"))
        try:
            if self.fingerprint:
                der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
                seen = hashlib.sha256(der or b"").hexdigest()
                if seen != self.fingerprint:
                    raise PinMismatch(
                        f"its certificate's SHA-256 is {seen}, not the pinned one: check "
                        "--relay-fingerprint (`hagate relay init` printed it)"
                    )
            writer.write(
                encode(
                    FrameType.HELLO,
                    0,
                    json.dumps({"version": PROTOCOL_VERSION, "token": self.token}).encode(),
                )
            )
            await writer.drain()
            await asyncio.wait_for(self._welcome(reader), 10)
        except BaseException:
            writer.close()
            raise
        mux = Mux(reader, writer, on_open=self._on_open)
        self.connected[str(relay)] = True
        self.links.set(str(relay), True)
        print(f"hagate connect: connected to relay {relay}", file=sys.stderr, flush=True)
        heartbeat = asyncio.create_task(self._heartbeat(mux))
        metrics = self.metrics
        if metrics is not None:
            metrics.tunnel_connections.inc()
        try:
            await mux.run()
        finally:
            heartbeat.cancel()
            mux.close()
            if metrics is not None:
                metrics.tunnel_connections.dec()

    async def _welcome(self, reader: asyncio.StreamReader) -> None:
        decoder = FrameDecoder()
        while True:
            data = await reader.read(65536)
            if not data:
                raise ConnectionError("the relay closed the connection")
            for frame in decoder.feed(data):
                if frame.type is FrameType.WELCOME:
                    return
                if frame.type is FrameType.REFUSED:
                    raise HagateError(frame.payload.decode(errors="replace"))
                raise ConnectionError(f"unexpected {frame.type.name} before WELCOME")

    async def _heartbeat(self, mux: Mux) -> None:
        while not mux.closed:
            await asyncio.sleep(HEARTBEAT)
            if time.monotonic() - mux.last_received > DEAD_AFTER:
                print("hagate connect: relay silent, reconnecting", file=sys.stderr, flush=True)
                mux.close()
                return
            mux.send(FrameType.PING, 0, b"\0" * 8)

    async def _on_open(self, stream: Stream) -> None:
        client = str(stream.meta.get("client", "0.0.0.0"))
        port = int(stream.meta.get("port", 0))
        if self.metrics is not None:
            self.metrics.tunnel_streams.inc()
        ours, theirs = socket.socketpair()
        ours.setblocking(False)
        theirs.setblocking(False)
        accept = asyncio.create_task(self.accept(theirs, (client, port)))
        reader, writer = await asyncio.open_connection(sock=ours, limit=65536)
        try:
            await splice(stream, reader, writer)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(accept, 5)
