"""The gateway against what users run instead, side by side in one run.

Peers, all in front of the same nginx upstream (a small response and a 1 GiB file):
  direct  - the upstream itself, plain HTTP (the ceiling)
  nginx   - nginx ending TLS with `ssl_verify_client on`, proxying with keep-alive
  hagate  - `hagate serve` (default rule: a verified client certificate is required)
  floor   - bench/floor_proxy.py: the least a Python TLS proxy on uvloop can do (no checks),
            one process, small requests only: the cost of the language, for reference
Each peer with 1 and with 2 workers. nginx writes its access log, as it does by default, and
hagate its event log and log lines: each records every request. Load: ApacheBench (`ab -E`
presents the client certificate) for keep-alive requests and for new mutual-TLS connections,
curl for bulk.
Every load is bounded by a request count and a time limit.
"""

from __future__ import annotations

import contextlib
import math
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import run_hagate
from tests.net import free_port, wait_listening
from tests.nginx import Nginx, upstream

from bench.report import finish, machine

KEEPALIVE_REQUESTS = 60_000
KEEPALIVE_CONCURRENCY = 32
NEW_CONN_REQUESTS = 3_000
NEW_CONN_CONCURRENCY = 16
TIME_LIMIT = 30
BULK_BYTES = 1 << 30


@dataclass
class Load:
    rps: float
    p50: float
    p99: float
    failed: int


def ab(
    url: str, n: int, c: int, keepalive: bool, pem: Path | None, time_limit: int | None = TIME_LIMIT
) -> Load:
    """An ApacheBench run. With a time limit ab stops at 50,000 requests or the limit; without
    one it runs exactly `n` (and fails unless all `n` complete)."""
    args = ["ab", "-q", "-n", str(n), "-c", str(c), "-H", "Host: ha.test"]
    if time_limit is not None:
        args += ["-t", str(time_limit)]
    if keepalive:
        args.append("-k")
    if pem is not None:
        args += ["-E", str(pem)]
    done = subprocess.run(
        [*args, url], capture_output=True, text=True, timeout=(time_limit or 240) + 60
    )
    out = done.stdout
    if "Requests per second" not in out:  # ab gave up: say why instead of a table of NaN
        raise SystemExit(f"ab failed against {url}: {done.stderr.strip()[-500:]}")
    if time_limit is None and not re.search(rf"^Complete requests:\s+{n}$", out, re.M):
        raise SystemExit(f"ab did not complete {n} requests against {url}: {out[-500:]}")

    def grab(pattern: str) -> float:
        m = re.search(pattern, out, re.M)
        return float(m.group(1)) if m else float("nan")

    return Load(
        grab(r"^Requests per second:\s+([\d.]+)"),
        grab(r"^\s+50%\s+(\d+)"),
        grab(r"^\s+99%\s+(\d+)"),
        int(grab(r"^Failed requests:\s+(\d+)") or 0)
        + int(grab(r"^Non-2xx responses:\s+(\d+)") if "Non-2xx" in out else 0),
    )


def bulk(
    url: str, pem: Path | None, key: Path | None, cacert: Path | None, size: int = BULK_BYTES
) -> float:
    args = [
        "curl",
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{speed_download} %{size_download}",
        "-H",
        "Host: ha.test",
        "--max-time",
        "120",
    ]
    if pem is not None and key is not None and cacert is not None:
        args += [
            "--cert",
            str(pem),
            "--key",
            str(key),
            "--cacert",
            str(cacert),
            "--resolve",
            f"ha.test:{url.split(':')[2].split('/')[0]}:127.0.0.1",
        ]
        url = url.replace("127.0.0.1", "ha.test")
    speed, got = subprocess.run([*args, url], capture_output=True, text=True).stdout.split()
    assert int(float(got)) == size, got
    return float(speed) / 1e6


@contextlib.contextmanager
def nginx_mtls(tmp: Path, state: Path, up: int, workers: int) -> Iterator[int]:
    port = free_port()
    n = Nginx(tmp / f"nginx-mtls-{workers}", port)
    n.start(
        f"""
    upstream up {{ server 127.0.0.1:{up}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_protocols TLSv1.2 TLSv1.3;  # nginx 1.22 leaves TLS 1.3 out unless told
        ssl_certificate {state}/server.crt;
        ssl_certificate_key {state}/server.key;
        ssl_client_certificate {state}/ca.crt;
        ssl_verify_client on;
        access_log {tmp}/nginx-mtls-{workers}/access.log;
        location / {{
            proxy_pass http://up;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_buffering off;
        }}
    }}""",
        workers=workers,
    )
    try:
        yield port
    finally:
        n.stop()


@contextlib.contextmanager
def served(args: Callable[[int], list[str]]) -> Iterator[int]:
    """Run `python -m <args(port)>` on a free port until the block ends."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", *args(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_listening(port, proc)
        yield port
    finally:
        proc.terminate()
        proc.wait(30)


def floor_args(state: Path, up: int, steps: str | None = None) -> Callable[[int], list[str]]:
    """`python -m` arguments of the floor proxy (with hagate's `steps`, for steps_bench)."""
    extra = [] if steps is None else [steps]
    return lambda port: ["bench.floor_proxy", str(state), str(port), str(up), *extra]


def serve_args(state: Path, workers: int) -> Callable[[int], list[str]]:
    """`python -m` arguments of `hagate serve`."""
    return lambda port: [
        "hagate",
        "--state-dir",
        str(state),
        "serve",
        "--listen",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
    ]


def floor(state: Path, up: int) -> contextlib.AbstractContextManager[int]:
    return served(floor_args(state, up))


def hagate(state: Path, workers: int) -> contextlib.AbstractContextManager[int]:
    return served(serve_args(state, workers))


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="hagate-bench-"))
    up = upstream(tmp / "upstream", BULK_BYTES)
    state = tmp / "state"
    r = run_hagate(
        "init", "--hostname", "ha.test", "--upstream", f"http://127.0.0.1:{up.port}", state=state
    )
    assert r.code == 0, r.err
    assert run_hagate("cert", "issue", "bench", "--pem-dir", tmp, state=state).code == 0
    crt, key = tmp / "bench.crt", tmp / "bench.key"
    pem = tmp / "bench-ab.pem"
    pem.write_bytes(crt.read_bytes() + key.read_bytes())
    cacert = state / "ca.crt"
    results: dict[tuple[str, int], dict[str, object]] = {}
    try:
        for workers in (1, 2):
            for name in ("direct", "nginx", "hagate", "floor"):
                if name in ("direct", "floor") and workers == 2:
                    continue
                with contextlib.ExitStack() as stack:
                    if name == "direct":
                        base, cert = f"http://127.0.0.1:{up.port}", None
                    elif name == "floor":
                        port = stack.enter_context(floor(state, up.port))
                        base, cert = f"https://127.0.0.1:{port}", pem
                    elif name == "nginx":
                        port = stack.enter_context(nginx_mtls(tmp, state, up.port, workers))
                        base, cert = f"https://127.0.0.1:{port}", pem
                    else:
                        port = stack.enter_context(hagate(state, workers))
                        base, cert = f"https://127.0.0.1:{port}", pem
                    wait_listening(int(base.rsplit(":", 1)[1]))
                    ab(base + "/small.txt", 2000, 8, True, cert)  # warm-up
                    keep = ab(
                        base + "/small.txt", KEEPALIVE_REQUESTS, KEEPALIVE_CONCURRENCY, True, cert
                    )
                    new = ab(
                        base + "/small.txt", NEW_CONN_REQUESTS, NEW_CONN_CONCURRENCY, False, cert
                    )
                    mbps = (
                        float("nan")
                        if name == "floor"
                        else bulk(
                            base + "/big.bin",
                            crt if cert else None,
                            key if cert else None,
                            cacert if cert else None,
                        )
                    )
                    results[(name, workers)] = {"keep": keep, "new": new, "bulk": mbps}
                    print(name, workers, keep, new, f"{mbps:.0f} MB/s", flush=True)
    finally:
        up.stop()

    lines = [
        "## Gateway against nginx",
        "",
        f"`bench/gateway_bench.py` on {machine()}. Same nginx upstream for all peers; "
        "ApacheBench presents the client certificate (`-E`); bulk is one curl download of "
        "1 GiB. Load generator and servers share the machine's cores. nginx writes its "
        "access log and hagate its event log. `floor` is bench/floor_proxy.py, a Python TLS "
        "proxy that checks nothing (one process, small requests only): the cost of Python "
        "and the event loop alone, for reference.",
        "",
        "| peer | workers | keep-alive req/s | p50 / p99 ms | new mTLS conn/s | bulk MB/s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for (name, workers), res in results.items():
        k, n = res["keep"], res["new"]
        assert isinstance(k, Load) and isinstance(n, Load)
        speed = res["bulk"]
        assert isinstance(speed, float)
        lines.append(
            f"| {name} | {workers} | {k.rps:,.0f} | {k.p50:.0f} / {k.p99:.0f} | "
            f"{n.rps:,.0f} | {'' if math.isnan(speed) else f'{speed:,.0f}'} |"
        )
    lines += [
        "",
        "Ratios, hagate : nginx (targets: keep-alive ≥ 0.5, new connections ≥ 0.8, "
        "bulk ≥ 0.7, p99 ≤ 2× nginx's):",
        "",
        "| workers | keep-alive | new connections | bulk | p99 (hagate / nginx) |",
        "|---:|---:|---:|---:|---:|",
    ]
    for workers in (1, 2):
        h, x = results[("hagate", workers)], results[("nginx", workers)]
        hk, xk, hn, xn = h["keep"], x["keep"], h["new"], x["new"]
        assert isinstance(hk, Load) and isinstance(xk, Load)
        assert isinstance(hn, Load) and isinstance(xn, Load)
        hb, xb = h["bulk"], x["bulk"]
        assert isinstance(hb, float) and isinstance(xb, float)
        lines.append(
            f"| {workers} | {hk.rps / xk.rps:.2f} | {hn.rps / xn.rps:.2f} | "
            f"{hb / xb:.2f} | {hk.p99:.0f} / {xk.p99:.0f} ms |"
        )
    fk, xk1 = results[("floor", 1)]["keep"], results[("nginx", 1)]["keep"]
    hk1 = results[("hagate", 1)]["keep"]
    assert isinstance(fk, Load) and isinstance(xk1, Load) and isinstance(hk1, Load)
    lines += [
        "",
        f"The floor proxy reaches {fk.rps / xk1.rps:.2f}x nginx's keep-alive rate with one "
        f"process; hagate reaches {hk1.rps / fk.rps:.2f}x the floor's.",
    ]
    finish("gateway", lines, results.values())


if __name__ == "__main__":
    main()
