"""A test's stand-in for the Supervisor (which cannot run here): on start, it hands Home
Assistant what an app announced, exactly as Home Assistant's own hassio integration does
with a Supervisor's discovery message (homeassistant/components/hassio/discovery.py)."""

from __future__ import annotations

import uuid
from typing import Any

from homeassistant.config_entries import SOURCE_HASSIO
from homeassistant.core import HomeAssistant
from homeassistant.helpers import discovery_flow
from homeassistant.helpers.service_info.hassio import HassioServiceInfo

DOMAIN = "supervisor_discovery"


async def async_setup(hass: HomeAssistant, config: dict[str, Any]) -> bool:
    announced = config[DOMAIN]
    key = uuid.uuid4().hex
    discovery_flow.async_create_flow(
        hass,
        announced["service"],
        context={"source": SOURCE_HASSIO},
        data=HassioServiceInfo(
            config=dict(announced["config"]), name="hagate", slug="local_hagate", uuid=key
        ),
        discovery_key=discovery_flow.DiscoveryKey(domain="hassio", key=key, version=1),
    )
    return True
