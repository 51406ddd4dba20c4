"""The app tells Home Assistant where hagate's API is, so its integration sets itself up.

Rules:
  1. The Supervisor passes what an app announces (POST /discovery, service `hagate`) to Home
     Assistant, which offers the integration with it: the API's URL on the Supervisor's
     network (the app's own name) and a token made for it.
  2. The token is made once, named for Home Assistant, and kept 0600 in the state directory so
     that every start announces the same one; a revoked one is replaced by a new one.
  3. An announcement that fails is said in the app's log and changes nothing else: the gateway
     starts all the same.
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Mapping

from hagate.app.options import API_PORT
from hagate.console.access import ConsoleAccess
from hagate.errors import HagateError
from hagate.state import StateDir, atomic_write

SERVICE = "hagate"  # config.yaml's discovery, and the integration's domain
SUPERVISOR = "http://supervisor"
TOKEN_NAME = "home-assistant"
TOKEN_FILE = "integration-token"


def integration_token(state: StateDir) -> str:
    """The API token Home Assistant's integration is given: the kept one while it is valid."""
    access = ConsoleAccess(state)
    path = state / TOKEN_FILE
    try:
        kept = path.read_text(encoding="utf-8").strip()
    except OSError:
        kept = ""
    if kept and access.token_name(kept) is not None:
        return kept
    taken = {t.name for t in access.tokens()}
    name = TOKEN_NAME
    n = 1
    while name in taken:
        n += 1
        name = f"{TOKEN_NAME}-{n}"
    secret = access.create_token(name)
    atomic_write(path, secret.encode(), mode=0o600)
    return secret


def announce(
    state: StateDir, supervisor_token: str, environ: Mapping[str, str] | None = None
) -> str:
    """Tell the Supervisor (and so Home Assistant) where the API is; what happened, in words.
    `environ` may move the Supervisor (HAGATE_APP_SUPERVISOR) and the name Home Assistant
    calls the app by (HAGATE_APP_API_HOST): the tests run both on loopback."""
    environ = {} if environ is None else environ
    supervisor = environ.get("HAGATE_APP_SUPERVISOR", SUPERVISOR).rstrip("/")
    host = environ.get("HAGATE_APP_API_HOST") or socket.gethostname()
    url = f"http://{host}:{API_PORT}"
    try:
        token = integration_token(state)
    except (HagateError, OSError) as e:
        return f"Home Assistant not told about the API (no token: {e})"
    body = json.dumps({"service": SERVICE, "config": {"url": url, "token": token}}).encode()
    request = urllib.request.Request(
        supervisor + "/discovery",
        data=body,
        method="POST",
        headers={"Authorization": f"Bearer {supervisor_token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as r:
            r.read(1 << 16)
    except urllib.error.HTTPError as e:
        return f"Home Assistant not told about the API: the Supervisor answered {e.code}"
    except (OSError, ValueError) as e:
        return f"Home Assistant not told about the API: the Supervisor is unreachable ({e})"
    return f"Home Assistant told about the API at {url} (its integration is offered)"
