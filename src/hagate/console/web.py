"""The console's pages and its JSON API, as one aiohttp application (pages, api), behind
its guards (guard).

Rules:
  1. Every page is rendered by a Jinja2 template that escapes by default; no handler builds
     HTML from strings. Every response carries a Content-Security-Policy without inline
     scripts or styles, and may not be framed.
  2. Pages (under /console/) need a session: a cookie limited to /console/, HttpOnly,
     SameSite=Strict. The API (under /api/v1/) needs a bearer token; it never reads the cookie,
     so no page of another site can ride on it.
  3. A request that changes something from a page carries the session's CSRF token (form field
     or X-CSRF-Token header), and its Origin, when sent, is this listener.
  4. Handlers call views (reading) and changes (writing), off the event loop: SQLite and the
     file writes block.
"""

from __future__ import annotations

from aiohttp import web

from hagate.config import IngressSettings
from hagate.console.api import api_routes
from hagate.console.context import Console, on_port, over_socket
from hagate.console.guard import auth_middleware, headers
from hagate.console.pages import routes
from hagate.state import StateDir

__all__ = ["headers", "make_app", "on_port", "over_socket"]


def make_app(
    state: StateDir,
    secure_cookie: bool = False,
    ingress: IngressSettings | None = None,
    ingress_port: int | None = None,
) -> web.Application:
    console = Console(state, secure_cookie, ingress, ingress_port)
    console.suggestions.refresh()  # so the first visit finds them ready
    console.audit.counts()  # likewise: the overview shows the audit's counts without waiting
    app = web.Application(
        middlewares=[headers, auth_middleware(console)], client_max_size=256 * 1024
    )
    r = routes(console)
    api_routes(console, r)
    app.add_routes(r)
    return app
