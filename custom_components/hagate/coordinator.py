"""What hagate reports, polled: one summary every SCAN_INTERVAL, shared by every entity; and
the audit's high findings kept as repair issues, each gone once hagate no longer finds it."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, TypeAlias

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ConfigEntryAuthFailed
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator, UpdateFailed

from .api import HagateAuthError, HagateClient, HagateError
from .const import DOMAIN, SCAN_INTERVAL

LOGGER = logging.getLogger(__package__)
ISSUE_PREFIX = "audit_"


@dataclass
class HagateData:
    client: HagateClient
    coordinator: HagateCoordinator


HagateConfigEntry: TypeAlias = ConfigEntry[HagateData]


class HagateCoordinator(DataUpdateCoordinator[dict[str, Any]]):
    config_entry: HagateConfigEntry

    def __init__(self, hass: HomeAssistant, entry: HagateConfigEntry, client: HagateClient) -> None:
        super().__init__(
            hass, LOGGER, config_entry=entry, name=DOMAIN, update_interval=SCAN_INTERVAL
        )
        self.client = client

    async def _async_update_data(self) -> dict[str, Any]:
        try:
            data = await self.client.summary()
        except HagateAuthError as e:
            raise ConfigEntryAuthFailed(str(e)) from e
        except HagateError as e:
            raise UpdateFailed(str(e)) from e
        self._sync_repairs(str(data["hostname"]), data["audit"]["high"])
        return data

    def _issue_prefix(self) -> str:
        return f"{ISSUE_PREFIX}{self.config_entry.entry_id}_"

    def _sync_repairs(self, hostname: str, high: list[dict[str, Any]]) -> None:
        """One repair issue per high finding; the ones hagate no longer finds are deleted."""
        prefix = self._issue_prefix()
        wanted = {prefix + str(f["id"]): f for f in high}
        for issue_id, finding in wanted.items():
            ir.async_create_issue(
                self.hass,
                DOMAIN,
                issue_id,
                is_fixable=False,
                severity=ir.IssueSeverity.ERROR,
                translation_key="audit_finding",
                translation_placeholders={
                    "hostname": hostname,
                    "problem": str(finding["problem"]),
                    "fix": str(finding["fix"]),
                },
            )
        self.clear_repairs(keep=set(wanted))

    def clear_repairs(self, keep: set[str] | None = None) -> None:
        prefix = self._issue_prefix()
        for domain, issue_id in list(ir.async_get(self.hass).issues):
            if domain == DOMAIN and issue_id.startswith(prefix) and issue_id not in (keep or ()):
                ir.async_delete_issue(self.hass, DOMAIN, issue_id)
