"""The console's pages and its JSON API, as one aiohttp application.

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

import asyncio
import functools
import hmac
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
from hagate.console import changes, views
from hagate.console.access import ConsoleAccess, Session
from hagate.console.limits import SignInLimiter
from hagate.errors import HagateError
from hagate.events.store import ACTIONS as EVENT_ACTIONS
from hagate.rules.ruleset import ACTIONS as RULE_ACTIONS
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
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def _when(t: float | None) -> str:
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
    env.filters["when"] = _when
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
        self.templates = _environment()
        self.secure_cookie = secure_cookie

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


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(data), status=status, content_type="application/json")


def _api_error(status: int, message: str) -> web.Response:
    return _json({"error": message}, status)


# -- middlewares --------------------------------------------------------------------------


@web.middleware
async def headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as e:
        response = e
    if request.get(INGRESS_KEY):
        # Home Assistant shows the ingress panel in a frame of its own page (same origin).
        response.headers["Content-Security-Policy"] = CSP.replace(
            "frame-ancestors 'none'", "frame-ancestors 'self'"
        )
        response.headers["X-Frame-Options"] = "SAMEORIGIN"
    else:
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = (
        "same-origin"  # no-referrer would make a form's Origin "null"
    )
    response.headers["Server"] = "hagate"
    if response.status >= 400:
        response.force_close()  # a client that errs gets its answer, then the door
    if "Cache-Control" not in response.headers:
        response.headers["Cache-Control"] = "no-store"
    if isinstance(response, web.HTTPException):
        raise response
    return response


def _origin_ok(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    if request.get(INGRESS_KEY):
        # Through Home Assistant's proxy: its own address, whichever scheme it is served on.
        return origin.split("://", 1)[-1] == request.host
    # Through the gateway the browser spoke TLS to the Host the gateway passes on.
    scheme = "https" if over_socket(request) else request.scheme
    return origin == f"{scheme}://{request.host}"


def auth_middleware(console: Console) -> Any:
    @web.middleware
    async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if console.ingress is not None and on_port(request, console.ingress_port):
            return await by_ingress(request, handler)
        if path.startswith("/api/v1/") or path == "/api/v1":
            header = request.headers.get("Authorization", "")
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                return _api_error(401, "a bearer token is needed: hagate console token create")
            name = await console.run(console.access.token_name, token.strip())
            if name is None:
                return _api_error(401, "the token is not valid (unknown, revoked or malformed)")
            return await handler(request)
        if not path.startswith("/console"):
            return await handler(request)
        if over_socket(request):
            return await by_certificate(request, handler)
        session = None
        secret = request.cookies.get(COOKIE)
        if secret:
            session = await console.run(console.access.session, secret)
        if session is not None:
            request[SESSION_KEY] = session
        if path.startswith(OPEN_PAGES):
            return await handler(request)
        if session is None:
            if request.method in ("GET", "HEAD"):
                raise web.HTTPSeeOther(base_of(request) + "signin")
            raise web.HTTPForbidden(text="sign in first")
        await check_csrf(request, session.csrf)
        return await handler(request)

    async def by_certificate(request: web.Request, handler: Handler) -> web.StreamResponse:
        """Through the gateway: the certificate it verified is the sign-in. Only the gateway
        reaches this socket (0600, in the state directory), and it sets the header itself."""
        sha256 = request.headers.get(CERT_HEADER, "")
        admins = await console.run(console.access.admins)
        if sha256 not in admins:
            raise web.HTTPNotFound(text="not found")
        request[BASE_KEY] = GATEWAY_BASE
        request[WHO_KEY] = f"certificate {admins[sha256]}"
        csrf = await console.run(console.access.certificate_csrf, sha256)
        request[CSRF_KEY] = csrf
        if request.path.startswith(("/console/signin", "/console/link", "/console/signout")):
            raise web.HTTPSeeOther(GATEWAY_BASE)
        await check_csrf(request, csrf)
        return await handler(request)

    async def by_ingress(request: web.Request, handler: Handler) -> web.StreamResponse:
        """Through Home Assistant's ingress: only the Supervisor's proxy may connect, and the
        Home Assistant user it names is the sign-in."""
        assert console.ingress is not None
        request[INGRESS_KEY] = True
        peer = request.transport.get_extra_info("peername") if request.transport else None
        if not peer or peer[0] not in console.ingress.trusted:
            refused = web.Response(status=403, text="only Home Assistant's ingress proxy\n")
            refused.force_close()
            return refused
        prefix = request.headers.get("X-Ingress-Path", "")
        user = request.headers.get("X-Remote-User-Id", "")
        if not INGRESS_PATH.fullmatch(prefix) or not user:
            raise web.HTTPBadRequest(text="open the console from Home Assistant's sidebar")
        base = prefix + "/console/"
        request[BASE_KEY] = base
        name = request.headers.get("X-Remote-User-Display-Name") or request.headers.get(
            "X-Remote-User-Name", user
        )
        request[WHO_KEY] = f"Home Assistant user {name}"
        csrf = await console.run(console.access.certificate_csrf, "ha-user:" + user)
        request[CSRF_KEY] = csrf
        if request.path == "/" or request.path.startswith(
            ("/console/signin", "/console/link", "/console/signout")
        ):
            raise web.HTTPSeeOther(base)
        if not request.path.startswith("/console/"):
            raise web.HTTPNotFound(text="not found")
        await check_csrf(request, csrf)
        return await handler(request)

    return auth


def on_port(request: web.Request, port: int | None) -> bool:
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    return isinstance(sockname, tuple) and sockname[1] == port


async def check_csrf(request: web.Request, expected: str) -> None:
    """A request that changes something carries the CSRF token, and comes from this origin."""
    if request.method in ("GET", "HEAD"):
        return
    form = await request.post() if request.content_type.endswith("form-urlencoded") else {}
    given = request.headers.get("X-CSRF-Token") or str(form.get("csrf", ""))
    if not _origin_ok(request) or not given or not hmac.compare_digest(given, expected):
        raise web.HTTPForbidden(text="this form is not from the console (CSRF)")


# -- sign-in ------------------------------------------------------------------------------


def _client(request: web.Request) -> str:
    return request.remote or "?"


def _signed_in(console: Console, secret: str) -> web.HTTPSeeOther:
    response = web.HTTPSeeOther("/console/")  # the admin listener's: sessions live only there
    response.set_cookie(
        COOKIE,
        secret,
        path="/console/",
        httponly=True,
        samesite="Strict",
        secure=console.secure_cookie,
        max_age=12 * 3600,
    )
    return response


def routes(console: Console) -> web.RouteTableDef:
    r = web.RouteTableDef()

    @r.get("/console/signin")
    async def signin_form(request: web.Request) -> web.Response:
        has = await console.run(console.access.has_password)
        return console.page(request, "signin.html", has_password=has, error="")

    @r.post("/console/signin")
    async def signin(request: web.Request) -> web.StreamResponse:
        now = time.monotonic()
        wait = console.limiter.retry_after(_client(request), now)
        if wait > 0:
            response = console.page(
                request,
                "signin.html",
                status=429,
                has_password=True,
                error=f"Too many attempts; try again in {int(wait) + 1} seconds.",
            )
            response.headers["Retry-After"] = str(int(wait) + 1)
            return response
        form = await request.post()
        password = str(form.get("password", ""))
        if not await console.run(console.access.check_password, password):
            console.limiter.failed(_client(request), now)
            return console.page(
                request, "signin.html", status=401, has_password=True, error="Wrong password."
            )
        console.limiter.succeeded(_client(request))
        secret, _ = await console.run(console.access.open_session, "password")
        raise _signed_in(console, secret)

    @r.get("/console/link/{secret}")
    async def link_form(request: web.Request) -> web.Response:
        # A button, not an action on GET: a link preview that fetches it spends nothing.
        return console.page(request, "link.html", secret=request.match_info["secret"])

    @r.post("/console/link/{secret}")
    async def link(request: web.Request) -> web.StreamResponse:
        now = time.monotonic()
        if console.limiter.retry_after(_client(request), now) > 0:
            raise web.HTTPTooManyRequests(text="too many attempts; wait a while")
        if not await console.run(console.access.redeem_link, request.match_info["secret"]):
            console.limiter.failed(_client(request), now)
            return console.page(
                request,
                "signin.html",
                status=410,
                has_password=await console.run(console.access.has_password),
                error="That sign-in link was used already or has expired: run"
                " hagate console link for a new one.",
            )
        secret, _ = await console.run(console.access.open_session, "link")
        raise _signed_in(console, secret)

    @r.post("/console/signout")
    async def signout(request: web.Request) -> web.StreamResponse:
        secret = request.cookies.get(COOKIE, "")
        await console.run(console.access.end_session, secret)
        response = web.HTTPSeeOther("/console/signin")
        response.del_cookie(COOKIE, path="/console/")
        raise response

    # -- pages ------------------------------------------------------------------------------

    @r.get("/console/")
    async def overview(request: web.Request) -> web.Response:
        data = await console.run(views.overview, console.state, console.audit)
        return console.page(request, "overview.html", o=data, chart=_chart)

    @r.get("/console/events")
    async def events_page(request: web.Request) -> web.Response:
        params = dict(request.query)
        try:
            f = views.event_filter(params)
            before = _int(params.get("before"))
            data = await console.run(views.events, console.state, f, views.PAGE_SIZE, before)
            error = ""
        except views.BadQuery as e:
            data, error = {"events": [], "next_before": None, "last_id": 0}, str(e)
        query = {k: v for k, v in params.items() if k in views.FILTERS and v}
        return console.page(
            request,
            "events.html",
            status=400 if error else 200,
            page=data,
            filters=params,
            query=query,
            error=error,
            actions=EVENT_ACTIONS,
            live=before is None if not error else False,
        )

    @r.get("/console/events/tail")
    async def events_tail(request: web.Request) -> web.Response:
        params = dict(request.query)
        try:
            f = views.event_filter(params)
        except views.BadQuery as e:
            raise web.HTTPBadRequest(text=str(e)) from None
        after = _int(params.get("after")) or 0
        data = await console.run(views.events, console.state, f, 100, None, after)
        last = max([after, *(e["id"] for e in data["events"])])
        query = {k: v for k, v in params.items() if k in views.FILTERS and v}
        return console.page(request, "events_tail.html", page=data, last=last, query=query)

    @r.get("/console/events/{id:[0-9]{1,18}}")
    async def event_page(request: web.Request) -> web.Response:
        row = await console.run(views.event, console.state, int(request.match_info["id"]))
        if row is None:
            raise web.HTTPNotFound(text="no such event")
        explained = await console.run(views.explain_event, console.state, row)
        return console.page(request, "event.html", e=row, explained=explained)

    @r.get("/console/devices")
    async def devices_page(request: web.Request) -> web.Response:
        data = await console.run(views.devices, console.state)
        return console.page(request, "devices.html", devices=data, error="")

    @r.post("/console/devices")
    async def device_add(request: web.Request) -> web.Response:
        form = await request.post()
        name = str(form.get("name", "")).strip()
        try:
            link = await console.run(changes.enrol_device, console.state, name, 600.0, None)
        except HagateError as e:
            data = await console.run(views.devices, console.state)
            return console.page(request, "devices.html", status=400, devices=data, error=str(e))
        import segno

        qr = segno.make(link.url, error="m").png_data_uri(scale=6, border=2)
        return console.page(
            request,
            "device_add.html",
            name=link.record.name,
            url=link.url,
            qr=qr,
            password=link.password,
            server=link.enrolment.server_sha256,
            replaced=link.replaced.serial_hex if link.replaced else None,
        )

    @r.get("/console/devices/{name}/status")
    async def device_status(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        data = await console.run(views.devices, console.state)
        device = next((d for d in data if d["name"] == name and d["status"] != "revoked"), None)
        return console.page(request, "device_status.html", name=name, device=device)

    @r.get("/console/devices/{name}/revoke")
    async def revoke_form(request: web.Request) -> web.Response:
        return console.page(request, "revoke.html", name=request.match_info["name"])

    @r.post("/console/devices/{name}/revoke")
    async def revoke(request: web.Request) -> web.StreamResponse:
        try:
            await console.run(changes.revoke_device, console.state, request.match_info["name"])
        except HagateError as e:
            data = await console.run(views.devices, console.state)
            return console.page(request, "devices.html", status=400, devices=data, error=str(e))
        raise web.HTTPSeeOther(base_of(request) + "devices")

    @r.get("/console/rules")
    async def rules_page(request: web.Request) -> web.Response:
        from hagate import config

        cfg = await console.run(config.load_config, console.state.config_path)
        draft = changes.draft_from_config(cfg)
        return console.page(
            request,
            "rules.html",
            draft=draft,
            problems=[None] * len(draft),
            actions=RULE_ACTIONS,
            replayed=None,
            message="",
            error="",
        )

    @r.post("/console/rules")
    async def rules_post(request: web.Request) -> web.Response:
        from hagate import config

        form = {k: str(v) for k, v in (await request.post()).items()}
        cfg = await console.run(config.load_config, console.state.config_path)
        try:
            draft = changes.draft_from_form(form)
        except HagateError as e:
            raise web.HTTPBadRequest(text=str(e)) from None
        problems = changes.draft_problems(cfg, draft)
        replayed, message, error, status = None, "", "", 200
        intent = form.get("intent", "")
        if intent in ("replay", "save") and not any(problems):
            try:
                if intent == "replay":
                    replayed = await console.run(changes.replay, console.state, draft)
                else:
                    backup = await console.run(changes.save_rules, console.state, draft)
                    console.suggestions.forget()
                    message = f"Saved; the old file is {backup}. The gateway was told to reload."
                    cfg = await console.run(config.load_config, console.state.config_path)
                    draft = changes.draft_from_config(cfg)
                    problems = [None] * len(draft)
            except HagateError as e:
                error, status = str(e), 400
        elif intent in ("replay", "save"):
            error, status = "Fix the rules marked below first.", 400
        return console.page(
            request,
            "rules.html",
            status=status,
            draft=draft,
            problems=problems,
            actions=RULE_ACTIONS,
            replayed=replayed,
            message=message,
            error=error,
        )

    @r.post("/console/rules/check")
    async def rules_check(request: web.Request) -> web.Response:
        from hagate import config
        from hagate.rules.ruleset import load_lists

        form = await request.post()
        text = next((str(v) for k, v in form.items() if k.startswith("expression")), "")
        cfg = await console.run(config.load_config, console.state.config_path)
        problem = changes.check_expression(text, load_lists(cfg.lists, cfg.source))
        return console.page(request, "rule_check.html", problem=problem)

    @r.get("/console/suggestions")
    async def suggestions_page(request: web.Request) -> web.Response:
        fresh = request.query.get("fresh") == "1"
        data, at, working = await console.run(console.suggestions.peek, fresh)
        return console.page(request, "suggestions.html", suggestions=data, at=at, working=working)

    @r.get("/console/suggestions/list")
    async def suggestions_list(request: web.Request) -> web.Response:
        data, at, working = await console.run(console.suggestions.peek)
        return console.page(
            request, "suggestions_list.html", suggestions=data, at=at, working=working
        )

    async def kept_rule(n: int) -> dict[str, str]:
        found, _ = await console.run(console.suggestions.get)
        try:
            return changes.kept_suggestion_rule(found, n)
        except HagateError as e:
            raise web.HTTPNotFound(text=str(e)) from None

    @r.get("/console/suggestions/{n:[0-9]{1,4}}")
    async def suggestion_page(request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        rule = await kept_rule(n)
        try:
            diff = await console.run(changes.rule_diff, console.state, rule)
        except HagateError as e:
            raise web.HTTPBadRequest(text=str(e)) from None
        return console.page(request, "suggestion.html", d={"number": n, "rule": rule, "diff": diff})

    @r.post("/console/suggestions/{n:[0-9]{1,4}}")
    async def suggestion_apply(request: web.Request) -> web.StreamResponse:
        n = int(request.match_info["n"])
        rule = await kept_rule(n)
        form = await request.post()
        if str(form.get("description", "")) != rule["description"]:
            raise web.HTTPConflict(
                text="the suggestions changed since that page was shown: look again"
            )
        try:
            done = await console.run(changes.add_rule, console.state, rule)
        except HagateError as e:
            raise web.HTTPBadRequest(text=str(e)) from None
        console.suggestions.forget()
        return console.page(request, "applied.html", done=done)

    @r.get("/console/audit")
    async def audit_page(request: web.Request) -> web.Response:
        fresh = request.query.get("fresh") == "1"
        data = await console.run(console.audit.get, fresh)
        return console.page(request, "audit.html", report=data)

    @r.get("/console/static/{name:[a-z0-9._/-]+}")
    async def static(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        allowed = {"console.css", "vendor/htmx/htmx.min.js"}
        if name not in allowed:
            raise web.HTTPNotFound()
        kind = "text/css" if name.endswith(".css") else "text/javascript"
        body = (HERE / "static" / name).read_bytes()
        response = web.Response(body=body, content_type=kind)
        response.headers["Cache-Control"] = "max-age=3600"
        return response

    api_routes(console, r)
    return r


def _int(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    if not value.isdigit() or len(value) > 18:
        raise views.BadQuery(f"expected a number, not {value[:20]!r}")
    return int(value)


def _chart(series: list[dict[str, Any]], width: int = 720, height: int = 160) -> dict[str, Any]:
    """Bars for an SVG drawn by the template: one pair (let in, blocked) per hour."""
    top = max([1, *(s["let_in"] + s["blocked"] for s in series)])
    step = width / max(1, len(series))
    bars = []
    for i, s in enumerate(series):
        h_in = s["let_in"] / top * (height - 20)
        h_bl = s["blocked"] / top * (height - 20)
        bars.append(
            {
                "x": round(i * step, 2),
                "w": round(max(1.0, step - 1), 2),
                "y_in": round(height - h_in, 2),
                "h_in": round(h_in, 2),
                "y_bl": round(height - h_in - h_bl, 2),
                "h_bl": round(h_bl, 2),
                "title": f"{_when(s['start'])}: {s['let_in']} let in, {s['blocked']} blocked",
            }
        )
    return {"bars": bars, "width": width, "height": height, "top": top}


# -- the API ------------------------------------------------------------------------------


def api_routes(console: Console, r: web.RouteTableDef) -> None:
    state = console.state

    def bad(e: Exception) -> web.Response:
        return _api_error(400, str(e))

    async def body(request: web.Request) -> dict[str, Any]:
        try:
            data = await request.json()
        except (ValueError, UnicodeDecodeError):
            raise web.HTTPBadRequest(
                text=json.dumps({"error": "the body is not JSON"}), content_type="application/json"
            ) from None
        if not isinstance(data, dict):
            raise web.HTTPBadRequest(
                text=json.dumps({"error": "the body must be a JSON object"}),
                content_type="application/json",
            )
        return data

    @r.get("/api/v1/overview")
    async def api_overview(request: web.Request) -> web.Response:
        return _json(await console.run(views.overview, state, console.audit))

    @r.get("/api/v1/events")
    async def api_events(request: web.Request) -> web.Response:
        params = dict(request.query)
        try:
            f = views.event_filter(params)
            given = _int(params.get("limit"))
            limit = views.PAGE_SIZE if given is None else given
            data = await console.run(
                views.events,
                state,
                f,
                limit,
                _int(params.get("before")),
                _int(params.get("after")),
            )
        except views.BadQuery as e:
            return bad(e)
        return _json(data)

    @r.get("/api/v1/events/{id:[0-9]{1,18}}")
    async def api_event(request: web.Request) -> web.Response:
        row = await console.run(views.event, state, int(request.match_info["id"]))
        if row is None:
            return _api_error(404, "no such event")
        explained = await console.run(views.explain_event, state, row)
        return _json({"event": row, "explain": explained})

    @r.get("/api/v1/devices")
    async def api_devices(request: web.Request) -> web.Response:
        return _json(await console.run(views.devices, state))

    @r.post("/api/v1/devices")
    async def api_enrol(request: web.Request) -> web.Response:
        data = await body(request)
        name, ttl = data.get("name"), data.get("ttl", 600)
        if not isinstance(name, str) or not isinstance(ttl, int) or not 5 <= ttl <= 86400:
            return _api_error(400, "expected {name: text, ttl: seconds from 5 to 86400}")
        try:
            link = await console.run(changes.enrol_device, state, name, float(ttl), None)
        except HagateError as e:
            return bad(e)
        return _json(
            {
                "name": link.record.name,
                "url": link.url,
                "password": link.password,
                "server_sha256": link.enrolment.server_sha256,
                "expires": link.enrolment.expires,
            },
            201,
        )

    @r.post("/api/v1/devices/{name}/revoke")
    async def api_revoke(request: web.Request) -> web.Response:
        try:
            return _json(
                await console.run(changes.revoke_device, state, request.match_info["name"])
            )
        except HagateError as e:
            return _api_error(404 if "no certificate" in str(e) else 400, str(e))

    @r.get("/api/v1/rules")
    async def api_rules(request: web.Request) -> web.Response:
        from hagate import config

        cfg = await console.run(config.load_config, state.config_path)
        return _json([d.to_config() for d in changes.draft_from_config(cfg)])

    def draft_of(data: dict[str, Any]) -> list[changes.DraftRule]:
        rules = data.get("rules")
        if not isinstance(rules, list) or len(rules) > changes.MAX_RULES:
            raise views.BadQuery(f"expected {{rules: [...]}} with at most {changes.MAX_RULES}")
        out = []
        for i, raw in enumerate(rules):
            if not isinstance(raw, dict) or set(raw) - {
                "description",
                "expression",
                "action",
                "enabled",
                "origin",
            }:
                raise views.BadQuery(f"rules[{i}]: description, expression, action, enabled")
            origin = raw.get("origin")
            out.append(
                changes.DraftRule(
                    description=str(raw.get("description", "")),
                    expression=str(raw.get("expression", "")),
                    action=str(raw.get("action", "")),
                    enabled=raw.get("enabled", True) is not False,
                    origin=origin if isinstance(origin, int) else None,
                )
            )
        return out

    @r.post("/api/v1/rules/check")
    async def api_rules_check(request: web.Request) -> web.Response:
        from hagate import config

        try:
            draft = draft_of(await body(request))
        except views.BadQuery as e:
            return bad(e)
        cfg = await console.run(config.load_config, state.config_path)
        problems = changes.draft_problems(cfg, draft)
        return _json({"valid": not any(problems), "problems": problems})

    @r.post("/api/v1/rules/replay")
    async def api_rules_replay(request: web.Request) -> web.Response:
        try:
            draft = draft_of(await body(request))
            return _json(await console.run(changes.replay, state, draft))
        except HagateError as e:
            return bad(e)

    @r.put("/api/v1/rules")
    async def api_rules_save(request: web.Request) -> web.Response:
        try:
            draft = draft_of(await body(request))
            backup = await console.run(changes.save_rules, state, draft)
        except HagateError as e:
            return bad(e)
        console.suggestions.forget()
        return _json({"saved": len(draft), "backup": backup})

    @r.get("/api/v1/suggestions")
    async def api_suggestions(request: web.Request) -> web.Response:
        since = request.query.get("since")
        try:
            if since is None or since == console.suggestions.since:  # the kept answer
                found, _ = await console.run(console.suggestions.get)
                return _json(found)
            return _json(await console.run(views.suggestions, state, since))
        except HagateError as e:
            return bad(e)

    @r.post("/api/v1/suggestions/{n:[0-9]{1,4}}/apply")
    async def api_apply(request: web.Request) -> web.Response:
        since = request.query.get("since", "30d")
        try:
            n = int(request.match_info["n"])
            done = await console.run(changes.apply_suggestion, state, n, since)
        except HagateError as e:
            return bad(e)
        console.suggestions.forget()
        return _json(done)

    @r.get("/api/v1/audit")
    async def api_audit(request: web.Request) -> web.Response:
        return _json(await console.run(console.audit.get, request.query.get("fresh") == "1"))


def make_app(
    state: StateDir,
    secure_cookie: bool = False,
    ingress: IngressSettings | None = None,
    ingress_port: int | None = None,
) -> web.Application:
    console = Console(state, secure_cookie, ingress, ingress_port)
    console.suggestions.refresh()  # so the first visit finds them ready
    app = web.Application(
        middlewares=[headers, auth_middleware(console)], client_max_size=256 * 1024
    )
    app.add_routes(routes(console))
    return app
