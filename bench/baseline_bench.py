"""This checkout against a named earlier commit, built from git in a scratch venv, in one run.

Each step of the request path can cost "within the noise" of its own before/after and a wave of
them still cost a sixth of the speed. So the figures that matter are taken against a fixed
baseline, both builds running side by side in the same run, and reported as ratios:
  serve       - `hagate serve`, one worker, keep-alive requests with the client certificate
                (ab -k -c 32), and the server's CPU time per request
  relay       - the relay chain (hagate relay run + hagate connect, one worker), keep-alive
  relay bulk  - the relay chain, one 128 MiB download (curl)
On a shared 2-core machine the speed drifts by 10-20% over minutes, so both builds are started
together and the load goes to them in short bursts, turn about (A B, B A, ...): each round's
ratio compares two bursts a few seconds apart, and the figure reported is the median of the
rounds' ratios, with how many rounds the candidate was at least as fast.
Every build runs with its own state directory, made by its own `init`. The baseline is built
once per commit and kept in the cache (~/.cache/hagate/baseline-<commit>).
Usage: python -m bench.baseline_bench [BASELINE [ROUNDS [CANDIDATE]]]: by default e551294
against this working tree, 12 rounds; a CANDIDATE commit is built the same way as the baseline.
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
from contextlib import ExitStack, contextmanager
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
ROUNDS = 12
BURST = 8_000  # keep-alive requests per build and round: a few seconds each
CONCURRENCY = 32
BULK_BYTES = 128 << 20
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

    def serve(self, stack: ExitStack) -> str:
        """Start `hagate serve` (one worker), warmed up; its URL."""
        port = free_port()
        proc = stack.enter_context(
            self.process(
                "--state-dir", str(self.home), "serve", "--listen", f"127.0.0.1:{port}",
                "--workers", "1",
            )
        )  # fmt: skip
        wait_listening(port, proc)
        url = f"https://127.0.0.1:{port}/small.txt"
        ab(url, 2000, 8, True, self.pem)  # warm-up
        self.serve_pid = proc.pid
        return url

    def serve_burst(self, url: str) -> None:
        u0, k0 = cpu_ticks(self.serve_pid)
        load = ab(url, BURST, CONCURRENCY, True, self.pem, time_limit=None)
        u1, k1 = cpu_ticks(self.serve_pid)
        assert not load.failed, f"{self.name}: {load.failed} failed requests"
        self.note("serve req/s", load.rps)
        per = 1e6 / os.sysconf("SC_CLK_TCK") / BURST
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

    def relay_chain(self, stack: ExitStack) -> int:
        """Start the relay chain (relay and connector, one worker), warmed up; its port."""
        port = free_port()
        relay = stack.enter_context(
            self.process(
                "--state-dir", str(self.relay_state), "relay", "run",
                "--listen", f"127.0.0.1:{port}", "--rate-per-ip", "100000",
                "--max-per-ip", "100000",
            )
        )  # fmt: skip
        wait_listening(port, relay)
        stack.enter_context(
            self.process(
                "--state-dir", str(self.home), "connect", "--relay", f"relay.test:{port}@127.0.0.1",
                "--token", self.token, "--relay-fingerprint", self.fingerprint, "--workers", "1",
            )
        )  # fmt: skip
        self.wait_home(port)
        ab(f"https://ha.test:{port}/small.txt", 2000, 8, True, self.pem)  # warm-up
        return port

    def relay_burst(self, port: int) -> None:
        load = ab(
            f"https://ha.test:{port}/small.txt", BURST, CONCURRENCY, True, self.pem,
            time_limit=None,
        )  # fmt: skip
        assert not load.failed, f"{self.name}: {load.failed} failed requests"
        self.note("relay req/s", load.rps)

    def relay_bulk(self, port: int) -> None:
        url = f"https://127.0.0.1:{port}/big.bin"
        speed = bulk(url, self.crt, self.key, self.home / "ca.crt", BULK_BYTES)
        self.note("relay bulk MB/s", speed)


FIGURES = ("serve req/s", "serve CPU µs/request", "relay req/s", "relay bulk MB/s")
BULK_ROUNDS = 6  # at most: a download takes a second or two


def turns(builds: list[Build], rounds: int) -> Iterator[tuple[int, list[Build]]]:
    """Each round's order: A B, then B A, and so on."""
    for r in range(rounds):
        yield r, builds if r % 2 == 0 else builds[::-1]


def paired(base: list[float], cand: list[float]) -> list[float]:
    """Each round's candidate : baseline."""
    return [c / b for b, c in zip(base, cand, strict=True)]


def row(name: str, old: list[float], new: list[float]) -> str:
    """A figure's line: each build's median (range), then the rounds' ratios: their median,
    their range, and in how many rounds the candidate was at least as good."""
    ratios = paired(old, new)
    lower_is_better = "µs" in name
    good = sum(1 for x in ratios if (x <= 1 if lower_is_better else x >= 1))
    return (
        f"| {name} | {statistics.median(old):,.0f} ({min(old):,.0f}-{max(old):,.0f}) "
        f"| {statistics.median(new):,.0f} ({min(new):,.0f}-{max(new):,.0f}) "
        f"| {statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f}) "
        f"| {good} of {len(ratios)} |"
    )


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
        with ExitStack() as stack:  # both gateways up at once; the load takes turns
            urls = {b.name: b.serve(stack) for b in builds}
            for r, order in turns(builds, rounds):
                for b in order:
                    b.serve_burst(urls[b.name])
                print(f"serve round {r + 1}:", [b.figures["serve req/s"][-1] for b in builds])
        with hosts_entry("ha.test"), ExitStack() as stack:
            ports = {b.name: b.relay_chain(stack) for b in builds}
            for r, order in turns(builds, rounds):
                for b in order:
                    b.relay_burst(ports[b.name])
                print(f"relay round {r + 1}:", [b.figures["relay req/s"][-1] for b in builds])
            for r, order in turns(builds, min(rounds, BULK_ROUNDS)):
                for b in order:
                    b.relay_bulk(ports[b.name])
                print(f"bulk round {r + 1}:", [b.figures["relay bulk MB/s"][-1] for b in builds])
    finally:
        up.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    base, cand = builds
    lines = [
        "## This checkout against the baseline commit",
        "",
        f"`bench/baseline_bench.py {commit} {rounds}` on {machine()}. The baseline is built "
        "from git in a scratch venv (as is a named candidate; `main` is this working tree). "
        "Both builds run at once, each with its own state, and the load goes to them in turns "
        f"(A B, B A, ...), {rounds} rounds: keep-alive bursts of {BURST:,} requests (ab -k "
        f"-c {CONCURRENCY}, with the client certificate, nginx upstream) to `hagate serve` "
        "(one worker) and to the relay chain, then "
        f"{min(rounds, BULK_ROUNDS)} rounds of one {BULK_BYTES >> 20} MiB curl download "
        "through the relay chain. Each build's median (range); each round's ratio of the two "
        "bursts, a few seconds apart, their median (range), and the rounds where this "
        "checkout did at least as well.",
        "",
        f"| figure | {commit} | {candidate} | {candidate} : {commit}, per round "
        "| rounds at least as good |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [row(name, base.figures[name], cand.figures[name]) for name in FIGURES]
    body = "\n".join(lines)
    print(body)
    write_section("baseline", body)


if __name__ == "__main__":
    main()
