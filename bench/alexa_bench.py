"""Alexa latency through the local chain: relay -> tunnel -> gateway -> a real Home Assistant.

Three Lambda modules run the same way (python3.13 -I, unpacked, by hagate's runner):
  hagate     - the handler from `hagate alexa bundle`
  reference  - Home Assistant's documented handler's behaviour: a new connection per directive
  floor      - a bare POST over one kept HTTPS connection: the least a handler can cost
Cold start: a fresh interpreter per run, from spawning it to the first answer (interpreter,
import, configuration, the first directive with its mutual-TLS handshake), COLD_RUNS times.
Warm: one interpreter, one cold directive, then WARM directives (ReportState), WARM_ROUNDS
times; median and p99 over all. The peers take turns so that drift hits each alike.
Bounded by counts; everything listens on loopback.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
import zipfile
from importlib import resources
from pathlib import Path
from typing import Any

import urllib3
from tests.conftest import run_hagate
from tests.e2e.homeassistant import HomeAssistant, find_python313
from tests.gateway.harness import make_gateway
from tests.net import free_port
from tests.tunnel.harness import Relay, start_connector

from bench.alexa_peers import FLOOR, REFERENCE
from bench.report import machine, write_section
from hagate.alexa.directives import directive

COLD_RUNS = 15
WARM = 200
WARM_ROUNDS = 3
ENTITY = "input_boolean.kitchen_light"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Peer:
    def __init__(self, name: str, folder: Path, sys_path: list[str]) -> None:
        self.name, self.folder, self.sys_path = name, folder, sys_path

    def run(
        self, events: list[dict[str, Any]], python: str, tmp: Path
    ) -> tuple[float, list[float]]:
        """(ms from spawn to the first answer, ms of each later invocation)."""
        script = tmp / f"{self.name}-script.json"
        script.write_text(
            json.dumps({"invocations": [{"event": e} for e in events], "sys_path": self.sys_path})
        )
        runner = tmp / "runner.py"
        flags = ["-I"] if self.sys_path else ["-I", "-S"]
        t0 = time.monotonic()
        proc = subprocess.Popen(
            [python, *flags, str(runner), str(self.folder), str(script)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        first = proc.stdout.readline()
        cold = (time.monotonic() - t0) * 1000
        lines = [first, *proc.stdout.readlines()]
        proc.wait(60)
        records = [json.loads(line) for line in lines if line.strip()]
        for r in records:
            event = (r["response"] or {}).get("event", {})
            assert r["raised"] is None and event.get("header", {}).get("name") != "ErrorResponse", r
        return cold, [r["ms"] for r in records[1:]]


def main() -> None:
    python = find_python313()
    with tempfile.TemporaryDirectory(prefix="hagate-alexa-bench-") as t:
        tmp = Path(t)
        ha = HomeAssistant(tmp / "ha", free_port())
        ha.start()
        relay = None
        g = make_gateway(tmp / "gw")
        try:
            g.upstream.close()
            cfg = g.state / "hagate.yaml"
            cfg.write_text(cfg.read_text().replace(f"http://127.0.0.1:{g.upstream.port}", ha.url))
            relay = Relay.create(tmp)
            relay.start()
            start_connector(g, [relay], relay.token())
            ha.onboard(f"https://ha.test:{relay.port}")
            token = ha.long_lived_token("bench")
            (tmp / "token").write_text(token + "\n")
            bundle = tmp / "alexa.zip"
            r = run_hagate(
                "alexa",
                "bundle",
                "--out",
                bundle,
                "--url",
                f"https://ha.test:{relay.port}",
                "--connect-address",
                "127.0.0.1",
                "--long-lived-token-file",
                tmp / "token",
                state=g.state,
            )
            assert r.code == 0, r.err
            (tmp / "runner.py").write_bytes(
                resources.files("hagate.alexa").joinpath("runner.py").read_bytes()
            )
            peers = {}
            for name, source in (("hagate", None), ("reference", REFERENCE), ("floor", FLOOR)):
                folder = tmp / name
                with zipfile.ZipFile(bundle) as z:
                    z.extractall(folder)
                if source is not None:
                    (folder / "lambda_function.py").write_text(source)
                    (folder / "bench.json").write_text(
                        json.dumps(
                            {
                                "name": "ha.test",
                                "address": "127.0.0.1",
                                "port": relay.port,
                                "token": token,
                            }
                        )
                    )
                urllib3_path = str(Path(urllib3.__file__).resolve().parents[1])
                peers[name] = Peer(name, folder, [urllib3_path] if name == "reference" else [])
            event = directive("report-state", ENTITY)
            colds: dict[str, list[float]] = {name: [] for name in peers}
            warms: dict[str, list[float]] = {name: [] for name in peers}
            # Interleaved, so that Home Assistant's own drift (its timers, its caches) falls
            # on every peer alike rather than on whichever ran last.
            for _ in range(COLD_RUNS):
                for name, peer in peers.items():
                    colds[name].append(peer.run([event], python, tmp)[0])
            for _ in range(WARM_ROUNDS):
                for name, peer in peers.items():
                    warms[name] += peer.run([event] * (WARM + 1), python, tmp)[1]
            results: dict[str, dict[str, float]] = {}
            for name in peers:
                results[name] = {
                    "cold": statistics.median(colds[name]),
                    "cold_p90": percentile(colds[name], 0.9),
                    "warm": statistics.median(warms[name]),
                    "warm_p99": percentile(warms[name], 0.99),
                }
                print(name, results[name], flush=True)
        finally:
            g.stop()
            if relay is not None:
                relay.stop()
            ha.stop()
            shutil.rmtree(tmp / "ha", ignore_errors=True)
    report(results)


def report(results: dict[str, dict[str, float]]) -> None:
    h, ref, floor = results["hagate"], results["reference"], results["floor"]
    rows = [
        "## Alexa handler latency",
        "",
        f"`bench/alexa_bench.py` on {machine()}: a ReportState directive through relay ->",
        "tunnel -> gateway -> a real Home Assistant (all on loopback), each handler run as Lambda",
        f"runs it (python3.13 -I, unpacked, by hagate's runner). Cold: median of {COLD_RUNS} fresh",
        "interpreters, spawn to first answer (import, configuration, the first directive with its",
        f"mutual-TLS handshake). Warm: {WARM_ROUNDS} rounds of {WARM} directives in one",
        "interpreter after a cold one; the peers take turns, cold and warm.",
        "",
        "| handler | cold median | cold p90 | warm median | warm p99 |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, label in (
        ("hagate", "hagate"),
        ("reference", "HA's reference (new connection each)"),
        ("floor", "plain HTTPS, kept connection"),
    ):
        r = results[name]
        rows.append(
            f"| {label} | {r['cold']:.1f} ms | {r['cold_p90']:.1f} ms | "
            f"{r['warm']:.2f} ms | {r['warm_p99']:.2f} ms |"
        )
    warm_ratio = h["warm"] / floor["warm"]
    cold_ratio = h["cold"] / ref["cold"]
    rows += [
        "",
        f"- Warm directive: hagate {warm_ratio:.2f}x the plain request over a kept connection"
        f" (target at most 1.2x: {'met' if warm_ratio <= 1.2 else 'missed'}); the reference"
        f" handler, which connects anew each time, is {ref['warm'] / h['warm']:.1f}x hagate.",
        f"- Cold start: hagate {cold_ratio:.2f}x the reference handler's first directive"
        f" (target at most 1x: {'met' if cold_ratio <= 1 else 'missed'}).",
    ]
    body = "\n".join(rows)
    print(body)
    write_section("alexa", body)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
