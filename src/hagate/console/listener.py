"""The admin listener: `/metrics` for Prometheus, the console's pages under `/console/` and
its API under `/api/v1/`; nothing else.

Rules:
  1. Off unless `admin:` is configured; it binds loopback unless told otherwise.
  2. The Host header must be an address or `localhost` (or the configured listen host): a web
     page that rebinds its own DNS name to 127.0.0.1 can neither read the metrics nor reach
     the console through a browser.
  3. `/metrics` is served for exactly that target, GET or HEAD, without sign-in (as a scraper
     expects); everything under `/console/` and `/api/v1/` needs a session or a token (web).
  4. Request heads are bounded in size and time: a connection idle or trickling its head is
     closed after HEAD_TIMEOUT.
  5. It runs in a thread of the supervising process, with its own event loop.
  6. The same application also listens on a Unix socket in the state directory (0600), for
     the gateway's workers: they pass it the requests of admin certificates to
     `/.hagate/console/`, naming the certificate in a header only they can send there.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from pathlib import Path
from typing import Any

from aiohttp import web

from hagate.config import IngressSettings, parse_listen
from hagate.console.access import console_socket_path
from hagate.errors import HagateError
from hagate.state import StateDir
from hagate.watch.admin import host_allowed, metrics_registry

HEAD_TIMEOUT = 10.0
MAX_HEADERS = 100
MAX_LINE = 8190


def bind_console_socket(state: StateDir) -> socket.socket:
    """The console's Unix socket for the gateway's workers: only this user may connect."""
    path = console_socket_path(state)
    path.parent.mkdir(mode=0o700, exist_ok=True)
    path.unlink(missing_ok=True)  # left by a process that was killed
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        sock.bind(str(path))
    finally:
        os.umask(old)
    sock.listen(64)
    return sock


def admin_app(
    state: StateDir,
    metrics_dir: Path,
    listen_host: str,
    ingress: IngressSettings | None = None,
    ingress_port: int | None = None,
) -> web.Application:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    from hagate.console.web import make_app, on_port, over_socket

    registry = metrics_registry(state, metrics_dir)

    @web.middleware
    async def named_host(request: web.Request, handler: Any) -> web.StreamResponse:
        if over_socket(request):
            # The gateway checked the name; it passes on the console's pages, nothing else.
            if not request.path.startswith("/console/"):
                raise web.HTTPNotFound(text="not found\n")
        elif ingress_port is not None and on_port(request, ingress_port):
            pass  # Home Assistant's name: the console checks the proxy's address instead
        elif not host_allowed(request.headers.get("Host"), listen_host):
            refused = web.Response(status=421, text="misdirected request\n")
            refused.force_close()
            return refused
        response: web.StreamResponse = await handler(request)
        return response

    async def metrics(request: web.Request) -> web.StreamResponse:
        # The target as sent: the router matches decoded paths (/%6detrics is /metrics).
        if request.raw_path.split("?", 1)[0] != "/metrics":
            raise web.HTTPNotFound(text="not found\n")
        data = await asyncio.get_running_loop().run_in_executor(None, generate_latest, registry)
        return web.Response(body=data, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = make_app(state, ingress=ingress, ingress_port=ingress_port)
    app.middlewares.insert(0, named_host)
    app.router.add_get("/metrics", metrics)
    return app


def _bind_tcp(listen: str, what: str) -> socket.socket:
    host, port = parse_listen(listen)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError as e:
        sock.close()
        raise HagateError(f"{what}: cannot listen on {host}:{port}: {e.strerror}") from None
    return sock


class AdminServer:
    def __init__(
        self,
        listen: str,
        state: StateDir,
        metrics_dir: Path,
        ingress: IngressSettings | None = None,
    ) -> None:
        self.ingress = ingress
        self.ingress_sock = (
            _bind_tcp(ingress.listen, "admin.ingress") if ingress is not None else None
        )
        self.ingress_port = self.ingress_sock.getsockname()[1] if self.ingress_sock else None
        self.host, self.port = parse_listen(listen)
        self.state = state
        self.metrics_dir = metrics_dir
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
            sock.listen(128)
        except OSError as e:
            sock.close()
            raise HagateError(
                f"admin listener: cannot listen on {self.host}:{self.port}: {e.strerror}"
            ) from None
        self.sock = sock
        self.port = sock.getsockname()[1]
        self.unix = bind_console_socket(state)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    def start(self) -> AdminServer:
        self._thread = threading.Thread(target=self._serve, name="hagate-admin", daemon=True)
        self._thread.start()
        self._ready.wait(30)
        return self

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        app = admin_app(self.state, self.metrics_dir, self.host, self.ingress, self.ingress_port)
        runner = web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            keepalive_timeout=HEAD_TIMEOUT,
            max_line_size=MAX_LINE,
            max_field_size=MAX_LINE,
            max_headers=MAX_HEADERS,
        )
        self._runner = runner
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.SockSite(runner, self.sock).start())
        loop.run_until_complete(web.SockSite(runner, self.unix).start())
        if self.ingress_sock is not None:
            loop.run_until_complete(web.SockSite(runner, self.ingress_sock).start())
        self._ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    def close(self) -> None:
        loop = self._loop
        if loop is not None and self._thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            self._thread.join(10)
        self.sock.close()
        self.unix.close()
        if self.ingress_sock is not None:
            self.ingress_sock.close()
        console_socket_path(self.state).unlink(missing_ok=True)
