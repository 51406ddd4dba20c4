"""One request's record: filled in as the request walks the gateway, turned into a typed
event in one place, and observed once by the event store, the metrics and the alerts.

Rules of this module:
  1. `Recorder.observe` is the only place an event row is made; each request makes one.
  2. What the event carries is `hagate.events.schema.Event`, field for field: the table's
     columns, typed.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hagate.events.schema import Event
from hagate.gateway.identity import NO_CERT, CertState
from hagate.geoip import Location

if TYPE_CHECKING:
    from hagate.events.store import EventStore
    from hagate.gateway.channel import Channel
    from hagate.watch.alerts import Alerter
    from hagate.watch.metrics import Metrics

REVOKED_FIELD = "cf.tls_client_auth.cert_revoked"

_ID_PREFIX = os.urandom(4).hex()
_ID_COUNTER = itertools.count(1)


def new_request_id() -> str:
    """16 hex digits, unique across processes and restarts: a random prefix drawn once per
    process and a counter (an id names a request in logs; it is not a secret)."""
    # hex() of the counter's low 32 bits over a 33rd: always "0x1" and 8 digits (half the
    # cost of a format spec)
    return _ID_PREFIX + hex(next(_ID_COUNTER) & 0xFFFFFFFF | 0x100000000)[3:]


def _reseed_request_ids() -> None:
    global _ID_PREFIX
    _ID_PREFIX = os.urandom(4).hex()


os.register_at_fork(after_in_child=_reseed_request_ids)  # workers must not share a prefix


@dataclass(slots=True)
class Exchange:
    """One request's record, as it is being served."""

    request_id: str
    client_ip: str
    started: float = field(default_factory=time.monotonic)
    method: str = ""
    path: str = ""
    host: str = ""
    user_agent: str = ""
    status: int = 0
    action: str = "allow"
    rule: str | None = None
    reason: str | None = None
    bytes_in: int = 0
    bytes_out: int = 0
    location: Location | None = None  # when already looked up
    answered: bool = False  # a response head has gone to the client: nothing more may follow
    # Let in without a certificate by a credential bound to one: (its name, its SHA-256).
    bound_to: tuple[str, str] | None = None


class Recorder:
    """Where a gateway's events go: the event store (which also writes the log line), the
    metrics (with an admin listener) and the alerts (when configured)."""

    def __init__(self, lookup: Callable[[str], Location], events: EventStore | None = None) -> None:
        self.lookup = lookup
        self.events = events
        self.metrics: Metrics | None = None
        self.alerts: Alerter | None = None

    def observe(self, ex: Exchange, sni: str | None, cert: CertState) -> None:
        loc = ex.location
        if loc is None:
            loc = self.lookup(ex.client_ip) if ex.client_ip else Location()
        asn, country = loc.asn or None, loc.country or None
        if self.events is not None:  # its writer also writes the log line
            self.events.record(
                Event(
                    time.time(),
                    ex.request_id,
                    ex.client_ip or None,
                    asn,
                    country,
                    sni,
                    ex.host or None,
                    ex.method or None,
                    ex.path or None,
                    ex.user_agent or None,
                    cert.name,
                    cert.sha256,
                    ex.rule,
                    ex.action,
                    ex.status or None,
                    ex.bytes_in,
                    ex.bytes_out,
                    # to the microsecond (round() with digits goes through a decimal string)
                    round((time.monotonic() - ex.started) * 1e6) / 1000,
                    ex.reason,
                )
            )
        if self.metrics is not None:
            self.metrics.event(ex.action, ex.status, ex.reason)
        if self.alerts is not None:
            self.alerts.observe(
                ex.action,
                ex.client_ip,
                asn,
                country,
                cert.name,
                cert.sha256,
                cert.verified,
                bool(cert.fields.get(REVOKED_FIELD)),
                ex.rule,
                bound_to=ex.bound_to if ex.action != "block" else None,
            )

    def note(self, action: str, reason: str, sni: str | None = None) -> None:
        """An event that is not a client's request (the certificate renewed, say)."""
        self.observe(Exchange(new_request_id(), "", action=action, reason=reason), sni, NO_CERT)


def write_page(client: Channel, ex: Exchange, response: bytes) -> None:
    """Send one of the gateway's own pages; its body counts as the bytes sent."""
    client.write(response)
    ex.answered = True
    ex.bytes_out += len(response) - response.find(b"\r\n\r\n") - 4
