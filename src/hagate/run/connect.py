"""`hagate connect`: the gateway behind connectors, in one or more worker processes.

Each worker keeps its own connection to every relay; a relay spreads new streams over all of
a hostname's connectors, so every worker (and core) takes its share.
"""

from __future__ import annotations

import functools
import sys

from hagate import pidfile
from hagate.errors import HagateError
from hagate.eventloop import run_event_loop
from hagate.events.store import EVENTS_NAME
from hagate.events.store import connect as connect_events
from hagate.gateway.connection import serve_connection
from hagate.gateway.server import Gateway, Setup
from hagate.run.gateway import load_setup, prepare_admin, run_gateway
from hagate.run.workers import fork_workers
from hagate.state import StateDir
from hagate.tunnel.connector import Connector, RelayAddress, pinned_fingerprint, token_claim
from hagate.watch.status import Links


def run_connect(
    state: StateDir,
    relays: list[RelayAddress],
    token: str,
    fingerprint: str | None,
    log_format: str,
    workers: int = 1,
    relay_ca: str | None = None,
) -> None:
    """The home side, with its pid in the state directory while it runs."""
    setup = load_setup(state)
    # Plain errors now, before any worker, rather than a retry loop later.
    claim = token_claim(token)
    served = setup.config.hostname
    if claim.hostname != served:
        raise HagateError(
            f"the connector token is for {claim.hostname}, but this gateway serves {served} "
            f"(hostname: in hagate.yaml); make one for it on the relay: hagate relay token "
            f"--hostname {served}"
        )
    if fingerprint is not None:
        pinned_fingerprint(fingerprint)
    if setup.config.gateway.proxy_trusted:
        print(
            "hagate: gateway.proxy_protocol applies to `hagate serve` on its own port; streams "
            "from a relay carry the client's address already (a front before the relay: "
            "relay run --proxy-protocol-from)",
            file=sys.stderr,
            flush=True,
        )
    with pidfile.hold(state, "hagate connect"):
        _run_workers(state, setup, relays, token, fingerprint, log_format, workers, relay_ca)


def _run_workers(
    state: StateDir,
    setup: Setup,
    relays: list[RelayAddress],
    token: str,
    fingerprint: str | None,
    log_format: str,
    workers: int,
    relay_ca: str | None = None,
) -> None:
    def work(_: int = 0) -> None:
        async def feed(gateway: Gateway, links: Links) -> None:
            accept = functools.partial(serve_connection, gateway)
            connector = Connector(
                accept, relays, token, fingerprint, relay_ca, links, gateway.metrics
            )
            await connector.run()

        run_event_loop(lambda: run_gateway(state, setup, log_format, feed, role="connect"))

    admin = prepare_admin(state, setup.config)
    if workers <= 1:
        started = admin() if admin else None
        try:
            work()
        finally:
            if started is not None:
                started.close()
        return
    connect_events(state / EVENTS_NAME).close()  # create the store once, before the workers

    def after_fork() -> None:
        if admin:
            admin()  # in the supervising process, adding up the workers' metrics

    fork_workers(workers, work, after_fork)
