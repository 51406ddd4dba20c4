"""`hagate relay run`: the relay on its listener, its ACME renewer, and signals."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from typing import Any

from hagate import pidfile
from hagate.eventloop import bind, run_event_loop
from hagate.front.accept import Network
from hagate.memory import pin_mmap_threshold
from hagate.state import StateDir
from hagate.tunnel.relay import STATUS_REFRESH, Limits, Relay
from hagate.tunnel.relaystate import RelayState


def start_renewer(relay: Relay) -> asyncio.Task[None] | None:
    """The relay renews its own control certificate when made with `relay init --acme`."""
    from hagate.acme.renewal import Attempt, Outcome
    from hagate.acme.renewer import Renewer

    settings = relay.rs.acme
    if settings is None or relay.acme is None:
        return None

    def say(text: str) -> None:
        print(f"hagate relay: acme: {text}", file=sys.stderr, flush=True)

    def report(attempt: Attempt) -> None:
        say(attempt.message)
        relay.counters["acme_renewed" if attempt.outcome is Outcome.RENEWED else "acme_errors"] += 1
        if attempt.outcome is Outcome.RENEWED:
            relay.tls.refresh()

    return asyncio.create_task(
        Renewer(relay.acme, settings, relay.rs.hostname, report, say=say).run()
    )


def run_relay(
    state: StateDir,
    listen: tuple[str, int],
    admit: Any = None,
    limits: Limits | None = None,
    fronts: tuple[Network, ...] = (),
) -> None:
    rs = RelayState.load(state)
    with pidfile.hold(state, "hagate relay run", pidfile.Kind.RELAY):
        _run(state, rs, listen, admit, limits, fronts)


def _run(
    state: StateDir,
    rs: RelayState,
    listen: tuple[str, int],
    admit: Any,
    limits: Limits | None,
    fronts: tuple[Network, ...],
) -> None:
    sock = bind(*listen)
    pin_mmap_threshold()  # thousands of TLS connections: see hagate.memory
    print(
        f"hagate relay {rs.hostname} on {listen[0]}:{listen[1]}, "
        + (
            f"control certificate from {rs.acme.directory}"
            if rs.acme
            else f"fingerprint {rs.fingerprint()}"
        ),
        file=sys.stderr,
        flush=True,
    )
    if fronts:
        shown = ", ".join(str(n) for n in fronts)
        print(f"hagate relay: PROXY protocol from {shown}", file=sys.stderr, flush=True)
    relay = Relay(rs, limits, admit=admit, fronts=fronts)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        task = asyncio.create_task(relay.serve(sock))
        renewing = start_renewer(relay)
        await stop.wait()
        task.cancel()
        if renewing is not None:
            renewing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        sock.close()

    run_event_loop(main)


def liveness(state: StateDir, age: float) -> str:
    """Whether the relay runs, by its pidfile, and how fresh its status is, against the
    period it is rewritten in."""
    pid = pidfile.running(state, pidfile.Kind.RELAY)
    if pid is None:
        return f"not running (the status below is from {age:.0f}s ago, when it last ran)"
    if age > 2 * STATUS_REFRESH + 5:
        return f"running (pid {pid}), but its status is {age:.0f}s old: is it stuck?"
    return f"running (pid {pid}), status {age:.0f}s old"
