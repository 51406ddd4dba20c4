"""The Home Assistant app's options (the form a person fills in, `/data/options.json`) and the
keys of `hagate.yaml` they own.

Rules:
  1. `parse_options` checks the form as a whole and names the option that is wrong; nothing
     else is read from it.
  2. `apply_options` changes only the keys the options own (`hostname`, `upstream`, `listen`,
     and `home_assistant` with `alerts` while the Supervisor's token is there) and keeps
     everything else in the file, the rules and the comments included, as it was. It is pure:
     text in, text out.
  3. Secrets (the connector token, the relay's fingerprint) stay in the options: they are
     passed to `hagate connect` in its environment and never written into hagate.yaml.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

from ruamel.yaml.comments import CommentedMap

from hagate import config
from hagate.configedit import yaml_editor
from hagate.errors import HagateError
from hagate.tunnel.connector import RelayAddress

MODES = ("relay", "port_forward")
LOG_LEVELS = ("info", "warning")
# Home Assistant as an app reaches it on the Supervisor's network, and the Supervisor's proxy
# to Home Assistant's API, which takes the app's own token (SUPERVISOR_TOKEN).
UPSTREAM = "http://homeassistant:8123"
SUPERVISOR_CORE = "http://supervisor/core"
SUPERVISOR_TOKEN_FILE = "supervisor-token"
INGRESS_LISTEN = "0.0.0.0:8099"  # config.yaml's ingress_port (the Supervisor's default)
# The API for Home Assistant's integration, on the Supervisor's network (config.yaml maps no
# port to it, so nothing outside the machine reaches it).
API_PORT = 8100
API_LISTEN = f"0.0.0.0:{API_PORT}"


@dataclass(frozen=True)
class AppOptions:
    hostname: str
    mode: str
    relay: RelayAddress | None
    connector_token: str | None
    relay_fingerprint: str | None
    listen_port: int
    log_level: str

    @property
    def listen(self) -> str:
        return f"0.0.0.0:{self.listen_port}"


def _text(raw: dict[str, Any], key: str) -> str | None:
    value = raw.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise HagateError(f"option {key}: expected text, got {type(value).__name__}")
    return value.strip() or None


def parse_options(raw: Any) -> AppOptions:
    if not isinstance(raw, dict):
        raise HagateError("the app's options are not a mapping (options.json)")
    hostname = _text(raw, "hostname")
    if hostname is None:
        raise HagateError("option hostname: the public name of your Home Assistant is required")
    try:
        hostname = config.validate_hostname(hostname)
    except HagateError as e:
        raise HagateError(f"option hostname: {e}") from None
    mode = raw.get("mode", "relay")
    if mode not in MODES:
        raise HagateError(f"option mode: {mode!r} is not one of {', '.join(MODES)}")
    port = raw.get("listen_port", 8443)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise HagateError(f"option listen_port: {port!r} is not a port (1-65535)")
    level = raw.get("log_level", "info")
    if level not in LOG_LEVELS:
        raise HagateError(f"option log_level: {level!r} is not one of {', '.join(LOG_LEVELS)}")
    relay_text = _text(raw, "relay")
    token, fingerprint = _text(raw, "connector_token"), _text(raw, "relay_fingerprint")
    relay = None
    if mode == "relay":
        missing = [
            name
            for name, value in (
                ("relay", relay_text),
                ("connector_token", token),
                ("relay_fingerprint", fingerprint),
            )
            if value is None
        ]
        if missing:
            raise HagateError(
                f"mode relay needs the option(s) {', '.join(missing)}: from the relay, "
                "`hagate relay init` prints the fingerprint and `hagate relay token` the token"
            )
        assert relay_text is not None
        try:
            relay = RelayAddress.parse(relay_text if ":" in relay_text else f"{relay_text}:443")
        except HagateError as e:
            raise HagateError(f"option relay: {e}") from None
    return AppOptions(hostname, mode, relay, token, fingerprint, port, level)


def apply_options(
    text: str, options: AppOptions, supervisor_core: str | None, upstream: str = UPSTREAM
) -> str:
    """`text` (hagate.yaml) with the keys the options own set from them; `supervisor_core`:
    Home Assistant's API through the Supervisor, for the alerts (None: no token for it)."""
    y = yaml_editor()
    doc = y.load(text)
    if not isinstance(doc, CommentedMap):
        raise HagateError("hagate.yaml is not a YAML mapping; fix it first (hagate rules check)")
    doc["hostname"] = options.hostname
    doc["upstream"] = upstream
    doc["listen"] = options.listen
    # The console in Home Assistant's sidebar (ingress): only the Supervisor's proxy is let in.
    admin = doc.get("admin")
    if not isinstance(admin, CommentedMap):
        admin = doc["admin"] = CommentedMap()
    ingress = admin.get("ingress")
    if not isinstance(ingress, CommentedMap):
        ingress = admin["ingress"] = CommentedMap()
    ingress["listen"] = INGRESS_LISTEN
    if admin.get("listen") is None:  # set once; a listener the owner moved stays moved
        admin.insert(0, "listen", API_LISTEN)
    if supervisor_core is not None:
        # Home Assistant's API through the Supervisor, for the alerts and the webhook list.
        ha = doc.get("home_assistant")
        if not isinstance(ha, CommentedMap):
            ha = doc["home_assistant"] = CommentedMap()
        ha["url"] = supervisor_core
        ha["token_file"] = SUPERVISOR_TOKEN_FILE
        alerts = doc.get("alerts")
        if not isinstance(alerts, CommentedMap):
            alerts = doc["alerts"] = CommentedMap()
        own = alerts.get("home_assistant")
        if isinstance(own, CommentedMap) and own.get("token_file") == SUPERVISOR_TOKEN_FILE:
            del alerts["home_assistant"]  # what earlier versions wrote: now the top level's
    out = io.StringIO()
    y.dump(doc, out)
    return out.getvalue()
