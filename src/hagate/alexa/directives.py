"""Alexa Smart Home directives as Amazon sends them (payloadVersion 3), for trying a bundle."""

from __future__ import annotations

import uuid
from typing import Any

KINDS = ("discover", "turn-on", "turn-off", "report-state")


def endpoint_id(entity_id: str) -> str:
    """Home Assistant's endpoint id for an entity: `light.kitchen` is `light#kitchen`."""
    return entity_id.replace(".", "#", 1)


def directive(kind: str, entity_id: str | None = None, token: str = "unused") -> dict[str, Any]:
    """The request Alexa would send. `token` is the access token Alexa passes along (the
    handler uses it only with --token-mode directive)."""
    scope = {"type": "BearerToken", "token": token}
    header: dict[str, Any] = {"payloadVersion": "3", "messageId": str(uuid.uuid4())}
    if kind == "discover":
        header |= {"namespace": "Alexa.Discovery", "name": "Discover"}
        return {"directive": {"header": header, "payload": {"scope": scope}}}
    if kind not in KINDS:
        raise ValueError(f"unknown directive {kind!r}: one of {', '.join(KINDS)}")
    if not entity_id or "." not in entity_id:
        raise ValueError(f"{kind} needs an entity id such as input_boolean.kitchen_light")
    namespace, name = {
        "turn-on": ("Alexa.PowerController", "TurnOn"),
        "turn-off": ("Alexa.PowerController", "TurnOff"),
        "report-state": ("Alexa", "ReportState"),
    }[kind]
    header |= {"namespace": namespace, "name": name, "correlationToken": str(uuid.uuid4())}
    endpoint = {"scope": scope, "endpointId": endpoint_id(entity_id), "cookie": {}}
    return {"directive": {"header": header, "endpoint": endpoint, "payload": {}}}
