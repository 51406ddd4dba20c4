"""This checkout against a named earlier commit, built from git in a scratch venv, in one run.

Each step of the request path can cost "within the noise" of its own before/after and a wave of
them still cost a sixth of the speed. So the figures that matter are taken against a fixed
baseline, with both builds run alternately under the same load in the same run (A B, B A, ...),
and reported as ratios of medians:
  serve       - `hagate serve`, one worker, keep-alive requests with the client certificate
                (ab -k -c 32), and the server's CPU time per request
  relay       - the relay chain (hagate relay run + hagate connect, one worker), keep-alive
  relay bulk  - the relay chain, one 256 MiB download (curl)
Every build runs with its own state directory, made by its own `init`. The baseline is built
once per commit and kept in the cache (~/.cache/hagate/baseline-<commit>).
Usage: python -m bench.baseline_bench [BASELINE [ROUNDS [CANDIDATE]]]: by default e551294
against this working tree, 3 rounds; a CANDIDATE commit is built the same way as the baseline.
Every load is bounded by a request count and a time limit.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.e2e.homeassistant import CACHE
from tests.net import free_port, wait_listening
from tests.nginx import upstream

from bench.gateway_bench import ab, bulk
from bench.report import machine, write_section
from bench.steps_bench import cpu_ticks
from bench.tunnel_bench import hosts_entry, spawn, stop

BASELINE = "e551294"
ROUNDS = 3
KEEPALIVE_REQUESTS = 30_000
CONCURRENCY = 32
BULK_BYTES = 256 << 20
REPO = Path(__file__).resolve().parent.parent


def build(commit: str) -> Path:
    """The python of a venv with `commit` installed (not editable), built once and cached."""
    sha = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--verify", f"{commit}^{{commit}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    home = CACHE / f"baseline-{sha[:12]}"
    python = home / "venv" / "bin" / "python"
    if (home / "built").exists():
        return python
    shutil.rmtree(home, ignore_errors=True)
    (home / "src").mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", sha], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(home / "src")], input=archive, check=True)
    subprocess.run([sys.executable, "-m", "venv", str(home / "venv")], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", str(home / "src")], check=True)
    (home / "built").write_text(sha + "\n")
    return python


@dataclass
class Build:
    """One build of hagate: its python, its own home state, client certificate and relay."""

    name: str
    python: str
    tmp: Path
    figures: dict[str, list[float]] = field(default_factory=dict)

    def hagate(self, *args: str | Path, state: Path) -> str:
        done = subprocess.run(
            [self.python, "-m", "hagate", "--state-dir", str(state), *map(str, args)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            raise SystemExit(f"{self.name}: hagate {' '.join(map(str, args))}: {done.stderr}")
        return done.stdout

    def prepare(self, up_port: int) -> None:
        self.home = self.tmp / "home"
        self.hagate(
            "init", "--hostname", "ha.test", "--upstream", f"http://127.0.0.1:{up_port}",
            state=self.home,
        )  # fmt: skip
        self.hagate("cert", "issue", "bench", "--pem-dir", self.tmp, state=self.home)
        self.crt, self.key = self.tmp / "bench.crt", self.tmp / "bench.key"
        self.pem = self.tmp / "bench-ab.pem"
        self.pem.write_bytes(self.crt.read_bytes() + self.key.read_bytes())
        self.relay_state = self.tmp / "relay"
        out = self.hagate("relay", "init", "--hostname", "relay.test", state=self.relay_state)
        self.fingerprint = out.strip().splitlines()[-1]
        self.token = self.hagate(
            "relay", "token", "--hostname", "ha.test", "--days", "2", state=self.relay_state
        ).strip()

    def note(self, figure: str, value: float) -> None:
        self.figures.setdefault(figure, []).append(value)

    @contextmanager
    def process(self, *args: str) -> Iterator[subprocess.Popen[bytes]]:
        proc = spawn([self.python, "-m", "hagate", *args])
        try:
            yield proc
        finally:
            stop(proc)

    def serve(self) -> None:
        port = free_port()
        with self.process(
            "--state-dir", str(self.home), "serve", "--listen", f"127.0.0.1:{port}",
            "--workers", "1",
        ) as proc:  # fmt: skip
            wait_listening(port, proc)
            url = f"https://127.0.0.1:{port}/small.txt"
            ab(url, 2000, 8, True, self.pem)  # warm-up
            u0, k0 = cpu_ticks(proc.pid)
            load = ab(url, KEEPALIVE_REQUESTS, CONCURRENCY, True, self.pem, time_limit=None)
            u1, k1 = cpu_ticks(proc.pid)
        assert not load.failed, f"{self.name}: {load.failed} failed requests"
        self.note("serve req/s", load.rps)
        per = 1e6 / os.sysconf("SC_CLK_TCK") / KEEPALIVE_REQUESTS
        self.note("serve CPU µs/request", (u1 - u0 + k1 - k0) * per)

    def wait_home(self, port: int) -> None:
        """Until a request reaches the home through the relay (its connector is connected)."""
        ctx = ssl.create_default_context(cafile=str(self.home / "ca.crt"))
        ctx.load_cert_chain(self.crt, self.key)
        deadline = time.monotonic() + 30
        while True:
            try:
                with (
                    socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
                    ctx.wrap_socket(raw, server_hostname="ha.test") as tls,
                ):
                    tls.sendall(b"GET /small.txt HTTP/1.1\r\nHost: ha.test\r\n\r\n")
                    if tls.recv(100).startswith(b"HTTP/1.1 200"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"{self.name}: the home never came up behind the relay")
            time.sleep(0.2)

    def relay_chain(self) -> None:
        port = free_port()
        with self.process(
            "--state-dir", str(self.relay_state), "relay", "run",
            "--listen", f"127.0.0.1:{port}", "--rate-per-ip", "100000", "--max-per-ip", "100000",
        ) as relay:  # fmt: skip
            wait_listening(port, relay)
            with self.process(
                "--state-dir", str(self.home), "connect", "--relay", f"relay.test:{port}@127.0.0.1",
                "--token", self.token, "--relay-fingerprint", self.fingerprint, "--workers", "1",
            ):  # fmt: skip
                url = f"https://ha.test:{port}/small.txt"
                print(f"{self.name}: relay chain on {port}", flush=True)
                self.wait_home(port)
                ab(url, 2000, 8, True, self.pem)  # warm-up
                load = ab(url, KEEPALIVE_REQUESTS, CONCURRENCY, True, self.pem, time_limit=None)
                assert not load.failed, f"{self.name}: {load.failed} failed requests"
                self.note("relay req/s", load.rps)
                self.note(
                    "relay bulk MB/s",
                    bulk(
                        f"https://127.0.0.1:{port}/big.bin",
                        self.crt,
                        self.key,
                        self.home / "ca.crt",
                        BULK_BYTES,
                    ),
                )


FIGURES = ("serve req/s", "serve CPU µs/request", "relay req/s", "relay bulk MB/s")


def main() -> None:
    commit = sys.argv[1] if len(sys.argv) > 1 else BASELINE
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else ROUNDS
    base_python = build(commit)
    candidate = sys.argv[3] if len(sys.argv) > 3 else "main"
    candidate_python = sys.executable if candidate == "main" else str(build(candidate))
    tmp = Path(tempfile.mkdtemp(prefix="hagate-baseline-"))
    up = upstream(tmp / "upstream", BULK_BYTES)
    builds = [
        Build(commit, str(base_python), tmp / "baseline"),
        Build(candidate, candidate_python, tmp / "candidate"),
    ]
    try:
        for b in builds:
            b.tmp.mkdir()
            b.prepare(up.port)
        with hosts_entry("ha.test"):
            for r in range(rounds):
                order = builds if r % 2 == 0 else builds[::-1]
                for b in order:
                    b.serve()
                for b in order:
                    b.relay_chain()
                print(f"round {r + 1}:", {b.name: b.figures for b in builds}, flush=True)
    finally:
        up.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    base, cand = builds
    bulk_gib = BULK_BYTES >> 20
    lines = [
        "## This checkout against the baseline commit",
        "",
        f"`bench/baseline_bench.py {commit} {rounds}` on {machine()}. The baseline is built "
        "from git in a scratch venv (as is a named candidate; `main` is this working tree); "
        "both builds run alternately in the same run, each with "
        f"its own state, {rounds} rounds. Keep-alive: ab -k -c {CONCURRENCY}, "
        f"{KEEPALIVE_REQUESTS:,} requests with the client certificate, nginx upstream; bulk: "
        f"one {bulk_gib} MiB curl download through the relay chain. Medians (range).",
        "",
        f"| figure | {commit} | {candidate} | {candidate} : {commit} |",
        "|---|---:|---:|---:|",
    ]
    for name in FIGURES:
        old, new = base.figures[name], cand.figures[name]
        lines.append(
            f"| {name} | {statistics.median(old):,.0f} ({min(old):,.0f}-{max(old):,.0f}) "
            f"| {statistics.median(new):,.0f} ({min(new):,.0f}-{max(new):,.0f}) "
            f"| {statistics.median(new) / statistics.median(old):.2f} |"
        )
    body = "\n".join(lines)
    print(body)
    write_section("baseline", body)


if __name__ == "__main__":
    main()
