"""The console's pages: sign-in, and overview, events, devices, rules, suggestions, audit,
each a Jinja2 template rendered from hagate.console.views (reading) or after
hagate.console.changes (writing)."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from hagate.console import changes, views
from hagate.console.context import (
    COOKIE,
    HERE,
    Console,
    base_of,
    parse_int,
    when,
)
from hagate.errors import HagateError
from hagate.events.store import ACTIONS as EVENT_ACTIONS
from hagate.rules.ruleset import ACTIONS as RULE_ACTIONS

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
            before = parse_int(params.get("before"))
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
        after = parse_int(params.get("after")) or 0
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
                    console.forget_suggestions()
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
        console.forget_suggestions()
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

    return r


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
                "title": f"{when(s['start'])}: {s['let_in']} let in, {s['blocked']} blocked",
            }
        )
    return {"bars": bars, "width": width, "height": height, "top": top}
