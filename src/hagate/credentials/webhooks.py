"""The webhooks Home Assistant itself registered (Telegram, Netatmo, OwnTracks, automations
with a webhook trigger...), as its websocket command `webhook/list` gives them, and the rule
fields `hagate.webhook.*` of a request to `/api/webhook/<id>`.

Rules:
  1. Webhook ids live in this process's memory only: never logged, never written in clear.
     The status file beside the bindings has counts and times, for the audit.
  2. The last list fetched keeps serving while Home Assistant cannot be reached; the status
     file says since when it is stale.
  3. A webhook is `registered` for a request only when it is in the list, its `local_only` is
     exactly false (Home Assistant answers a remote call of a local-only one with an empty
     200) and the request's method is one it allows.
  4. The token is read from its file at each fetch and sent only in the websocket's `auth`
     message (Home Assistant's websocket API has no other way to take one).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hagate.config import HomeAssistantSettings, read_token
from hagate.credentials.extract import WEBHOOK_PREFIX
from hagate.errors import HagateError
from hagate.rules.types import to_bytes_str
from hagate.state import StateDir, atomic_write

REGISTERED = "hagate.webhook.registered"
DOMAIN = "hagate.webhook.domain"
REFRESH_EVERY = 300.0  # seconds between fetches of the list
RETRY_AFTER = 30.0  # after a failed fetch
STALE_AFTER = 3 * REFRESH_EVERY  # the audit says the list is stale past this
STATUS_NAME = "webhooks.json"
TIMEOUT = 15.0


@dataclass(frozen=True, slots=True)
class Hook:
    domain: str
    local_only: bool | None
    methods: frozenset[str]


def parse_list(result: Any) -> dict[str, Hook]:
    """`webhook/list`'s result; entries of another shape are left out."""
    hooks: dict[str, Hook] = {}
    if not isinstance(result, list):
        return hooks
    for item in result:
        if not isinstance(item, dict):
            continue
        hook_id, domain = item.get("webhook_id"), item.get("domain")
        local_only, methods = item.get("local_only"), item.get("allowed_methods")
        if not isinstance(hook_id, str) or not hook_id or not isinstance(domain, str):
            continue
        if local_only is not None and not isinstance(local_only, bool):
            continue
        if not isinstance(methods, list) or not all(isinstance(m, str) for m in methods):
            continue
        hooks[hook_id] = Hook(domain, local_only, frozenset(m.upper() for m in methods))
    return hooks


def webhook_fields(path: str, method: str, hooks: Mapping[str, Hook]) -> dict[str, Any] | None:
    """The `hagate.webhook.*` fields of a request (None: not to a webhook's path)."""
    if not path.startswith(WEBHOOK_PREFIX):
        return None
    hook = hook_of(path, hooks)
    if hook is None:
        return {REGISTERED: False, DOMAIN: to_bytes_str("")}
    allowed = hook.local_only is False and method in hook.methods
    return {REGISTERED: allowed, DOMAIN: to_bytes_str(hook.domain)}


def hook_of(path: str, hooks: Mapping[str, Hook]) -> Hook | None:
    """The listed webhook a request's path calls, if any."""
    return hooks.get(path[len(WEBHOOK_PREFIX) :]) if path.startswith(WEBHOOK_PREFIX) else None


def websocket_url(api: str) -> str:
    """Home Assistant's websocket API from its API base: `/api/websocket`, or `/websocket`
    through the Supervisor's proxy (`http://supervisor/core`)."""
    base = api.rstrip("/")
    return base + ("/websocket" if base.endswith("/core") else "/api/websocket")


class FetchError(Exception):
    """Why the list could not be fetched, in words for the status file and the log."""


async def fetch(settings: HomeAssistantSettings, timeout: float = TIMEOUT) -> dict[str, Hook]:
    import aiohttp

    try:
        token = read_token(settings.token_file, "home_assistant")
    except HagateError as e:
        raise FetchError(str(e)) from None
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
            session.ws_connect(websocket_url(settings.url), max_msg_size=16 << 20) as ws,
        ):
            first = await ws.receive_json()
            if first.get("type") != "auth_required":
                raise FetchError(f"Home Assistant said {first.get('type')!r} first")
            await ws.send_json({"type": "auth", "access_token": token})
            answer = await ws.receive_json()
            if answer.get("type") != "auth_ok":
                raise FetchError("Home Assistant refused the token (home_assistant.token_file)")
            await ws.send_json({"id": 1, "type": "webhook/list"})
            reply = await ws.receive_json()
    except FetchError:
        raise
    except (aiohttp.ClientError, TimeoutError, OSError, ValueError, TypeError) as e:
        raise FetchError(f"cannot reach Home Assistant: {type(e).__name__} {e}".strip()) from None
    if not isinstance(reply, dict) or not reply.get("success"):
        raise FetchError("Home Assistant did not list its webhooks")
    return parse_list(reply.get("result"))


class WebhookList:
    """One process's copy of the list, refreshed every REFRESH_EVERY and on `refresh()`."""

    def __init__(self, state: StateDir, settings: HomeAssistantSettings) -> None:
        self.state = state
        self.settings = settings
        self.hooks: dict[str, Hook] = {}
        self.fetched: float | None = None  # when the list in memory was fetched
        self.error: str | None = None
        self._wake = asyncio.Event()

    def fields(self, path: str, method: str) -> dict[str, Any] | None:
        return webhook_fields(path, method, self.hooks)

    def domain_of(self, path: str) -> str | None:
        """For the event: the integration a registered webhook belongs to."""
        hook = hook_of(path, self.hooks)
        return hook.domain if hook is not None else None

    async def refresh_once(self) -> None:
        try:
            self.hooks = await fetch(self.settings)
            self.fetched, self.error = time.time(), None
        except FetchError as e:
            self.error = str(e)
        self._write_status()

    def refresh(self) -> None:
        """Fetch again now (after a reload)."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            await self.refresh_once()
            self._wake.clear()
            delay = REFRESH_EVERY if self.error is None else RETRY_AFTER
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    def _write_status(self) -> None:
        status = {
            "fetched": self.fetched,
            "checked": time.time(),
            "count": len(self.hooks),
            "error": self.error,
        }
        with contextlib.suppress(OSError):
            atomic_write(self.state / STATUS_NAME, json.dumps(status).encode(), mode=0o600)


def read_status(state: StateDir) -> dict[str, Any] | None:
    """What the gateway last wrote about the list (the audit's view), or None."""
    try:
        data = json.loads((state / STATUS_NAME).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
