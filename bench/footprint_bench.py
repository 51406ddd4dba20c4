"""The home side's footprint on small hardware: memory at idle with the defaults, and CPU time
per request at the same load, beside what households run instead.

Home sides, each in front of the same nginx upstream (standing in for Home Assistant):
  hagate connect - the connector, gateway and event writer (the relay runs, but is not counted)
  hagate serve   - the gateway and event writer, port-forward mode
  nginx          - nginx with `ssl_verify_client on` (master and worker), port-forward mode
  SniTun         - SniTun's client peer (Nabu Casa's tunnel) and the nginx that checks
                   certificates behind it (SniTun has none of its own); its relay not counted

Memory is RSS, each process with its children, and PSS (a page shared between them counted
once), read when the side has started and been idle for a few seconds, and again after the
load. The load is the same ApacheBench run for every side (keep-alive, client certificate);
CPU time is the home side's user + kernel time during it, per request. Every load is bounded
by a request count and a time limit. SNI needs a name: ha.test is mapped to 127.0.0.1 in
/etc/hosts for the run and restored after.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import run_hagate
from tests.gateway.harness import rss_kib
from tests.net import free_port, wait_listening
from tests.nginx import Nginx, upstream
from tests.tunnel.harness import Relay

from bench.gateway_bench import Load, ab
from bench.report import machine, write_section
from bench.steps_bench import cpu_ticks
from bench.tunnel_bench import SniTun, hosts_entry, spawn, stop

REQUESTS = 20_000
CONCURRENCY = 4  # a household's few devices, not a stress test
IDLE_SECONDS = 5.0
TARGET_MB = 60


def pss_kib(pid: int) -> int:
    """Proportional set size of a process and its children (shared pages split between the
    processes that map them, so a group's PSS adds up to the memory it really takes)."""
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    total = 0
    for p in pids:
        for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                total += int(line.split()[1])
    return total


@dataclass
class Side:
    name: str
    pids: Callable[[], list[int]]  # the home side's processes (each counted with its children)
    port: int


@dataclass
class Footprint:
    idle_rss: float  # MB
    idle_pss: float
    loaded_rss: float
    cpu_us: float  # per request
    load: Load


def group(pids: list[int], measure: Callable[[int], int]) -> float:
    return sum(measure(p) for p in pids) / 1024


def ticks(pids: list[int]) -> int:
    return sum(sum(cpu_ticks(p)) for p in pids)


def nginx_pids(n: Nginx) -> list[int]:
    """The master only: rss_kib and pss_kib add its workers (its children)."""
    out = subprocess.run(
        ["pgrep", "-f", f"master process nginx -c {n.prefix}/nginx.conf"],
        capture_output=True,
        text=True,
    ).stdout.split()
    return [int(p) for p in out]


def measure(side: Side, pem: Path) -> Footprint:
    time.sleep(IDLE_SECONDS)
    pids = side.pids()
    idle_rss, idle_pss = group(pids, rss_kib), group(pids, pss_kib)
    url = f"https://ha.test:{side.port}/small.txt"
    ab(url, 500, CONCURRENCY, True, pem, time_limit=None)  # warm-up
    before = ticks(pids)
    load = ab(url, REQUESTS, CONCURRENCY, True, pem, time_limit=None)  # exactly REQUESTS
    used = ticks(pids) - before
    if load.failed:
        raise SystemExit(f"{load.failed} failed requests through {side.name}")
    time.sleep(2)
    cpu_us = used / os.sysconf("SC_CLK_TCK") / REQUESTS * 1e6
    return Footprint(idle_rss, idle_pss, group(pids, rss_kib), cpu_us, load)


def main() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    tmp = Path(tempfile.mkdtemp(prefix="hagate-footprint-"))
    up = upstream(tmp / "upstream", 1 << 20)
    state = tmp / "home"
    port = free_port()
    assert (
        run_hagate(
            "init",
            "--hostname",
            "ha.test",
            "--upstream",
            f"http://127.0.0.1:{up.port}",
            "--listen",
            f"127.0.0.1:{port}",
            state=state,
        ).code
        == 0
    )
    assert run_hagate("cert", "issue", "bench", "--pem-dir", tmp, state=state).code == 0
    pem = tmp / "bench-ab.pem"
    pem.write_bytes((tmp / "bench.crt").read_bytes() + (tmp / "bench.key").read_bytes())
    procs: list[subprocess.Popen[bytes]] = []

    def mtls_nginx(name: str) -> Nginx:
        n = Nginx(tmp / name, free_port())
        n.start(f"""
        upstream up {{ server 127.0.0.1:{up.port}; keepalive 16; }}
        server {{
            listen 127.0.0.1:{n.port} ssl;
            ssl_protocols TLSv1.2 TLSv1.3;  # nginx 1.22 leaves TLS 1.3 out unless told
            ssl_certificate {state}/server.crt; ssl_certificate_key {state}/server.key;
            ssl_client_certificate {state}/ca.crt; ssl_verify_client on;
            access_log {tmp}/{name}/access.log;
            location / {{ proxy_pass http://up; proxy_http_version 1.1;
                         proxy_set_header Connection ""; }}
        }}""")
        return n

    hagate = [sys.executable, "-m", "hagate", "--state-dir", str(state)]
    results: dict[str, Footprint] = {}
    try:
        with hosts_entry("ha.test"):
            # hagate connect, behind a hagate relay
            relay = Relay.create(tmp)
            relay.start()
            home = spawn(
                [
                    *hagate,
                    "connect",
                    "--relay",
                    relay.address,
                    "--token",
                    relay.token(),
                    "--relay-fingerprint",
                    relay.fingerprint,
                ]
            )
            procs.append(home)
            time.sleep(2)
            side = Side("hagate connect", lambda: [home.pid], relay.port)
            results[side.name] = measure(side, pem)
            print(side.name, results[side.name], flush=True)
            stop(home)
            relay.stop()

            serve = spawn([*hagate, "serve"])
            procs.append(serve)
            wait_listening(port, serve)
            side = Side("hagate serve", lambda: [serve.pid], port)
            results[side.name] = measure(side, pem)
            print(side.name, results[side.name], flush=True)
            stop(serve)

            direct = mtls_nginx("nginx-direct")
            side = Side("nginx, ssl_verify_client", lambda: nginx_pids(direct), direct.port)
            results[side.name] = measure(side, pem)
            print(side.name, results[side.name], flush=True)
            direct.stop()

            behind = mtls_nginx("nginx-snitun")
            peer = SniTun.start(behind.port)
            procs += [peer.client, peer.relay]
            side = Side(
                "SniTun client + nginx",
                lambda: [peer.client.pid, *nginx_pids(behind)],
                peer.port,
            )
            results[side.name] = measure(side, pem)
            print(side.name, results[side.name], flush=True)
            peer.stop()
            behind.stop()
    finally:
        for p in procs:
            stop(p)
        up.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    connect = results["hagate connect"]
    lines = [
        "## Footprint of the home side",
        "",
        f"`bench/footprint_bench.py` on {machine()}, every side with its defaults (hagate: one "
        "worker). Idle: started and left alone for "
        f"{IDLE_SECONDS:.0f} s. RSS counts each process with its children (hagate's event "
        "writer, nginx's worker); PSS counts a page they share once. CPU: the home side's user "
        f"+ kernel time per request during the same ApacheBench run ({REQUESTS:,} keep-alive "
        f"requests, {CONCURRENCY} at a time, client certificate), relays not counted.",
        "",
        "| home side | idle RSS | idle PSS | RSS after load | CPU µs / request | req/s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, f in results.items():
        lines.append(
            f"| {name} | {f.idle_rss:.1f} MB | {f.idle_pss:.1f} MB | {f.loaded_rss:.1f} MB | "
            f"{f.cpu_us:.0f} | {f.load.rps:,.0f} |"
        )
    nginx, snitun = results["nginx, ssl_verify_client"], results["SniTun client + nginx"]
    lines += [
        "",
        f"Reading: the home side of the relay chain (connector, gateway and event writer) takes "
        f"{connect.idle_rss:.1f} MB at idle (target: under {TARGET_MB} MB; "
        f"{'met' if connect.idle_rss < TARGET_MB else 'missed'}), "
        f"{connect.idle_rss / snitun.idle_rss:.1f}x SniTun's client with its nginx and "
        f"{connect.idle_rss / nginx.idle_rss:.1f}x nginx alone. Per request it spends "
        f"{connect.cpu_us / snitun.cpu_us:.1f}x SniTun's CPU time and "
        f"{connect.cpu_us / nginx.cpu_us:.1f}x nginx's: the gateway parses and checks every "
        "request in Python, where nginx and SniTun's byte pipe do not look at them. One worker "
        "is the default: a household's few devices do not need a second core, and each worker "
        "would cost its own memory.",
    ]
    body = "\n".join(lines)
    print(body)
    write_section("footprint", body)


if __name__ == "__main__":
    main()
