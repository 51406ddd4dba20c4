"""The console on a month of a busy home: every page and API call timed on the 1,000,000-row
log of bench/events_bench.py, served by the real admin listener (hagate.console.listener) and
fetched over loopback as a browser or a script would. Each is timed three times (best and
worst reported). Bounded by counts.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

from bench.events_bench import ROWS, generate
from bench.report import machine, write_section
from hagate.console.access import ConsoleAccess
from hagate.console.listener import AdminServer
from hagate.state import StateDir
from hagate.watch.metrics import prepare

PASSWORD = "benchmark password"


def fetch(
    port: int,
    method: str,
    target: str,
    headers: dict[str, str],
    body: bytes | None = None,
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request(method, target, body=body, headers={"Host": f"127.0.0.1:{port}", **headers})
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, data


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="hagate-console-bench-") as tmp:
        state_path = Path(tmp) / "state"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "hagate",
                "--state-dir",
                str(state_path),
                "init",
                "--hostname",
                "ha.example.com",
                "--upstream",
                "http://127.0.0.1:8123",
            ],
            check=True,
            capture_output=True,
        )
        for name in ("phone", "tablet", "laptop"):
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "hagate",
                    "--state-dir",
                    str(state_path),
                    "cert",
                    "issue",
                    name,
                ],
                check=True,
                capture_output=True,
            )
        state = StateDir(state_path)
        generated = generate(state_path / "events.sqlite3")
        access = ConsoleAccess(state)
        access.set_password(PASSWORD)
        token = access.create_token("bench")
        secret, session = access.open_session("password")
        from tests.net import free_port

        server = AdminServer(f"127.0.0.1:{free_port()}", state, prepare(state)).start()
        port = server.port
        page = {"Cookie": f"hagate_console={secret}"}
        # The suggestions the console began to work out when it started: how long until they
        # are there (the page shows "working them out" meanwhile, and looks again).
        t0 = time.monotonic()
        while b"review and apply" not in fetch(port, "GET", "/console/suggestions/list", page)[1]:
            time.sleep(0.1)
        first_suggestions = (time.monotonic() - t0) * 1000
        api = {"Authorization": f"Bearer {token}"}
        post = {**page, "Content-Type": "application/x-www-form-urlencoded"}
        rules: list[dict[str, Any]] = [
            {
                "description": "Let the iOS app in",
                "expression": 'http.user_agent contains "io.robbie.HomeAssistant"'
                " and ip.src.asnum in {3320}",
                "action": "skip",
                "origin": None,
            },
            {
                "description": "Require a certificate",
                "expression": "not cf.tls_client_auth.cert_verified",
                "action": "block",
                "origin": 0,
            },
        ]
        form: dict[str, str] = {"csrf": session.csrf, "intent": "replay"}
        for n, r in enumerate(rules):
            form |= {
                f"description-{n}": str(r["description"]),
                f"expression-{n}": str(r["expression"]),
                f"action-{n}": str(r["action"]),
                f"enabled-{n}": "on",
                f"origin-{n}": "" if r["origin"] is None else str(r["origin"]),
            }
        replay_form = urllib.parse.urlencode(form).encode()
        replay_json = json.dumps({"rules": rules}).encode()
        cases: list[tuple[str, str, str, dict[str, str], bytes | None]] = [
            ("overview page", "GET", "/console/", page, None),
            ("events page (newest 50)", "GET", "/console/events", page, None),
            (
                "events page, blocked in 24h",
                "GET",
                "/console/events?since=24h&action=block",
                page,
                None,
            ),
            (
                "events page, user agent (scans all)",
                "GET",
                "/console/events?ua=Nothing-matches",
                page,
                None,
            ),
            ("events page, one address", "GET", "/console/events?ip=203.0.113.7", page, None),
            (
                "events page, the 10th page",
                "GET",
                f"/console/events?before={ROWS - 500}",
                page,
                None,
            ),
            ("live tail poll", "GET", f"/console/events/tail?after={ROWS - 20}", page, None),
            ("one event, explained", "GET", f"/console/events/{ROWS // 2}", page, None),
            ("devices page", "GET", "/console/devices", page, None),
            ("rules page", "GET", "/console/rules", page, None),
            ("rules replay, 7 days", "POST", "/console/rules", post, replay_form),
            (
                "suggestions page (kept, worked out every minute)",
                "GET",
                "/console/suggestions",
                page,
                None,
            ),
            (
                "suggestions page, look again now (30 days)",
                "GET",
                "/console/suggestions?fresh=1",
                page,
                None,
            ),
            ("a suggestion's diff", "GET", "/console/suggestions/1", page, None),
            ("audit page", "GET", "/console/audit?fresh=1", page, None),
            ("API overview", "GET", "/api/v1/overview", api, None),
            ("API events (50)", "GET", "/api/v1/events", api, None),
            ("API events, country RU", "GET", "/api/v1/events?country=RU", api, None),
            ("API one event", "GET", f"/api/v1/events/{ROWS // 3}", api, None),
            ("API devices", "GET", "/api/v1/devices", api, None),
            ("API rules", "GET", "/api/v1/rules", api, None),
            (
                "API rules replay, 7 days",
                "POST",
                "/api/v1/rules/replay",
                {**api, "Content-Type": "application/json"},
                replay_json,
            ),
            ("API suggestions (kept)", "GET", "/api/v1/suggestions", api, None),
            ("API suggestions --since 7d (kept)", "GET", "/api/v1/suggestions?since=7d", api, None),
            ("API audit", "GET", "/api/v1/audit?fresh=1", api, None),
        ]
        # Periods the API was not asked for before: answered at once (200 when worked out
        # within the call's wait, else 202), then ready after this long.
        waits: dict[str, tuple[int, float, float]] = {}
        for period in ("7d", "29d"):
            t0 = time.monotonic()
            status, _ = fetch(port, "GET", f"/api/v1/suggestions?since={period}", api)
            first = (status, (time.monotonic() - t0) * 1000)
            while status == 202:
                time.sleep(0.1)
                status, _ = fetch(port, "GET", f"/api/v1/suggestions?since={period}", api)
            waits[period] = (*first, (time.monotonic() - t0) * 1000)
        results: list[tuple[str, int, float, float, int]] = []
        for name, method, target, headers, body in cases:
            times = []
            status, data = 0, b""
            for _ in range(3):
                t0 = time.monotonic()
                status, data = fetch(port, method, target, headers, body)
                times.append((time.monotonic() - t0) * 1000)
            assert status == 200, (name, status, data[:300])
            results.append((name, status, min(times), max(times), len(data)))
            print(f"{name:<40} {min(times):8.1f} ms {max(times):8.1f} ms {len(data):>8} B")
        replayed = json.loads(
            fetch(
                port,
                "POST",
                "/api/v1/rules/replay",
                {**api, "Content-Type": "application/json"},
                replay_json,
            )[1]
        )
        server.close()
    worst = max(r[3] for r in results)
    lines = [
        "## The console on a 1,000,000-row event log",
        "",
        f"{machine()}. bench/console_bench.py: the log of bench/events_bench.py ({ROWS:,} rows"
        f" over 30 days, made in {generated:.0f} s), served by the admin listener and fetched"
        " over loopback; each call made three times.",
        "",
        "| page or call | best (ms) | worst (ms) | bytes |",
        "|---|---:|---:|---:|",
        *[f"| {n} | {lo:.0f} | {hi:.0f} | {size:,} |" for n, _, lo, hi, size in results],
        "",
        f"Slowest of all: {worst:.0f} ms (the target: under 1,000 ms). The suggestions are"
        " worked out in the background when the console starts, then every minute and when"
        " asked to look again; pages show what is kept and look again by themselves. Working"
        f" them out on this log takes {first_suggestions:.0f} ms (as long as `hagate events"
        " suggest` does). The API asked for a period it had not kept answered "
        + "; ".join(
            f"`?since={p}` {st} in {first:.0f} ms, ready {ready:.0f} ms after the first call"
            for p, (st, first, ready) in waits.items()
        )
        + "."
        + " The replay judged"
        f" {replayed['requests']:,} requests of the last 7 days as {replayed['distinct']:,}"
        " distinct ones (address, network, host, method, path, agent, certificate), each"
        " once; with the iOS rule above the certificate rule,"
        f" {replayed['to_let_in']:,} blocked requests would have been let in.",
    ]
    section = "\n".join(lines)
    print(section)
    write_section("console", section)


if __name__ == "__main__":
    main()
