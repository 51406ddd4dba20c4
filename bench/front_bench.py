"""The cost of PROXY protocol: the gateway behind a front with it on and with it off.

Two `hagate serve` gateways before the same nginx upstream, each behind its own HAProxy in TCP
mode connecting from the same address: `off` has no proxy_protocol and its HAProxy sends no
header; `on` trusts the front and its HAProxy sends `send-proxy-v2`. Everything else is equal,
so the difference is reading the header (one peek, one parse, one read per connection) and
using the address it names. Loads (ApacheBench presenting the client certificate): keep-alive
requests (the header is read once per connection: per request it should cost nothing) and a
new mutual-TLS connection per request (each reads a header). The peers run alternately,
ROUNDS times, and the medians are compared; the parser's own time per header is timed too.
Every load is bounded by a request count and a time limit.
"""

from __future__ import annotations

import contextlib
import functools
import statistics
import struct
import tempfile
import timeit
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import run_hagate
from tests.front.peers import FRONT_SOURCE, Front
from tests.nginx import upstream

from bench.gateway_bench import Load, ab, hagate
from bench.report import finish, machine
from hagate.front.proxyheader import V2_SIGNATURE, parse_proxy_header

ROUNDS = 3
KEEPALIVE = (20_000, 16)  # requests, concurrency
NEW_CONN = (1_500, 8)
TIME_LIMIT = 20


def gateway_state(tmp: Path, name: str, up: int, trusted: bool) -> tuple[Path, Path]:
    """A state directory and the ab client pem for it."""
    state = tmp / name
    r = run_hagate(
        "init", "--hostname", "ha.test", "--upstream", f"http://127.0.0.1:{up}", state=state
    )
    assert r.code == 0, r.err
    if trusted:
        with (state / "hagate.yaml").open("a") as f:
            f.write(f"\ngateway:\n  proxy_protocol:\n    trusted: [{FRONT_SOURCE}/32]\n")
    assert run_hagate("cert", "issue", "bench", "--pem-dir", tmp / name, state=state).code == 0
    pem = tmp / f"{name}.pem"
    pem.write_bytes(
        (tmp / name / "bench.crt").read_bytes() + (tmp / name / "bench.key").read_bytes()
    )
    return state, pem


@contextlib.contextmanager
def fronted(tmp: Path, state: Path, name: str, proxy: str) -> Iterator[int]:
    with hagate(state, 1) as port:
        front = Front("haproxy", tmp / f"haproxy-{name}", port, proxy)
        front.start()
        try:
            yield front.port
        finally:
            front.stop()


def parse_cost() -> dict[str, float]:
    """Microseconds per parse of a typical v1 and v2 header (with the ClientHello behind)."""
    hello = b"\x16\x03\x01\x02\x00" + b"\x00" * 512
    v1 = b"PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\n" + hello
    body = bytes([203, 0, 113, 7, 192, 0, 2, 1]) + struct.pack(">HH", 51234, 443)
    v2 = V2_SIGNATURE + b"\x21\x11" + struct.pack(">H", len(body)) + body + hello
    out = {}
    for name, data in (("v1", v1), ("v2", v2)):
        n = 20_000
        best = min(timeit.repeat(functools.partial(parse_proxy_header, data), number=n, repeat=5))
        out[name] = best / n * 1e6
    return out


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="hagate-front-bench-"))
    up = upstream(tmp / "upstream", 1 << 20)
    peers = {
        "off": gateway_state(tmp, "off", up.port, trusted=False),
        "on": gateway_state(tmp, "on", up.port, trusted=True),
    }
    runs: dict[str, dict[str, list[Load]]] = {p: {"keep": [], "new": []} for p in peers}
    try:
        for rnd in range(ROUNDS):
            for name in ("off", "on") if rnd % 2 == 0 else ("on", "off"):
                state, pem = peers[name]
                proxy = "send-proxy-v2" if name == "on" else ""
                with fronted(tmp, state, name, proxy) as port:
                    url = f"https://127.0.0.1:{port}/small.txt"
                    ab(url, 1000, 8, True, pem)  # warm-up
                    keep = ab(url, *KEEPALIVE, True, pem, TIME_LIMIT)
                    new = ab(url, *NEW_CONN, False, pem, TIME_LIMIT)
                runs[name]["keep"].append(keep)
                runs[name]["new"].append(new)
                print(rnd, name, f"keep {keep.rps:,.0f}/s new {new.rps:,.0f}/s", flush=True)
    finally:
        up.stop()
    cost = parse_cost()

    def median(name: str, load: str) -> float:
        return statistics.median(r.rps for r in runs[name][load])

    lines = [
        "## PROXY protocol on and off",
        "",
        f"`bench/front_bench.py` on {machine()}. Two `hagate serve` gateways, each behind its "
        "own HAProxy (TCP mode, same source address) before the same nginx upstream: `off` "
        "without PROXY protocol, `on` with `send-proxy-v2` and `gateway.proxy_protocol` "
        f"trusting the front. Run alternately, {ROUNDS} rounds; medians. ApacheBench presents "
        "the client certificate; keep-alive reads one header per connection, new connections "
        "one per request.",
        "",
        "| load | off req/s | on req/s | on : off | rounds (off / on) |",
        "|---|---:|---:|---:|---|",
    ]
    for load, label in (("keep", "keep-alive"), ("new", "new mTLS connection per request")):
        off, on = median("off", load), median("on", load)
        each = " / ".join(", ".join(f"{r.rps:,.0f}" for r in runs[p][load]) for p in ("off", "on"))
        lines.append(f"| {label} | {off:,.0f} | {on:,.0f} | {on / off:.3f} | {each} |")
    lines += [
        "",
        f"The parser alone: {cost['v1']:.2f} µs per v1 header, {cost['v2']:.2f} µs per v2 "
        "header (with a ClientHello behind it in the same buffer).",
    ]
    finish(
        "front",
        lines,
        [
            {"keep": r, "new": n}
            for p in runs.values()
            for r, n in zip(p["keep"], p["new"], strict=True)
        ],
    )


if __name__ == "__main__":
    main()
