"""Waiting for bytes in a socket's buffer without consuming them (MSG_PEEK).

The relay and the gateway look at what a connection starts with (a PROXY protocol header, a
TLS ClientHello) before deciding who handles the bytes; the bytes stay in the socket for the
handshake or the forward that follows.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def _set_once(future: asyncio.Future[None]) -> None:
    if not future.done():  # the reader callback may fire again before the waiter runs
        future.set_result(None)


async def peek_until(
    conn: socket.socket, parse: Callable[[bytes], T | None], limit: int
) -> T | None:
    """Peek at up to `limit` bytes until `parse` makes something of them (it returns None
    while it needs more, and raises for what it refuses). None when the peer closed first."""
    loop = asyncio.get_running_loop()
    last = -1
    while True:
        try:
            data = conn.recv(limit, socket.MSG_PEEK)  # usually already there
        except BlockingIOError:
            ready: asyncio.Future[None] = loop.create_future()
            loop.add_reader(conn.fileno(), _set_once, ready)
            try:
                await ready
            finally:
                loop.remove_reader(conn.fileno())
            continue
        if not data:
            return None
        found = parse(data)
        if found is not None:
            return found
        if len(data) == last or len(data) >= limit:
            await asyncio.sleep(0.01)  # a part still buffered (so readable): wait for more
        last = len(data)
