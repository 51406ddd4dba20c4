"""Constants of the hagate integration."""

from __future__ import annotations

from datetime import timedelta
from typing import Final

DOMAIN: Final = "hagate"
CONF_TOKEN: Final = "token"  # the console's API token (`hagate console token create NAME`)
SCAN_INTERVAL: Final = timedelta(seconds=30)
ALERT_EVENT: Final = "hagate_alert"  # what hagate's alerts fire on the event bus
SERVICE_REVOKE: Final = "revoke_certificate"
SERVICE_ENROL: Final = "enrol_device"
