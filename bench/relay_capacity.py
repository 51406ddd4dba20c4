"""How many homes one relay carries: memory and heartbeat CPU per connected home, stream setup
latency while 1, 1,000 and 5,000 homes are connected, and how long every home takes to come
back after the relay restarts.

The homes are a swarm in one process (bench/swarm.py): hagate's own connector code, with a
token and a loopback source address each. Streams are opened at a steady rate to random homes
by a client in this process: TCP connect to the relay, a ClientHello naming the home, and the
home's fixed answer back, timed from connect to answer. Every load is bounded by a count and
a time limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import resource
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.gateway.harness import rss_kib
from tests.net import free_port
from tests.tunnel.harness import Relay

from bench.report import machine, write_section
from bench.steps_bench import cpu_ticks
from bench.swarm import REPLY, hostname
from hagate.tunnel.connector import HEARTBEAT

SIZES = (1, 1000, 5000)
STREAMS = 500  # per size, at STREAM_RATE a second
STREAM_RATE = 50.0
IDLE_SECONDS = 20.0
UP_TIMEOUT = 300.0
TARGETS = {"rss_mb": 300, "idle_core": 0.05, "p99_ms": 20, "back_s": 60}


def client_hello(name: str) -> bytes:
    """The first flight of a TLS client asking for `name` (what the relay routes by)."""
    ctx = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=name)
    with contextlib.suppress(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


async def open_stream(port: int, hello: bytes, timeout: float = 10) -> float:
    """Seconds from connecting to the relay to the home's answer."""
    started = time.perf_counter()
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(hello)
            await reader.readexactly(len(REPLY))
        finally:
            writer.close()
    return time.perf_counter() - started


async def streams(port: int, homes: int, count: int, rate: float) -> tuple[list[float], int]:
    """`count` streams at `rate` a second to random homes: latencies, and failures."""
    hellos = [client_hello(hostname(i)) for i in range(homes)]
    latencies: list[float] = []
    failures = 0

    async def one(hello: bytes) -> None:
        nonlocal failures
        try:
            latencies.append(await open_stream(port, hello))
        except (OSError, TimeoutError, asyncio.IncompleteReadError):
            failures += 1

    tasks = []
    start = time.perf_counter()
    for k in range(count):
        delay = start + k / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(random.choice(hellos))))
    await asyncio.gather(*tasks)
    return latencies, failures


@dataclass
class Result:
    homes: int
    rss_mb: float
    per_home_kb: float
    idle_core: float  # fraction of one core, whole relay, at idle
    p50_ms: float
    p99_ms: float
    failures: int
    up_s: float  # first connection of every home
    back_s: float | None = None  # after a restart
    refused: int | None = None  # connections the relay refused or failed while they came back


def percentile(values: list[float], q: float) -> float:
    return (
        statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]
        if len(values) > 1
        else values[0]
    )


def measure(relay: Relay, homes: int, restart: bool) -> Result:
    relay.port = free_port()
    relay.start(test_limits=False)
    time.sleep(2)
    assert relay.proc is not None
    empty = rss_kib(relay.proc.pid)
    swarm = subprocess.Popen(
        [sys.executable, "-m", "bench.swarm", str(relay.state), str(relay.port), str(homes)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        up = relay.wait_for(homes, UP_TIMEOUT)
        time.sleep(5)
        rss = rss_kib(relay.proc.pid)
        ticks0, t0 = sum(cpu_ticks(relay.proc.pid)), time.monotonic()
        time.sleep(IDLE_SECONDS)
        ticks = sum(cpu_ticks(relay.proc.pid)) - ticks0
        idle = ticks / os.sysconf("SC_CLK_TCK") / (time.monotonic() - t0)
        latencies, failures = asyncio.run(streams(relay.port, homes, STREAMS, STREAM_RATE))
        ms = sorted(x * 1000 for x in latencies)
        result = Result(
            homes,
            rss / 1024,
            (rss - empty) / homes,
            idle,
            statistics.median(ms),
            percentile(ms, 99),
            failures,
            up,
        )
        if restart:
            relay.stop(timeout=60)
            time.sleep(1)
            restarted = time.time()
            relay.start(test_limits=False)
            result.back_s = relay.wait_for(homes, UP_TIMEOUT, since=restarted)
            counters = relay.read_status().get("counters", {})
            assert isinstance(counters, dict)
            result.refused = sum(
                int(v)
                for k, v in counters.items()
                if k.startswith("dropped")
                or k in ("control_tls_error", "refused_connectors", "no_hello")
            )
        return result
    finally:
        swarm.send_signal(signal.SIGTERM)
        try:
            swarm.wait(60)
        except subprocess.TimeoutExpired:
            swarm.kill()
        relay.stop(timeout=60)


def main() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    tmp = Path(tempfile.mkdtemp(prefix="hagate-relay-capacity-"))
    try:
        relay = Relay.create(tmp)
        results = []
        sizes = tuple(int(a) for a in sys.argv[1:]) or SIZES  # e.g. `5000` alone, to try a fix
        for homes in sizes:
            r = measure(relay, homes, restart=homes >= 1000)
            print(r, flush=True)
            results.append(r)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    lines = [
        "## Homes per relay",
        "",
        f"`bench/relay_capacity.py` on {machine()}: one `hagate relay run` with its default "
        "limits; the homes are hagate's own connector code in one process (bench/swarm.py), "
        "each with its own token, hostname and loopback address, sending a heartbeat every "
        f"{HEARTBEAT:.0f} s. "
        f"{STREAMS} streams at {STREAM_RATE:.0f} a second to random homes, each timed from the "
        "client's TCP connect to the home's answer (the relay reads the ClientHello, opens a "
        "stream on that home's tunnel, the home answers). Idle CPU is the relay's over "
        f"{IDLE_SECONDS:.0f} s with only heartbeats. The restart is SIGTERM, then a new relay "
        "on the same port; every connector finds it by itself (jittered backoff).",
        "",
        "| homes | relay RSS | per home | idle CPU (of a core) | per 1,000 homes "
        "| stream p50 / p99 | failed | all up | back after restart | refused while back |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        back = f"{r.back_s:.1f} s" if r.back_s is not None else "-"
        refused = str(r.refused) if r.refused is not None else "-"
        # Per 1,000 homes only where there are that many: one home's idle is the relay's own.
        per_1000 = f"{r.idle_core * 100 / r.homes * 1000:.2f}%" if r.homes >= 1000 else "-"
        lines.append(
            f"| {r.homes:,} | {r.rss_mb:.0f} MB | {r.per_home_kb:.0f} KB "
            f"| {r.idle_core * 100:.2f}% | {per_1000} "
            f"| {r.p50_ms:.1f} / {r.p99_ms:.1f} ms "
            f"| {r.failures} | {r.up_s:.1f} s | {back} | {refused} |"
        )
    big = results[-1]
    met = {
        "rss": big.rss_mb < TARGETS["rss_mb"],
        "idle": big.idle_core < TARGETS["idle_core"],
        "p99": big.p99_ms < TARGETS["p99_ms"],
        "back": big.back_s is not None and big.back_s < TARGETS["back_s"],
    }
    lines += [
        "",
        f"Reading, at {big.homes:,} homes against the targets: relay RSS {big.rss_mb:.0f} MB "
        f"(under {TARGETS['rss_mb']} MB: {'met' if met['rss'] else 'missed'}), idle CPU "
        f"{big.idle_core * 100:.1f}% of a core (under 5%: {'met' if met['idle'] else 'missed'}), "
        f"stream setup p99 {big.p99_ms:.1f} ms (under {TARGETS['p99_ms']} ms: "
        f"{'met' if met['p99'] else 'missed'}), all homes back {big.back_s or 0:.1f} s after a "
        f"restart (under {TARGETS['back_s']} s: {'met' if met['back'] else 'missed'}).",
    ]
    body = "\n".join(lines)
    print(body)
    write_section("relay-capacity", body)


if __name__ == "__main__":
    main()
