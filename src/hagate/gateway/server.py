"""The gateway: what its connections share (config, certificates, the upstream pool, the
event recorder, the counts of open connections).

Connections come in through connection.serve_connection(gateway, sock, peer), and a request
walks the gateway's modules once, in this order:
  connection.py  accept: the caps on open connections, the ClientHello, ACME's validation,
                 TLS; then each request head of the connection, read within its deadlines
  request.py     one request: its head parsed and judged (verdict.py), then answered with
                 one of the gateway's pages (pages.py) or forwarded
  proxy.py       the forward to Home Assistant, bodies framed by hagate.http1.bodies
  record.py      the request's event, made once and observed by the store, metrics, alerts
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography import x509

from hagate.acme.follow import FollowedContext
from hagate.acme.store import AcmeFiles
from hagate.config import Config
from hagate.credentials.binder import Binder
from hagate.credentials.webhooks import WebhookList
from hagate.enrol.service import Enrolments
from hagate.events.store import EventStore
from hagate.gateway.console import ConsolePass
from hagate.gateway.identity import Inventory
from hagate.gateway.record import Recorder
from hagate.gateway.upstream import UpstreamPool
from hagate.geoip import GeoIP
from hagate.rules.ruleset import RuleSet

if TYPE_CHECKING:
    from hagate.watch.metrics import Metrics


@dataclass
class Setup:
    """What a gateway needs that SIGHUP may replace: config, rules, GeoIP."""

    config: Config
    ruleset: RuleSet
    geoip: GeoIP


class Gateway:
    def __init__(
        self,
        setup: Setup,
        contexts: FollowedContext,
        inventory: Inventory,
        ca_cert: x509.Certificate,
        events: EventStore | None = None,
        acme_files: AcmeFiles | None = None,
        enrolments: Enrolments | None = None,
        console: ConsolePass | None = None,
        binder: Binder | None = None,
    ) -> None:
        self.setup = setup
        self.binder = binder  # Home Assistant credentials bound to certificates
        self.webhooks: WebhookList | None = None  # the webhooks Home Assistant registered
        self.enrolments = enrolments  # the one-time enrolment links (/.hagate/enrol/...)
        self.console = console  # the console for admin certificates (/.hagate/console/...)
        self.contexts = contexts
        self.acme_files = acme_files  # where tls-alpn-01 challenges are published
        self.inventory = inventory
        self.ca_cert = ca_cert
        self.recorder = Recorder(lambda ip: self.setup.geoip.lookup(ip), events)
        self.pool = UpstreamPool(setup.config.upstream, setup.config.gateway.connect_timeout)
        self.closing = False
        self.connections: set[asyncio.Task[None]] = set()  # serving requests over TLS
        self.open_total = 0  # accepted and not yet closed
        self.open_by_ip: dict[str, int] = {}
        self.busy = 0  # requests in flight
        self.used_at: dict[str, float] = {}  # certificate sha256 -> last use put on record
        # Called with the open-connection count each time a connection closes (memory.py
        # gives memory back to the system once a flood has gone).
        self.on_close: Callable[[int], None] | None = None

    @property
    def metrics(self) -> Metrics | None:
        return self.recorder.metrics
