"""Running the gateway: sockets, worker processes, signals.

- `--workers N` forks N processes, each with its own SO_REUSEPORT socket on the same port,
  so the kernel spreads connections over every core. One worker runs in-process.
- SIGTERM: stop accepting, let in-flight requests finish up to `drain_timeout`, then close.
- SIGHUP: reload config and rules; a broken config is reported and the old one kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from hagate import pidfile
from hagate.acme.renewal import Attempt, Outcome
from hagate.acme.renewer import Renewer
from hagate.acme.store import AcmeFiles
from hagate.config import (
    Config,
    HomeAssistantSettings,
    load_config,
    needs_restart,
    parse_listen,
)
from hagate.credentials.binder import Binder
from hagate.credentials.bindings import Bindings
from hagate.credentials.webhooks import WebhookList
from hagate.enrol.service import Enrolments
from hagate.errors import HagateError
from hagate.eventloop import bind, run_event_loop
from hagate.events.store import EVENTS_NAME, EventStore
from hagate.events.store import connect as connect_events
from hagate.gateway.connection import serve_connection
from hagate.gateway.console import ConsolePass
from hagate.gateway.identity import Inventory
from hagate.gateway.server import Gateway, Setup
from hagate.gateway.tls import server_contexts
from hagate.gateway.upstream import UpstreamPool
from hagate.geoip import GeoIP
from hagate.memory import AfterFlood
from hagate.pki.authority import load_cert
from hagate.rules.ruleset import ruleset_from_config
from hagate.run.workers import fork_workers
from hagate.state import CA_CERT, INVENTORY_NAME, StateDir
from hagate.watch.alerts import Alerter
from hagate.watch.runtime import Watch
from hagate.watch.status import Links

if TYPE_CHECKING:
    from hagate.console.listener import AdminServer


def load_setup(state: StateDir) -> Setup:
    cfg = load_config(state.config_path)
    return Setup(cfg, ruleset_from_config(cfg), GeoIP(cfg.asn_db, cfg.country_db))


async def serve_socket(
    state: StateDir,
    setup: Setup,
    sock: socket.socket,
    log_format: str,
    ready: Callable[[], None] | None = None,
) -> None:
    """Run one gateway on a listening socket until SIGTERM."""
    await run_gateway(
        state, setup, log_format, lambda gateway, _: accept_loop(gateway, sock), ready, "serve"
    )
    sock.close()


def build_gateway(state: StateDir, setup: Setup, events: EventStore | None) -> Gateway:
    """A gateway on this state directory's certificates, inventory and enrolments."""
    acme = AcmeFiles(state) if setup.config.acme is not None else None
    inventory = Inventory(state / INVENTORY_NAME)
    return Gateway(
        setup,
        server_contexts(state, acme.certificate_path if acme else None),
        inventory,
        load_cert(state / CA_CERT),
        events,
        acme,
        Enrolments(state, setup.config.hostname),
        ConsolePass(state) if setup.config.admin is not None else None,
        Binder(Bindings(state), inventory.holder, inventory.valid_names),
    )


def follow_acme(
    gateway: Gateway,
    state: StateDir,
    renewing: list[asyncio.Task[None] | None],
    reachable: Callable[[], bool],
) -> None:
    """After a reload that turned ACME on or off or changed it: the certificate source and
    the renewer follow the new config."""
    if renewing[0] is not None:
        renewing[0].cancel()
    acme = AcmeFiles(state) if gateway.setup.config.acme is not None else None
    gateway.acme_files = acme
    gateway.contexts = server_contexts(state, acme.certificate_path if acme else None)
    renewing[0] = start_renewer(gateway, reachable)


def follow_webhooks(
    gateway: Gateway,
    state: StateDir,
    listing: list[asyncio.Task[None] | None],
    before: HomeAssistantSettings | None,
) -> None:
    """The list of webhooks Home Assistant registered, kept while `home_assistant:` is
    configured: fetched at start, every few minutes, and again on each reload."""
    settings = gateway.setup.config.home_assistant
    if settings is not None and settings == before and gateway.webhooks is not None:
        gateway.webhooks.refresh()
        return
    if listing[0] is not None:
        listing[0].cancel()
        listing[0] = None
    gateway.webhooks = None
    if settings is not None:
        gateway.webhooks = WebhookList(state, settings)
        listing[0] = asyncio.create_task(gateway.webhooks.run())


def start_renewer(gateway: Gateway, reachable: Callable[[], bool]) -> asyncio.Task[None] | None:
    """The ACME renewer of this process, when `tls.acme` is configured; it renews only while
    the CA can reach the gateway (`reachable`: behind a connector, while a relay is up)."""
    settings = gateway.setup.config.acme
    if settings is None or gateway.acme_files is None:
        return None
    hostname = gateway.setup.config.hostname

    def say(text: str) -> None:
        print(f"hagate: acme: {text}", file=sys.stderr, flush=True)

    def report(attempt: Attempt) -> None:
        say(attempt.message)
        if attempt.outcome is Outcome.RENEWED:
            gateway.contexts.refresh()  # this process at once; the others within a second
        gateway.recorder.note(
            "acme_renewed" if attempt.outcome is Outcome.RENEWED else "acme_error",
            attempt.message,
            sni=hostname,
        )

    renewer = Renewer(
        gateway.acme_files,
        settings,
        hostname,
        report,
        reachable=reachable,
        say=say,
    )
    return asyncio.create_task(renewer.run())


def start_watch(
    state: StateDir, gateway: Gateway, events: EventStore, role: str, links: Links
) -> Watch:
    """Metrics (when an admin listener runs), alerts (when configured) and the status file."""
    from hagate.watch.metrics import ENV

    cfg = gateway.setup.config
    recorder = gateway.recorder
    if ENV in os.environ and cfg.admin is not None:
        from hagate.watch.metrics import Metrics

        recorder.metrics = Metrics()
    recorder.alerts = start_alerts(state, cfg)
    return Watch(
        state,
        role,
        cfg.hostname,
        links,
        events,
        recorder.metrics,
        recorder.alerts,
        cfg.alerts.cut_off_after if cfg.alerts else 300.0,
    )


def start_alerts(state: StateDir, cfg: Config) -> Alerter | None:
    if cfg.alerts is None:
        return None
    from hagate.watch.periodic import run_checks

    return Alerter(state, cfg.alerts, cfg.hostname, periodic=run_checks).start()


async def run_gateway(
    state: StateDir,
    setup: Setup,
    log_format: str,
    feed: Callable[[Gateway, Links], Any],
    ready: Callable[[], None] | None = None,
    role: str = "serve",
) -> None:
    """Run a gateway fed by `feed` (an accept loop, or a connector that says in `links` which
    relays are up) until SIGTERM."""
    loop = asyncio.get_running_loop()
    # The event store's writer process also writes the log line of each request.
    events = EventStore(state / EVENTS_NAME, setup.config.retention_days, log_format=log_format)
    gateway = build_gateway(state, setup, events.start())
    links = Links()
    # The CA validates the name through the front: behind relays, only while one is up.
    reachable = links.any_up if role == "connect" else (lambda: True)
    gateway.on_close = AfterFlood()
    watch = start_watch(state, gateway, events, role, links)
    watching = asyncio.create_task(watch.run())
    stop = asyncio.Event()

    renewing: list[asyncio.Task[None] | None] = [None]
    listing: list[asyncio.Task[None] | None] = [None]

    def reload() -> None:
        try:
            before = gateway.setup.config
            gateway.setup = load_setup(state)
            after = gateway.setup.config
            if (before.acme, before.hostname) != (after.acme, after.hostname):
                follow_acme(gateway, state, renewing, reachable)
            if (before.alerts, before.hostname) != (after.alerts, after.hostname):
                if gateway.recorder.alerts is not None:
                    gateway.recorder.alerts.close()
                gateway.recorder.alerts = watch.alerts = start_alerts(state, after)
            follow_webhooks(gateway, state, listing, before.home_assistant)
            if (before.upstream, before.gateway.connect_timeout) != (
                after.upstream,
                after.gateway.connect_timeout,
            ):
                gateway.pool.close()  # connections in use finish with the old upstream
                gateway.pool = UpstreamPool(after.upstream, after.gateway.connect_timeout)
            pending = needs_restart(before, after, listening=role != "connect")
            print(
                f"hagate: config reloaded ({len(gateway.setup.ruleset.rules)} rules)"
                + "".join(f"; {name} changed: restart to apply" for name in pending),
                file=sys.stderr,
                flush=True,
            )
        except HagateError as e:  # a bad token file too: the old alerter keeps going
            print(
                f"hagate: config NOT reloaded, keeping the old one: {e}",
                file=sys.stderr,
                flush=True,
            )

    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, reload)
    accepting = asyncio.create_task(feed(gateway, links))
    renewing[0] = start_renewer(gateway, reachable)
    follow_webhooks(gateway, state, listing, None)
    if ready:
        ready()
    try:
        await stop.wait()
    finally:
        accepting.cancel()
        for task in (renewing[0], listing[0]):
            if task is not None:
                task.cancel()
        gateway.closing = True
        deadline = time.monotonic() + gateway.setup.config.gateway.drain_timeout
        while gateway.busy and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for task in list(gateway.connections):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.gather(*gateway.connections, return_exceptions=True), 2)
        gateway.pool.close()
        watching.cancel()
        watch.close()
        events.close()


async def accept_loop(gateway: Gateway, sock: socket.socket) -> None:
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[None]] = set()
    while True:
        try:
            conn, peer = await loop.sock_accept(sock)
        except OSError:
            await asyncio.sleep(0.05)  # out of file descriptors, say: back off, keep serving
            continue
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        task = asyncio.create_task(serve_connection(gateway, conn, peer, own_listener=True))
        tasks.add(task)
        task.add_done_callback(tasks.discard)


def serve(state: StateDir, listen: str | None, workers: int, log_format: str) -> None:
    """`hagate serve`: the gateway on its own listener; its pid is in the state directory
    while it runs (so `hagate rules preset add` can tell it to reload)."""
    with pidfile.hold(state, "hagate serve"):
        _serve(state, listen, workers, log_format)


def _serve(state: StateDir, listen: str | None, workers: int, log_format: str) -> None:
    setup = load_setup(state)
    cfg: Config = setup.config
    host, port = parse_listen(listen or cfg.listen)
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    print(
        f"hagate: gateway for {cfg.hostname} on {shown} -> {cfg.upstream}, {workers} worker(s)",
        file=sys.stderr,
        flush=True,
    )
    admin = prepare_admin(state, cfg)
    if workers <= 1:
        sock = bind(host, port, reuse_port=False)
        started = admin() if admin else None
        try:
            run_event_loop(lambda: serve_socket(state, setup, sock, log_format))
        finally:
            if started is not None:
                started.close()
        return
    connect_events(state / EVENTS_NAME).close()  # create the store once, before the workers
    socks = [bind(host, port, reuse_port=True) for _ in range(workers)]

    def work(i: int) -> None:
        for j, other in enumerate(socks):
            if j != i:
                other.close()
        run_event_loop(lambda: serve_socket(state, setup, socks[i], log_format))

    def after_fork() -> None:
        for sock in socks:
            sock.close()
        if admin:
            admin()  # in the supervising process, adding up the workers' metrics

    fork_workers(workers, work, after_fork)


def prepare_admin(state: StateDir, cfg: Config) -> Callable[[], AdminServer] | None:
    """With `admin:` configured: the metrics directory made ready (before any worker) and a
    function that starts the listener (in the process that supervises them)."""
    if cfg.admin is None:
        return None
    from hagate.console.listener import AdminServer
    from hagate.watch.metrics import prepare

    directory = prepare(state)
    listen = cfg.admin.listen
    # Bind now, so a taken port is a plain error before any worker starts.
    server = AdminServer(listen, state, directory, cfg.admin.ingress)

    def start() -> AdminServer:
        server.start()
        print(
            f"hagate: metrics on http://{server.host}:{server.port}/metrics, the console on"
            f" http://{server.host}:{server.port}/console/",
            file=sys.stderr,
            flush=True,
        )
        if server.ingress is not None:
            print(
                f"hagate: the console for Home Assistant's ingress on {server.ingress.listen}"
                f" (only from {', '.join(server.ingress.trusted)})",
                file=sys.stderr,
                flush=True,
            )
        return server

    return start
