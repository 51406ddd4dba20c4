"""The base of hagate's entities: one device per gateway, fed by the coordinator."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from homeassistant.core import callback
from homeassistant.helpers.device_registry import DeviceEntryType, DeviceInfo
from homeassistant.helpers.entity import Entity
from homeassistant.helpers.entity_platform import AddEntitiesCallback
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from .const import DOMAIN
from .coordinator import HagateConfigEntry, HagateCoordinator


def add_as_they_come(
    entry: HagateConfigEntry,
    add: AddEntitiesCallback,
    section: str,
    key: str,
    make: Callable[[HagateCoordinator, str], Entity],
) -> None:
    """An entity for each object of the summary's `section` list (by its `key`), now and for
    each new one a later poll brings (a relay added, a certificate issued)."""
    coordinator = entry.runtime_data.coordinator
    known: set[str] = set()

    @callback
    def add_new() -> None:
        new = [str(i[key]) for i in coordinator.data[section] if str(i[key]) not in known]
        known.update(new)
        if new:
            add([make(coordinator, value) for value in new])

    add_new()
    entry.async_on_unload(coordinator.async_add_listener(add_new))


class HagateEntity(CoordinatorEntity[HagateCoordinator]):
    _attr_has_entity_name = True

    def __init__(self, coordinator: HagateCoordinator, key: str) -> None:
        super().__init__(coordinator)
        entry = coordinator.config_entry
        self._attr_unique_id = f"{entry.unique_id}_{key}"
        self._attr_device_info = DeviceInfo(
            identifiers={(DOMAIN, str(entry.unique_id))},
            name="hagate",
            model=str(entry.unique_id),
            manufacturer="hagate",
            entry_type=DeviceEntryType.SERVICE,
            configuration_url=f"{entry.data['url'].rstrip('/')}/console/",
        )

    def _item(self, section: str, key: str, value: str) -> dict[str, Any] | None:
        """The object of the summary's `section` list whose `key` is `value` (None: gone)."""
        for item in self.coordinator.data[section]:
            if item[key] == value:
                found: dict[str, Any] = item
                return found
        return None
