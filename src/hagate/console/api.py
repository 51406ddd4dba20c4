"""The console's JSON API under /api/v1/: the same objects as the CLI's --json, for scripts
and Home Assistant's integration. Bearer tokens only (hagate.console.guard)."""

from __future__ import annotations

import json
from typing import Any

import segno
from aiohttp import web

from hagate.console import changes, views
from hagate.console.context import Console, api_error, json_response, parse_int
from hagate.errors import HagateError

# How long an API call waits for suggestions being worked out before it answers 202.
WAIT_FOR_SUGGESTIONS = 0.8

# -- the API ------------------------------------------------------------------------------


def api_routes(console: Console, r: web.RouteTableDef) -> None:
    state = console.state

    def bad(e: Exception) -> web.Response:
        return api_error(400, str(e))

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
        return json_response(await console.run(views.overview, state, console.audit))

    @r.get("/api/v1/summary")
    async def api_summary(request: web.Request) -> web.Response:
        return json_response(await console.run(views.summary, state, console.audit))

    @r.get("/api/v1/events")
    async def api_events(request: web.Request) -> web.Response:
        params = dict(request.query)
        try:
            f = views.event_filter(params)
            given = parse_int(params.get("limit"))
            limit = views.PAGE_SIZE if given is None else given
            data = await console.run(
                views.events,
                state,
                f,
                limit,
                parse_int(params.get("before")),
                parse_int(params.get("after")),
            )
        except views.BadQuery as e:
            return bad(e)
        return json_response(data)

    @r.get("/api/v1/events/{id:[0-9]{1,18}}")
    async def api_event(request: web.Request) -> web.Response:
        row = await console.run(views.event, state, int(request.match_info["id"]))
        if row is None:
            return api_error(404, "no such event")
        explained = await console.run(views.explain_event, state, row)
        return json_response({"event": row, "explain": explained})

    @r.get("/api/v1/devices")
    async def api_devices(request: web.Request) -> web.Response:
        return json_response(await console.run(views.devices, state))

    @r.post("/api/v1/devices")
    async def api_enrol(request: web.Request) -> web.Response:
        data = await body(request)
        name, ttl = data.get("name"), data.get("ttl", 600)
        if not isinstance(name, str) or not isinstance(ttl, int) or not 5 <= ttl <= 86400:
            return api_error(400, "expected {name: text, ttl: seconds from 5 to 86400}")
        try:
            link = await console.run(changes.enrol_device, state, name, float(ttl), None)
        except HagateError as e:
            return bad(e)
        return json_response(
            {
                "name": link.record.name,
                "url": link.url,
                "password": link.password,
                "server_sha256": link.enrolment.server_sha256,
                "expires": link.enrolment.expires,
                "qr": segno.make(link.url, error="m").svg_data_uri(scale=4, border=2),
            },
            201,
        )

    @r.post("/api/v1/devices/{name}/revoke")
    async def api_revoke(request: web.Request) -> web.Response:
        try:
            return json_response(
                await console.run(changes.revoke_device, state, request.match_info["name"])
            )
        except HagateError as e:
            return api_error(404 if "no certificate" in str(e) else 400, str(e))

    @r.get("/api/v1/rules")
    async def api_rules(request: web.Request) -> web.Response:
        from hagate import config

        cfg = await console.run(config.load_config, state.config_path)
        return json_response([d.to_config() for d in changes.draft_from_config(cfg)])

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
        return json_response({"valid": not any(problems), "problems": problems})

    @r.post("/api/v1/rules/replay")
    async def api_rules_replay(request: web.Request) -> web.Response:
        try:
            draft = draft_of(await body(request))
            return json_response(await console.run(changes.replay, state, draft))
        except HagateError as e:
            return bad(e)

    @r.put("/api/v1/rules")
    async def api_rules_save(request: web.Request) -> web.Response:
        try:
            draft = draft_of(await body(request))
            backup = await console.run(changes.save_rules, state, draft)
        except HagateError as e:
            return bad(e)
        console.forget_suggestions()
        return json_response({"saved": len(draft), "backup": backup})

    async def kept(since: str) -> tuple[list[dict[str, Any]] | None, float]:
        """The kept suggestions of `since`; when there are none yet, the work is started and
        waited for a little (never a second): None if it is still under way."""
        cache = console.suggestions_for(since)
        found, at, _ = await console.run(cache.peek)
        if found is None:
            await console.run(cache.wait, WAIT_FOR_SUGGESTIONS)
            found, at, _ = await console.run(cache.peek)
        return found, at

    def working() -> web.Response:
        answer = json_response({"working": True, "retry_after": 2}, 202)
        answer.headers["Retry-After"] = "2"
        return answer

    @r.get("/api/v1/suggestions")
    async def api_suggestions(request: web.Request) -> web.Response:
        try:
            found, at = await kept(request.query.get("since", console.suggestions.since))
        except HagateError as e:
            return bad(e)
        if found is None:
            return working()
        answer = json_response(found)
        answer.headers["X-Worked-Out-At"] = f"{at:.0f}"
        return answer

    @r.post("/api/v1/suggestions/{n:[0-9]{1,4}}/apply")
    async def api_apply(request: web.Request) -> web.Response:
        try:
            found, _ = await kept(request.query.get("since", console.suggestions.since))
            if found is None:
                return working()
            rule = changes.kept_suggestion_rule(found, int(request.match_info["n"]))
            done = await console.run(changes.add_rule, state, rule)
        except HagateError as e:
            return bad(e)
        console.forget_suggestions()
        return json_response(done)

    @r.get("/api/v1/audit")
    async def api_audit(request: web.Request) -> web.Response:
        return json_response(
            await console.run(console.audit.get, request.query.get("fresh") == "1")
        )
