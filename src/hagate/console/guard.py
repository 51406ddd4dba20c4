"""The console's guards, as aiohttp middlewares: the security headers on every answer, and
who is signed in (a session on the admin listener, an admin certificate through the gateway,
a Home Assistant user through ingress, a bearer token for the API), with the CSRF check on
every change. The rules are in hagate.console.web."""

from __future__ import annotations

import hmac
from typing import Any

from aiohttp import web

from hagate.console.context import (
    BASE_KEY,
    CERT_HEADER,
    COOKIE,
    CSP,
    CSRF_KEY,
    GATEWAY_BASE,
    INGRESS_KEY,
    INGRESS_PATH,
    OPEN_PAGES,
    SESSION_KEY,
    WHO_KEY,
    Console,
    Handler,
    api_error,
    base_of,
    on_port,
    over_socket,
)

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
                return api_error(401, "a bearer token is needed: hagate console token create")
            name = await console.run(console.access.token_name, token.strip())
            if name is None:
                return api_error(401, "the token is not valid (unknown, revoked or malformed)")
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


async def check_csrf(request: web.Request, expected: str) -> None:
    """A request that changes something carries the CSRF token, and comes from this origin."""
    if request.method in ("GET", "HEAD"):
        return
    form = await request.post() if request.content_type.endswith("form-urlencoded") else {}
    given = request.headers.get("X-CSRF-Token") or str(form.get("csrf", ""))
    if not _origin_ok(request) or not given or not hmac.compare_digest(given, expected):
        raise web.HTTPForbidden(text="this form is not from the console (CSRF)")
