"""What a state directory gets its certificate for: the gateway's hostname (from hagate.yaml)
or the relay's own name (from relay.json), with its ACME settings."""

from __future__ import annotations

from dataclasses import dataclass

from hagate.acme.store import AcmeFiles
from hagate.config import AcmeSettings, load_config
from hagate.errors import HagateError
from hagate.state import StateDir


@dataclass(frozen=True)
class Site:
    kind: str  # "gateway" or "relay"
    name: str
    settings: AcmeSettings
    files: AcmeFiles


def load_site(state: StateDir) -> Site:
    from hagate.tunnel.relaystate import RELAY_CONFIG, RelayState

    if state.config_path.exists():
        cfg = load_config(state.config_path)
        if cfg.acme is None:
            raise HagateError(
                f"{state.config_path} has no tls.acme section: the server certificate is "
                "hagate's own CA's (docs/certificates.md says how to use an ACME CA)"
            )
        return Site("gateway", cfg.hostname, cfg.acme, AcmeFiles(state))
    if (state / RELAY_CONFIG).exists():
        relay = RelayState.load(state)
        if relay.acme is None:
            raise HagateError(
                f"the relay in {state.path} pins its own certificate (made by hagate relay init "
                "without --acme)"
            )
        return Site("relay", relay.hostname, relay.acme, AcmeFiles(state))
    raise HagateError(f"{state.path} holds neither a gateway nor a relay: run hagate init first")
