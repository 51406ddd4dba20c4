"""Where a keep-alive request's time goes: hagate's own steps, measured inside a running proxy.

The gateway benchmark puts hagate well behind nginx, while the floor proxy (bench/floor_proxy.py,
TLS and relaying only) keeps up with nginx: Python, uvloop and TLS alone are not what holds
hagate back. Here the floor proxy does hagate's per-request steps (with hagate's code), one at a
time and then all together, under the same ab load as the gateway benchmark; the proxy's CPU
time per request (user and kernel, from /proc) says what each step costs in place. `hagate
serve` runs last under the same load. Each step is also timed in a loop of its own (timeit),
where it runs hot in the CPU's caches, which is how its cost is usually quoted.
Every load is bounded by a request count and a time limit.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import timeit
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import run_hagate
from tests.net import free_port, wait_listening
from tests.nginx import upstream

from bench.floor_proxy import SAMPLE_REQUEST, STEPS, Steps
from bench.gateway_bench import (
    KEEPALIVE_CONCURRENCY,
    KEEPALIVE_REQUESTS,
    Load,
    ab,
    floor_args,
    serve_args,
)
from bench.report import machine, write_section

LOOP_RUNS = 20_000


@dataclass
class Measured:
    load: Load
    user_us: float  # CPU time of the proxy per request
    kernel_us: float


def cpu_ticks(pid: int) -> tuple[int, int]:
    """User and kernel clock ticks of a process and its children still running."""
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    user = kernel = 0
    for p in pids:
        fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        user, kernel = user + int(fields[11]), kernel + int(fields[12])
    return user, kernel


def measure(command: list[str], port: int, pem: Path) -> Measured:
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_listening(port, proc)
        url = f"https://127.0.0.1:{port}/small.txt"
        ab(url, 2000, 8, True, pem)  # warm-up
        u0, k0 = cpu_ticks(proc.pid)
        load = ab(url, KEEPALIVE_REQUESTS, KEEPALIVE_CONCURRENCY, True, pem)
        u1, k1 = cpu_ticks(proc.pid)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    if load.failed:
        raise SystemExit(f"{load.failed} failed requests with {command}: {err.decode()[-500:]}")
    # ab stops at 50,000 requests when given a time limit.
    per = 1e6 / os.sysconf("SC_CLK_TCK") / min(KEEPALIVE_REQUESTS, 50_000)
    return Measured(load, (u1 - u0) * per, (k1 - k0) * per)


def in_a_loop(state: Path, tmp: Path, up_port: int) -> dict[str, float]:
    """Each step's cost in µs, timed in a loop of its own: the request and response work with
    the step on, less the same work with every step off."""
    with socket.create_connection(("127.0.0.1", up_port)) as s:
        s.sendall(SAMPLE_REQUEST)
        reply = b""
        while b"\r\n\r\n" not in reply:
            reply += s.recv(65536)
    head, body = reply.split(b"\r\n\r\n", 1)
    head += b"\r\n\r\n"
    der = (tmp / "bench.der").read_bytes()

    def cost(names: set[str]) -> float:
        with open(os.devnull, "wb") as nowhere:  # log lines, not to this output
            steps = Steps(state, names, nowhere, capacity=LOOP_RUNS * 5 + 1)
        conn = steps.connection("127.0.0.1", "ha.test", der, 443)

        def one() -> None:
            steps.request(conn, SAMPLE_REQUEST)
            steps.response(conn, head, body)

        best = min(timeit.repeat(one, number=LOOP_RUNS, repeat=5)) / LOOP_RUNS * 1e6
        if steps.store is not None:
            steps.store.close()
        return best

    base = cost(set())
    return {name: cost({name}) - base for name in STEPS}


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="hagate-steps-"))
    up = upstream(tmp / "upstream", 1 << 20)
    state = tmp / "state"
    r = run_hagate(
        "init", "--hostname", "ha.test", "--upstream", f"http://127.0.0.1:{up.port}", state=state
    )
    assert r.code == 0, r.err
    assert run_hagate("cert", "issue", "bench", "--pem-dir", tmp, state=state).code == 0
    pem = tmp / "bench-ab.pem"
    pem.write_bytes((tmp / "bench.crt").read_bytes() + (tmp / "bench.key").read_bytes())
    subprocess.run(
        ["openssl", "x509", "-in", tmp / "bench.crt", "-outform", "DER", "-out", tmp / "bench.der"],
        check=True,
    )

    def floor(steps: str | None) -> Callable[[int], list[str]]:
        return floor_args(state, up.port, steps)

    peers: list[tuple[str, str | None, Callable[[int], list[str]]]] = [
        ("floor", None, floor(None)),
        ("floor + exchange record", None, floor("")),
        *[(f"floor + exchange record + {name}", name, floor(name)) for name in STEPS],
        ("floor + all five steps", None, floor(",".join(STEPS))),
        ("hagate serve", None, serve_args(state, 1)),
    ]
    try:
        loop_costs = in_a_loop(state, tmp, up.port)
        results: list[tuple[str, str | None, Measured]] = []
        for label, step, command in peers:
            port = free_port()
            m = measure([sys.executable, "-m", *command(port)], port, pem)
            print(label, m, flush=True)
            results.append((label, step, m))
    finally:
        up.stop()

    base = results[1][2].user_us
    lines = [
        "## Where a request's time goes",
        "",
        f"`bench/steps_bench.py` on {machine()}. The floor proxy of the gateway benchmark, "
        "then the same proxy doing hagate's per-request steps with hagate's code, under the "
        "gateway benchmark's keep-alive load (ab, 32 connections, client certificate). CPU is "
        "the proxy process's, per request. *In place* is a step's user time over the floor "
        "with the exchange record (request id, record, user agent); *in a loop* is the same "
        "step timed alone in a loop (timeit, best of 5).",
        "",
        "| proxy | req/s | user µs/req | kernel µs/req | step in place | step in a loop |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    total_place = total_loop = 0.0
    for label, step, m in results:
        place = loop = ""
        if step is not None:
            total_place += m.user_us - base
            total_loop += loop_costs[step]
            place, loop = f"{m.user_us - base:.1f} µs", f"{loop_costs[step]:.1f} µs"
        lines.append(
            f"| {label} | {m.load.rps:,.0f} | {m.user_us:.1f} | {m.kernel_us:.1f} | "
            f"{place} | {loop} |"
        )
    everything = results[-2][2]
    lines += [
        "",
        f"The five steps cost {total_place:.0f} µs of user time in place, one at a time, "
        f"against {total_loop:.0f} µs in loops of their own "
        f"({total_place / total_loop:.1f}x); all five together add "
        f"{everything.user_us - base:.0f} µs.",
    ]
    body = "\n".join(lines)
    print(body)
    write_section("steps", body)


if __name__ == "__main__":
    main()
