"""hagate's console API (`/api/v1/`), as the integration uses it: one summary to poll, and the
two changes its services make. A bearer token is all it sends; nothing is kept here."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import aiohttp

TIMEOUT = aiohttp.ClientTimeout(total=20)


class HagateError(Exception):
    """hagate cannot be reached, or said no: the message says which, in plain words."""


class HagateAuthError(HagateError):
    """The token was refused (revoked, expired, or never made)."""


class HagateClient:
    def __init__(self, session: aiohttp.ClientSession, url: str, token: str) -> None:
        self.session = session
        self.url = url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"}

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        try:
            async with self.session.request(
                method, self.url + path, json=body, headers=self._headers, timeout=TIMEOUT
            ) as r:
                if r.status == 401:
                    raise HagateAuthError("hagate refused the API token")
                try:
                    data = await r.json(content_type=None)
                except ValueError:
                    raise HagateError(
                        f"{self.url} answered {r.status} with something that is not JSON: "
                        "is this hagate's admin listener?"
                    ) from None
                if r.status >= 400:
                    said = data.get("error") if isinstance(data, dict) else None
                    raise HagateError(said or f"hagate answered {r.status}")
                return data
        except (aiohttp.ClientError, TimeoutError) as e:
            raise HagateError(f"cannot reach hagate at {self.url}: {e or type(e).__name__}") from e

    async def summary(self) -> dict[str, Any]:
        data: dict[str, Any] = await self._call("GET", "/api/v1/summary")
        return data

    async def revoke(self, name: str) -> dict[str, Any]:
        data: dict[str, Any] = await self._call(
            "POST", f"/api/v1/devices/{quote(name, safe='')}/revoke", {}
        )
        return data

    async def enrol(self, name: str, ttl: int) -> dict[str, Any]:
        data: dict[str, Any] = await self._call(
            "POST", "/api/v1/devices", {"name": name, "ttl": ttl}
        )
        return data
