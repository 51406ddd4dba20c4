"""The tunnel against SniTun (Nabu Casa's tunnel for HA's remote UI), side by side in one run.

Chains, all ending at the same nginx upstream (a small response, a 1 GiB file, websockets):
  direct  - the upstream itself, plain HTTP
  snitun  - SniTun's relay + its client peer (PyPI `snitun`, own Python 3.13 venv), forwarding
            to nginx with `ssl_verify_client on` that proxies to the upstream
  hagate  - hagate relay + hagate connect (connector and gateway)
Load: ab (client certificate with -E; SNI needs a name, so ha.test is mapped to 127.0.0.1 in
/etc/hosts for the run and restored after), curl for bulk, and 2,000 idle websockets whose
relay and home-side RSS is measured. All loops are bounded by counts and time limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet
from tests.conftest import run_hagate
from tests.e2e.homeassistant import CACHE, find_python313
from tests.gateway.harness import rss_kib
from tests.net import free_port
from tests.nginx import Nginx, upstream
from tests.tunnel.harness import Relay

from bench.gateway_bench import BULK_BYTES, Load, ab, bulk
from bench.report import finish, machine

SNITUN = "snitun==0.47.0"
IDLE_WEBSOCKETS = 2000
HOSTS = Path("/etc/hosts")
HERE = Path(__file__).resolve().parent


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()  # SniTun's server waits on its open connections; do not wait with it
            proc.wait(10)


def snitun_python() -> str:
    venv = CACHE / "snitun-0.47.0"
    if not (venv / "bin" / "python").exists():
        subprocess.run([find_python313(), "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", SNITUN], check=True)
    return str(venv / "bin" / "python")


def spawn(args: list[str], ready_line: bool = False) -> subprocess.Popen[bytes]:
    """A peer in its own session; with `ready_line`, once it has printed `ready`."""
    p = subprocess.Popen(
        args,
        stdout=subprocess.PIPE if ready_line else subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    if ready_line:
        assert p.stdout is not None
        if p.stdout.readline().strip() != b"ready":
            stop(p)
            raise RuntimeError(f"{' '.join(args[:4])} did not start")
    return p


@dataclass
class SniTun:
    """SniTun's relay on `port` and its client peer, which carries `hostname`'s connections
    (by SNI) to 127.0.0.1:`end_port`. Both run in SniTun's own venv (bench/snitun_chain.py)."""

    port: int
    relay: subprocess.Popen[bytes]
    client: subprocess.Popen[bytes]

    @classmethod
    def start(cls, end_port: int, hostname: str = "ha.test") -> SniTun:
        py, chain = snitun_python(), str(HERE / "snitun_chain.py")
        fernet = Fernet.generate_key().decode()
        port = free_port()
        relay = spawn([py, chain, "server", str(port), fernet], ready_line=True)
        try:
            token, aes_key, aes_iv = subprocess.run(
                [py, chain, "token", fernet, hostname], capture_output=True, text=True, check=True
            ).stdout.split()
            client = spawn(
                [py, chain, "client", str(port), token, aes_key, aes_iv, str(end_port)],
                ready_line=True,
            )
        except BaseException:
            stop(relay)
            raise
        return cls(port, relay, client)

    def stop(self) -> None:
        stop(self.client)
        stop(self.relay)


@contextlib.contextmanager
def hosts_entry(name: str) -> Iterator[None]:
    original = HOSTS.read_text()
    HOSTS.write_text(original + f"\n127.0.0.1 {name}  # hagate benchmark, removed after\n")
    try:
        yield
    finally:
        HOSTS.write_text(original)


def websocket_server() -> int:
    """An upstream that answers every upgrade with 101 and then holds the connection."""
    port = free_port()
    ready = threading.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n"
        )
        await writer.drain()
        await reader.read()  # idle until the client goes
        writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=4096)
        ready.set()
        async with server:
            await server.serve_forever()

    threading.Thread(target=lambda: asyncio.run(main()), daemon=True).start()
    ready.wait(10)
    return port


def open_websockets(port: int, ctx: ssl.SSLContext, n: int) -> list[ssl.SSLSocket]:
    socks = []
    request = (
        b"GET /ws HTTP/1.1\r\nHost: ha.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    for _ in range(n):
        s = ctx.wrap_socket(
            socket.create_connection(("127.0.0.1", port), timeout=30), server_hostname="ha.test"
        )
        s.sendall(request)
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(4096)
        assert head.startswith(b"HTTP/1.1 101"), head[:100]
        socks.append(s)
    return socks


def measure(base: str, pem: Path, crt: Path, key: Path, cacert: Path) -> dict[str, object]:
    ab(base + "/small.txt", 2000, 8, True, pem)
    return {
        "keep": ab(base + "/small.txt", 30_000, 32, True, pem),
        "new": ab(base + "/small.txt", 2_000, 16, False, pem),
        "bulk": bulk(base + "/big.bin", crt, key, cacert),
    }


def main() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    tmp = Path(tempfile.mkdtemp(prefix="hagate-tunnel-bench-"))
    ws_port = websocket_server()
    up = upstream(tmp / "upstream", BULK_BYTES)
    # The upstream also proxies /ws to the websocket holder.
    up.stop()
    up = Nginx(up.prefix, up.port)
    up.start(f"""
    server {{
        listen 127.0.0.1:{up.port};
        root {up.prefix}/www;
        location /ws {{
            proxy_pass http://127.0.0.1:{ws_port}; proxy_http_version 1.1; proxy_read_timeout 1h;
            proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection "upgrade";
        }}
    }}""")
    state = tmp / "home"
    assert (
        run_hagate(
            "init",
            "--hostname",
            "ha.test",
            "--upstream",
            f"http://127.0.0.1:{up.port}",
            state=state,
        ).code
        == 0
    )
    assert run_hagate("cert", "issue", "bench", "--pem-dir", tmp, state=state).code == 0
    crt, key, cacert = tmp / "bench.crt", tmp / "bench.key", state / "ca.crt"
    pem = tmp / "bench-ab.pem"
    pem.write_bytes(crt.read_bytes() + key.read_bytes())
    ctx = ssl.create_default_context(cafile=str(cacert))
    ctx.load_cert_chain(crt, key)
    results: dict[str, dict[str, object]] = {}
    procs: list[subprocess.Popen[bytes]] = []
    relay: Relay | None = None

    try:
        with hosts_entry("ha.test"):
            results["direct"] = measure(f"http://127.0.0.1:{up.port}", pem, crt, key, cacert)
            results["direct"]["pem"] = None

            # SniTun chain
            mtls_port = free_port()
            mtls = Nginx(tmp / "nginx-mtls", mtls_port)
            mtls.start(f"""
            upstream up {{ server 127.0.0.1:{up.port}; keepalive 64; }}
            server {{
                listen 127.0.0.1:{mtls_port} ssl;
                ssl_protocols TLSv1.2 TLSv1.3;  # nginx 1.22 leaves TLS 1.3 out unless told
                ssl_certificate {state}/server.crt; ssl_certificate_key {state}/server.key;
                ssl_client_certificate {state}/ca.crt; ssl_verify_client on;
                access_log {tmp}/nginx-mtls/access.log;
                location / {{ proxy_pass http://up; proxy_http_version 1.1; proxy_buffering off;
                             proxy_set_header Connection ""; }}
                location /ws {{
                    proxy_pass http://up; proxy_http_version 1.1; proxy_read_timeout 1h;
                    proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection "upgrade";
                }}
            }}""")
            snitun = SniTun.start(mtls_port)
            procs += [snitun.client, snitun.relay]
            time.sleep(1)
            results["snitun"] = measure(f"https://ha.test:{snitun.port}", pem, crt, key, cacert)
            ws = open_websockets(snitun.port, ctx, IDLE_WEBSOCKETS)
            time.sleep(2)
            nginx_kib = sum(
                rss_kib(int(p))
                for p in subprocess.run(
                    ["pgrep", "-f", f"{mtls.prefix}/nginx.conf"], capture_output=True, text=True
                ).stdout.split()
            )
            results["snitun"]["rss"] = (
                rss_kib(snitun.relay.pid),
                rss_kib(snitun.client.pid) + nginx_kib,
            )
            for s in ws:
                s.close()
            print("snitun", results["snitun"], flush=True)
            snitun.stop()
            mtls.stop()

            # hagate chain
            relay = Relay.create(tmp)
            relay.start("--max-per-ip", "100000")
            token = relay.token()

            def connect_args(workers: int) -> list[str]:
                return [
                    sys.executable,
                    "-m",
                    "hagate",
                    "--state-dir",
                    str(state),
                    "connect",
                    "--relay",
                    relay.address,
                    "--token",
                    token,
                    "--relay-fingerprint",
                    relay.fingerprint,
                    "--workers",
                    str(workers),
                ]

            hagate_home = spawn(connect_args(1))
            procs.append(hagate_home)
            time.sleep(2)
            results["hagate"] = measure(f"https://ha.test:{relay.port}", pem, crt, key, cacert)
            ws = open_websockets(relay.port, ctx, IDLE_WEBSOCKETS)
            time.sleep(2)
            results["hagate"]["rss"] = (rss_kib(relay.pid), rss_kib(hagate_home.pid))
            print("hagate", results["hagate"], flush=True)
            for s in ws:
                s.close()
            stop(hagate_home)
            # The home side on both cores (SniTun's home side is two processes too).
            procs.append(spawn(connect_args(2)))
            time.sleep(3)
            results["hagate, 2 workers"] = measure(
                f"https://ha.test:{relay.port}", pem, crt, key, cacert
            )
            print("hagate2", results["hagate, 2 workers"], flush=True)
    finally:
        for p in procs:
            stop(p)
        if relay is not None:
            relay.stop()
        up.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    lines = [
        "## Tunnel against SniTun",
        "",
        f"`bench/tunnel_bench.py` on {machine()}. Same nginx upstream; ApacheBench presents "
        "the client certificate; bulk is one 1 GiB curl download; memory is RSS with "
        f"{IDLE_WEBSOCKETS:,} idle websockets open through the chain, each process with its "
        "children (SniTun's home side counts its client peer and the nginx, master and worker, "
        "that checks certificates; hagate's counts its event writer). That nginx writes its "
        "access log, as hagate writes its event log.",
        "",
        "| chain | keep-alive req/s | p50 / p99 ms | new conn/s | bulk MB/s | relay RSS "
        "| home RSS |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, res in results.items():
        k, n = res["keep"], res["new"]
        assert isinstance(k, Load) and isinstance(n, Load)
        rss = res.get("rss")
        mem = (
            ("", "")
            if not isinstance(rss, tuple)
            else (f"{rss[0] / 1024:.0f} MB", f"{rss[1] / 1024:.0f} MB")
        )
        lines.append(
            f"| {name} | {k.rps:,.0f} | {k.p50:.0f} / {k.p99:.0f} | {n.rps:,.0f} | "
            f"{res['bulk']:,.0f} | {mem[0]} | {mem[1]} |"
        )
    h, sn_res = results["hagate"], results["snitun"]
    hk, sk, hn, sn = h["keep"], sn_res["keep"], h["new"], sn_res["new"]
    assert (
        isinstance(hk, Load)
        and isinstance(sk, Load)
        and isinstance(hn, Load)
        and isinstance(sn, Load)
    )
    hb, sb = h["bulk"], sn_res["bulk"]
    assert isinstance(hb, float) and isinstance(sb, float)
    hr = h["rss"]
    assert isinstance(hr, tuple)
    lines += [
        "",
        "Ratios, hagate (one home process) : SniTun (targets: keep-alive ≥ 2, new connections "
        "≥ 2, bulk ≥ 5; "
        "relay under 150 MB for the idle websockets):",
        "",
        "| keep-alive | new connections | bulk | hagate relay RSS |",
        "|---:|---:|---:|---:|",
        f"| {hk.rps / sk.rps:.2f} | {hn.rps / sn.rps:.2f} | {hb / sb:.2f} "
        f"| {hr[0] / 1024:.0f} MB |",
    ]
    finish("tunnel", lines, results.values())
    del soft


if __name__ == "__main__":
    main()
