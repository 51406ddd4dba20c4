"""Listening sockets and the event loop, shared by the gateway, the relay and the connector."""

from __future__ import annotations

import asyncio
import gc
import socket
from collections.abc import Callable
from typing import Any

from hagate.errors import HagateError


def bind(host: str, port: int, reuse_port: bool = False) -> socket.socket:
    """A non-blocking listening TCP socket, or a one-line error naming the address."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise HagateError(f"cannot listen on {host}:{port}: {e.strerror}") from None
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def run_event_loop(coro_factory: Callable[[], Any]) -> None:
    """Run the coroutine on uvloop (falling back to asyncio's own loop without it).

    What is loaded by now (config, rules, certificates, libraries) lives as long as the
    process: it is moved out of the garbage collector's sight, so collections triggered by
    per-request allocations stay short.
    """
    gc.collect()
    gc.freeze()
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency; stay usable without it
        asyncio.run(coro_factory())
        return
    uvloop.run(coro_factory())
