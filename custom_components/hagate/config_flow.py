"""Setting hagate up: by hand (its API's URL and a token), found by the hagate app (which
announces itself through the Supervisor with a token made for Home Assistant), or again
with a new token when hagate refuses the old one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import voluptuous as vol
from homeassistant.config_entries import ConfigFlow, ConfigFlowResult
from homeassistant.const import CONF_URL
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.service_info.hassio import HassioServiceInfo

from .api import HagateAuthError, HagateClient, HagateError
from .const import CONF_TOKEN, DOMAIN
from .coordinator import LOGGER

DEFAULT_URL = "http://127.0.0.1:9464"  # hagate's admin listener, by default


class HagateConfigFlow(ConfigFlow, domain=DOMAIN):
    VERSION = 1

    def __init__(self) -> None:
        self._found: dict[str, Any] = {}
        self._addon = "hagate"

    async def _check(self, url: str, token: str) -> tuple[str | None, str]:
        """(an error key or None, hagate's hostname)."""
        client = HagateClient(async_get_clientsession(self.hass), url, token)
        try:
            summary = await client.summary()
        except HagateAuthError:
            return "invalid_auth", ""
        except HagateError as e:
            LOGGER.debug("hagate at %s: %s", url, e)
            return "cannot_connect", ""
        return None, str(summary["hostname"])

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        errors: dict[str, str] = {}
        if user_input is not None:
            url = user_input[CONF_URL].strip().rstrip("/")
            token = user_input[CONF_TOKEN].strip()
            error, hostname = await self._check(url, token)
            if error is None:
                await self.async_set_unique_id(hostname)
                self._abort_if_unique_id_configured(updates={CONF_URL: url, CONF_TOKEN: token})
                return self.async_create_entry(
                    title=hostname, data={CONF_URL: url, CONF_TOKEN: token}
                )
            errors["base"] = error
        schema = vol.Schema(
            {
                vol.Required(CONF_URL, default=(user_input or {}).get(CONF_URL, DEFAULT_URL)): str,
                vol.Required(CONF_TOKEN): str,
            }
        )
        return self.async_show_form(step_id="user", data_schema=schema, errors=errors)

    async def async_step_hassio(self, discovery_info: HassioServiceInfo) -> ConfigFlowResult:
        """The hagate app announced its API (hagate.app.discovery)."""
        url = str(discovery_info.config["url"]).rstrip("/")
        token = str(discovery_info.config["token"])
        error, hostname = await self._check(url, token)
        if error is not None:
            return self.async_abort(reason=error)
        await self.async_set_unique_id(hostname)
        self._abort_if_unique_id_configured(updates={CONF_URL: url, CONF_TOKEN: token})
        self._found = {"hostname": hostname, CONF_URL: url, CONF_TOKEN: token}
        self._addon = discovery_info.name or "hagate"
        self.context["title_placeholders"] = {"hostname": hostname}
        return await self.async_step_hassio_confirm()

    async def async_step_hassio_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        if user_input is not None:
            return self.async_create_entry(
                title=self._found["hostname"],
                data={CONF_URL: self._found[CONF_URL], CONF_TOKEN: self._found[CONF_TOKEN]},
            )
        return self.async_show_form(
            step_id="hassio_confirm",
            description_placeholders={"addon": self._addon, "hostname": self._found["hostname"]},
        )

    async def async_step_reauth(self, entry_data: Mapping[str, Any]) -> ConfigFlowResult:
        return await self.async_step_reauth_confirm()

    async def async_step_reauth_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        entry = self._get_reauth_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            token = user_input[CONF_TOKEN].strip()
            error, hostname = await self._check(entry.data[CONF_URL], token)
            if error is None and hostname != entry.unique_id:
                error = "other_gateway"
            if error is None:
                return self.async_update_reload_and_abort(entry, data_updates={CONF_TOKEN: token})
            errors["base"] = error
        return self.async_show_form(
            step_id="reauth_confirm",
            data_schema=vol.Schema({vol.Required(CONF_TOKEN): str}),
            errors=errors,
            description_placeholders={"url": entry.data[CONF_URL]},
        )
