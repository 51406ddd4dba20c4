"""Instructions per keep-alive request in `hagate serve`, for named commits and this tree.

Throughput on a shared 2-core machine moves by 10-20% from run to run, so a step that costs
1% is lost in it. Valgrind's callgrind counts the instructions the gateway process executes
instead, which repeat to within a few tenths of a percent. For each build: the gateway under
callgrind, 300 requests to warm up, 10 s idle (what the timers and threads cost per second,
which valgrind's slowness inflates per request), then 2,000 keep-alive requests with the
client certificate (ab -k -c 8); per request = (instructions - idle rate x duration) / 2,000.
Each commit's source runs on this checkout's venv (`git archive`, PYTHONPATH), so only
hagate's own code differs.
Usage: python -m bench.instructions_bench [COMMIT ...]   (default: e551294, HEAD, this tree)
Every load is bounded by a request count.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.net import free_port, wait_listening
from tests.nginx import upstream

from bench.report import machine, write_section
from bench.tunnel_bench import stop

REPO = Path(__file__).resolve().parent.parent
REQUESTS = 2000
IDLE = 10.0


def source(commit: str, into: Path) -> Path:
    """The `src` folder of `commit` (or of this tree, for "tree")."""
    if commit == "tree":
        return REPO / "src"
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", commit, "src"], capture_output=True, check=True
    ).stdout
    into.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / "src"


def total(out: Path) -> int:
    m = re.search(r"^(?:summary|totals): (\d+)", out.read_text(), re.M)
    assert m, out
    return int(m.group(1))


def dump(pid: int, tmp: Path) -> int:
    """Instructions since the last zeroing (callgrind_control --dump), then zero them."""
    before = set(tmp.glob("cg.out.*"))
    subprocess.run(["callgrind_control", "--dump", str(pid)], capture_output=True, check=True)
    deadline = time.monotonic() + 30
    while not (new := set(tmp.glob("cg.out.*")) - before):
        assert time.monotonic() < deadline, "callgrind wrote no dump"
        time.sleep(0.2)
    time.sleep(0.5)  # let the dump finish writing
    count = total(max(new, key=lambda p: p.stat().st_mtime))
    subprocess.run(["callgrind_control", "--zero", str(pid)], capture_output=True, check=True)
    return count


def ab(url: str, pem: Path, n: int, c: int) -> None:
    done = subprocess.run(
        ["ab", "-q", "-n", str(n), "-c", str(c), "-k", "-E", str(pem), "-H", "Host: ha.test",
         url],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert f"Complete requests:      {n}" in done.stdout, done.stdout[-500:] + done.stderr


def measure(commit: str, tmp: Path, up_port: int) -> float:
    env = {**os.environ, "PYTHONPATH": str(source(commit, tmp / "src"))}

    def hagate(*args: str | Path) -> None:
        subprocess.run(
            [sys.executable, "-m", "hagate", "--state-dir", str(tmp / "state"), *map(str, args)],
            env=env, capture_output=True, check=True, timeout=120,
        )  # fmt: skip

    hagate("init", "--hostname", "ha.test", "--upstream", f"http://127.0.0.1:{up_port}")
    hagate("cert", "issue", "bench", "--pem-dir", tmp)
    pem = tmp / "ab.pem"
    pem.write_bytes((tmp / "bench.crt").read_bytes() + (tmp / "bench.key").read_bytes())
    port = free_port()
    proc = subprocess.Popen(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/cg.out",
         sys.executable, "-m", "hagate", "--state-dir", str(tmp / "state"), "serve",
         "--listen", f"127.0.0.1:{port}", "--workers", "1"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_listening(port, proc, timeout=180)
        url = f"https://127.0.0.1:{port}/small.txt"
        ab(url, pem, 300, 4)
        subprocess.run(["callgrind_control", "--zero", str(proc.pid)], capture_output=True)
        time.sleep(IDLE)
        idle_rate = dump(proc.pid, tmp) / IDLE
        start = time.monotonic()
        ab(url, pem, REQUESTS, 8)
        took = time.monotonic() - start
        busy = dump(proc.pid, tmp)
    finally:
        stop(proc)
    return (busy - idle_rate * took) / REQUESTS


def main() -> None:
    commits = sys.argv[1:] or ["e551294", "HEAD", "tree"]
    tmp = Path(tempfile.mkdtemp(prefix="hagate-instructions-"))
    up = upstream(tmp / "upstream", 1 << 20)
    results: dict[str, float] = {}
    try:
        for i, commit in enumerate(commits):
            results[commit] = measure(commit, tmp / f"build-{i}", up.port)
            print(f"{commit}: {results[commit]:,.0f} instructions/request", flush=True)
    finally:
        up.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    first = commits[0]
    lines = [
        "## Instructions per request",
        "",
        f"`bench/instructions_bench.py` on {machine()}: instructions the `hagate serve` "
        "process executes per keep-alive request (valgrind's callgrind, 2,000 requests with the "
        "client certificate after 300 to warm up, less what the process does idle over the same "
        "time), each commit's source on this checkout's venv. Unlike req/s, these repeat to "
        "within a few tenths of a percent, so a step's cost shows.",
        "",
        f"| build | instructions/request | : {first} |",
        "|---|---:|---:|",
    ]
    for commit, count in results.items():
        lines.append(f"| {commit} | {count:,.0f} | {count / results[first]:.3f} |")
    body = "\n".join(lines)
    print(body)
    write_section("instructions", body)


if __name__ == "__main__":
    main()
