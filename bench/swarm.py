"""A swarm of homes in one process, for measuring how many a relay carries.

    python -m bench.swarm RELAY_STATE RELAY_PORT COUNT [FIRST]

Each home is hagate's own `Connector` (the tunnel code, its heartbeats and its jittered
backoff), with a token of its own for `home-<i>.test` and its own source address on loopback
(127.64.0.0/10, so the relay's per-address limits see many homes, as they would). Instead of a
gateway, a home answers every stream with one fixed HTTP response. The swarm prints `up N`
whenever the number of connected homes changes by a tenth, and `all up` once every home is
connected; it ends on SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import signal
import socket
import ssl
import sys
from pathlib import Path

from hagate.state import StateDir
from hagate.tunnel import token as tokens
from hagate.tunnel.connector import Connector, RelayAddress
from hagate.tunnel.relaystate import RelayState

REPLY = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
SOURCES = ipaddress.IPv4Network("127.64.0.0/10")


def hostname(i: int) -> str:
    return f"home-{i}.test"


def source(i: int) -> str:
    return str(SOURCES[i + 1])


class Home:
    """What the connector hands streams to: a stand-in for the gateway."""

    def __init__(self) -> None:
        self.streams = 0

    async def accept(self, sock: socket.socket, peer: tuple[str, int]) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.sock_recv(sock, 65536)  # the client's first bytes (its ClientHello)
            await loop.sock_sendall(sock, REPLY)
            self.streams += 1
        except OSError:
            pass
        finally:
            sock.close()


class SwarmConnector(Connector):
    """A connector whose sessions share one TLS context (5,000 homes in one process)."""

    shared: ssl.SSLContext | None = None

    def _context(self) -> ssl.SSLContext:
        if SwarmConnector.shared is None:
            SwarmConnector.shared = self._new_context()
        return SwarmConnector.shared


def connectors(relay_state: Path, port: int, count: int, first: int = 0) -> list[SwarmConnector]:
    rs = RelayState.load(StateDir(relay_state))
    key = rs.signing_key()
    relay = RelayAddress(rs.hostname, port, "127.0.0.1")
    out = []
    for i in range(first, first + count):
        token, _ = tokens.issue(key, hostname(i), 365)  # no expiry warnings
        c = SwarmConnector(Home().accept, [relay], token, fingerprint=rs.fingerprint())
        c.source = (source(i), 0)
        out.append(c)
    return out


def connected(swarm: list[SwarmConnector]) -> int:
    return sum(any(c.connected.values()) for c in swarm)


async def run(relay_state: Path, port: int, count: int, first: int = 0) -> None:
    swarm = connectors(relay_state, port, count, first)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    tasks = [asyncio.create_task(c.run()) for c in swarm]
    said, step = -1, max(1, count // 10)
    try:
        while not stop.is_set():
            up = connected(swarm)
            if up != said and (up == count or abs(up - said) >= step or up == 0):
                print("all up" if up == count else f"up {up}", flush=True)
                said = up
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.2)
    finally:
        for c in swarm:
            c.stopping = True
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def main(argv: list[str]) -> None:
    import resource

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    state, port, count, *rest = argv
    asyncio.run(run(Path(state), int(port), int(count), int(rest[0]) if rest else 0))


if __name__ == "__main__":
    main(sys.argv[1:])
