"""Counts from hagate's event log and audit, and each certificate's last use."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddEntitiesCallback

from .coordinator import HagateConfigEntry, HagateCoordinator
from .entity import HagateEntity, add_as_they_come


@dataclass(frozen=True, kw_only=True)
class CountDescription(SensorEntityDescription):
    value: Callable[[dict[str, Any]], int]


COUNTS = (
    CountDescription(
        key="let_in_last_hour",
        translation_key="let_in_last_hour",
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement="requests",
        value=lambda d: int(d["last_hour"]["let_in"]),
    ),
    CountDescription(
        key="blocked_last_hour",
        translation_key="blocked_last_hour",
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement="requests",
        value=lambda d: int(d["last_hour"]["blocked"]),
    ),
    CountDescription(
        key="blocked_sources_today",
        translation_key="blocked_sources_today",
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement="addresses",
        value=lambda d: int(d["blocked_sources_today"]),
    ),
    CountDescription(
        key="high_findings",
        translation_key="high_findings",
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement="findings",
        value=lambda d: len(d["audit"]["high"]),
    ),
)


async def async_setup_entry(
    hass: HomeAssistant, entry: HagateConfigEntry, add: AddEntitiesCallback
) -> None:
    coordinator = entry.runtime_data.coordinator
    add([Count(coordinator, d) for d in COUNTS])
    add_as_they_come(entry, add, "devices", "name", LastUse)


class Count(HagateEntity, SensorEntity):
    entity_description: CountDescription

    def __init__(self, coordinator: HagateCoordinator, description: CountDescription) -> None:
        super().__init__(coordinator, description.key)
        self.entity_description = description

    @property
    def native_value(self) -> int:
        return self.entity_description.value(self.coordinator.data)


class LastUse(HagateEntity, SensorEntity):
    """When a certificate was last presented, with where from; its status as an attribute (a
    revoked certificate keeps its entity, so its history stays)."""

    _attr_device_class = SensorDeviceClass.TIMESTAMP
    _attr_translation_key = "last_use"

    def __init__(self, coordinator: HagateCoordinator, name: str) -> None:
        super().__init__(coordinator, f"certificate_{name}_last_use")
        self.name_of_certificate = name
        self._attr_translation_placeholders = {"name": name}

    def _device(self) -> dict[str, Any] | None:
        return self._item("devices", "name", self.name_of_certificate)

    @property
    def native_value(self) -> datetime | None:
        device = self._device()
        last = device.get("last_used") if device else None
        if not last or last.get("time") is None:
            return None
        return datetime.fromtimestamp(float(last["time"]), UTC)

    @property
    def extra_state_attributes(self) -> dict[str, Any]:
        device = self._device()
        if device is None:
            return {"status": "removed"}
        last = device.get("last_used") or {}
        return {
            "status": device["status"],
            "admin": device["admin"],
            "not_after": device["not_after"],
            **{k: last.get(k) for k in ("ip", "asn", "country", "user_agent")},
        }
