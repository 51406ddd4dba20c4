"""What the console's parts share: the Console (state, credentials, templates, caches), the
request keys that say who is signed in and where the pages are, and small helpers.

The console's rules are in hagate.console.web."""

from __future__ import annotations

import asyncio
import functools
import json
import re
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from hagate.config import IngressSettings
from hagate.console import views
from hagate.console.access import ConsoleAccess, Session
from hagate.console.limits import SignInLimiter
from hagate.state import StateDir

HERE = Path(__file__).parent
COOKIE = "hagate_console"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SESSION_KEY: web.RequestKey[Session] = web.RequestKey("session", Session)
BASE_KEY: web.RequestKey[str] = web.RequestKey("base", str)
CSRF_KEY: web.RequestKey[str] = web.RequestKey("csrf", str)
WHO_KEY: web.RequestKey[str] = web.RequestKey("who", str)  # signed in without a session: who
INGRESS_KEY: web.RequestKey[bool] = web.RequestKey("ingress", bool)
INGRESS_PATH = re.compile(r"/api/hassio_ingress/[A-Za-z0-9_-]{1,128}")
GATEWAY_BASE = "/.hagate/console/"  # where the gateway serves the console to admin certificates
CERT_HEADER = "X-Hagate-Certificate"  # set by the gateway only, on the console's socket
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
OPEN_PAGES = ("/console/signin", "/console/link", "/console/static/")


def when(t: float | None) -> str:
    if not t:
        return ""
    return datetime.fromtimestamp(float(t)).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _ago(t: float | None) -> str:
    if not t:
        return "never"
    s = max(0, int(time.time() - float(t)))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s // size}{unit} ago"
    return f"{s}s ago"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = when
    env.filters["ago"] = _ago
    return env


class Console:
    """The application's state: the state directory, its credentials, the templates."""

    def __init__(
        self,
        state: StateDir,
        secure_cookie: bool = False,
        ingress: IngressSettings | None = None,
        ingress_port: int | None = None,
    ) -> None:
        self.state = state
        self.ingress = ingress
        self.ingress_port = ingress_port
        self.access = ConsoleAccess(state)
        self.limiter = SignInLimiter()
        self.audit = views.AuditCache(state)
        self.suggestions = views.SuggestionCache(state)
        self._periods: dict[str, views.SuggestionCache] = {}
        self.templates = _environment()
        self.secure_cookie = secure_cookie

    def suggestions_for(self, since: str) -> views.SuggestionCache:
        """The kept suggestions of a period (the pages' own, or one the API asked for; a few
        are kept, the oldest asked for dropped first)."""
        from hagate.review.query import parse_time

        if since == self.suggestions.since:
            return self.suggestions
        parse_time(since)  # a bad period is the caller's error, now
        if since not in self._periods:
            if len(self._periods) >= 4:
                self._periods.pop(next(iter(self._periods)))
            self._periods[since] = views.SuggestionCache(self.state, since)
        return self._periods[since]

    def forget_suggestions(self) -> None:
        """After a change to the rules: every kept answer is worked out afresh."""
        self.suggestions.forget()
        for cache in self._periods.values():
            cache.forget()

    async def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(
            None, functools.partial(fn, *args, **kwargs)
        )

    def page(
        self, request: web.Request, template: str, status: int = 200, **context: Any
    ) -> web.Response:
        session = request.get(SESSION_KEY)
        who = request.get(WHO_KEY)
        csrf = session.csrf if session else request.get(CSRF_KEY, "")
        text = self.templates.get_template(template).render(
            csrf=csrf,
            signed_in=session is not None or who is not None,
            who=who,
            base=base_of(request),
            section=template.split(".")[0].split("_")[0],
            **context,
        )
        return web.Response(text=text, status=status, content_type="text/html")


def base_of(request: web.Request) -> str:
    """Where the console's pages are, as the browser sees them."""
    base: str = request.get(BASE_KEY, "/console/")
    return base


def over_socket(request: web.Request) -> bool:
    """Whether the request came over the console's Unix socket (from the gateway)."""
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    return isinstance(sockname, str)


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(data), status=status, content_type="application/json")


def api_error(status: int, message: str) -> web.Response:
    return json_response({"error": message}, status)


def on_port(request: web.Request, port: int | None) -> bool:
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    return isinstance(sockname, tuple) and sockname[1] == port


def parse_int(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    if not value.isdigit() or len(value) > 18:
        raise views.BadQuery(f"expected a number, not {value[:20]!r}")
    return int(value)
