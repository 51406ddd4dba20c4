"""hagate's alerts (`hagate_alert` events, fired by hagate itself) in the logbook, in the
plain words hagate wrote for them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from homeassistant.components.logbook.const import LOGBOOK_ENTRY_MESSAGE, LOGBOOK_ENTRY_NAME
from homeassistant.core import Event, HomeAssistant, callback

from .const import ALERT_EVENT, DOMAIN


@callback
def async_describe_events(
    hass: HomeAssistant,
    async_describe_event: Callable[[str, str, Callable[[Event], dict[str, Any]]], None],
) -> None:
    @callback
    def describe(event: Event) -> dict[str, Any]:
        data = event.data
        message = str(data.get("message") or data.get("kind") or "alert")
        return {
            LOGBOOK_ENTRY_NAME: f"hagate ({data['hostname']})"
            if data.get("hostname")
            else "hagate",
            LOGBOOK_ENTRY_MESSAGE: message[:1].lower() + message[1:],
        }

    async_describe_event(DOMAIN, ALERT_EVENT, describe)
