"""Each relay the connector keeps a link to: connected or not (a relay seen once stays, and
reads as not connected while the connector no longer reports it)."""

from __future__ import annotations

from typing import Any

from homeassistant.components.binary_sensor import (
    BinarySensorDeviceClass,
    BinarySensorEntity,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddEntitiesCallback

from .coordinator import HagateConfigEntry, HagateCoordinator
from .entity import HagateEntity, add_as_they_come


async def async_setup_entry(
    hass: HomeAssistant, entry: HagateConfigEntry, add: AddEntitiesCallback
) -> None:
    add_as_they_come(entry, add, "relays", "relay", RelayConnected)


class RelayConnected(HagateEntity, BinarySensorEntity):
    _attr_device_class = BinarySensorDeviceClass.CONNECTIVITY
    _attr_translation_key = "relay"

    def __init__(self, coordinator: HagateCoordinator, relay: str) -> None:
        super().__init__(coordinator, f"relay_{relay}")
        self.relay = relay
        self._attr_translation_placeholders = {"relay": relay}

    def _status(self) -> dict[str, Any] | None:
        return self._item("relays", "relay", self.relay)

    @property
    def is_on(self) -> bool:
        status = self._status()
        return bool(status and status["up"])

    @property
    def extra_state_attributes(self) -> dict[str, Any]:
        status = self._status()
        return {"since": status["since"]} if status else {}
