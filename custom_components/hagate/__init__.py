"""hagate inside Home Assistant: its state as entities, its audit as repairs, revoking and
enrolling as services, and its alerts (`hagate_alert` events) in the logbook.

It talks to hagate's console API with a token (`hagate console token create NAME`); the
hagate app announces itself, so there it is set up by confirming what was found."""

from __future__ import annotations

from typing import Any

import voluptuous as vol
from homeassistant.const import CONF_URL, Platform
from homeassistant.core import HomeAssistant, ServiceCall, ServiceResponse, SupportsResponse
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.typing import ConfigType

from .api import HagateClient, HagateError
from .const import CONF_TOKEN, DOMAIN, SERVICE_ENROL, SERVICE_REVOKE
from .coordinator import HagateConfigEntry, HagateCoordinator, HagateData

PLATFORMS = [Platform.BINARY_SENSOR, Platform.SENSOR]
CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)
ATTR_ENTRY = "config_entry_id"
ATTR_NAME = "name"
ATTR_TTL = "ttl"
NAME = vol.All(cv.string, vol.Length(min=1, max=64))

REVOKE_SCHEMA = vol.Schema({vol.Required(ATTR_NAME): NAME, vol.Optional(ATTR_ENTRY): cv.string})
ENROL_SCHEMA = vol.Schema(
    {
        vol.Required(ATTR_NAME): NAME,
        vol.Optional(ATTR_TTL, default=600): vol.All(vol.Coerce(int), vol.Range(min=60, max=86400)),
        vol.Optional(ATTR_ENTRY): cv.string,
    }
)


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """The services, registered once whatever the entries (each call names its gateway when
    there is more than one)."""

    def entry_of(call: ServiceCall) -> HagateConfigEntry:
        loaded: list[HagateConfigEntry] = [
            e for e in hass.config_entries.async_loaded_entries(DOMAIN)
        ]
        wanted = call.data.get(ATTR_ENTRY)
        if wanted is not None:
            loaded = [e for e in loaded if e.entry_id == wanted]
        if len(loaded) != 1:
            raise ServiceValidationError(
                "no hagate is set up"
                if not loaded
                else "more than one hagate is set up: name one with config_entry_id"
            )
        return loaded[0]

    async def revoke(call: ServiceCall) -> None:
        entry = entry_of(call)
        try:
            await entry.runtime_data.client.revoke(call.data[ATTR_NAME])
        except HagateError as e:
            raise HomeAssistantError(f"hagate did not revoke {call.data[ATTR_NAME]}: {e}") from e
        await entry.runtime_data.coordinator.async_request_refresh()

    async def enrol(call: ServiceCall) -> ServiceResponse:
        entry = entry_of(call)
        try:
            link: dict[str, Any] = await entry.runtime_data.client.enrol(
                call.data[ATTR_NAME], call.data[ATTR_TTL]
            )
        except HagateError as e:
            raise HomeAssistantError(f"hagate made no link for {call.data[ATTR_NAME]}: {e}") from e
        await entry.runtime_data.coordinator.async_request_refresh()
        return {k: link[k] for k in ("name", "url", "password", "expires", "qr") if k in link}

    hass.services.async_register(DOMAIN, SERVICE_REVOKE, revoke, schema=REVOKE_SCHEMA)
    hass.services.async_register(
        DOMAIN,
        SERVICE_ENROL,
        enrol,
        schema=ENROL_SCHEMA,
        supports_response=SupportsResponse.ONLY,
    )
    return True


async def async_setup_entry(hass: HomeAssistant, entry: HagateConfigEntry) -> bool:
    client = HagateClient(
        async_get_clientsession(hass), entry.data[CONF_URL], entry.data[CONF_TOKEN]
    )
    coordinator = HagateCoordinator(hass, entry, client)
    await coordinator.async_config_entry_first_refresh()
    entry.runtime_data = HagateData(client, coordinator)
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    return True


async def async_unload_entry(hass: HomeAssistant, entry: HagateConfigEntry) -> bool:
    unloaded = await hass.config_entries.async_unload_platforms(entry, PLATFORMS)
    if unloaded:
        entry.runtime_data.coordinator.clear_repairs()
    return unloaded
