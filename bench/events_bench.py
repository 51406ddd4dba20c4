"""`hagate events` queries over a month of a busy home: 1,000,000 event rows.

The rows mix what a household's log holds: its own devices with certificates (most rows), the
companion app from two mobile networks, Amazon's servers, and scanners probing from thousands
of addresses. Each query is the one the command runs (hagate.review.query), timed three times
(best reported), on a store made by the event writer's own schema and indexes. A writer thread
keeps inserting 500-row batches during a full export, to show reading never blocks it.
Bounded by counts.
"""

from __future__ import annotations

import random
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.report import machine, write_section
from hagate.events.store import connect, write_rows
from hagate.review.query import EventFilter, open_log, parse_network, recent, rows, top

ROWS = 1_000_000
DAYS = 30
PROBES = [
    "/wp-login.php",
    "/.env",
    "/cgi-bin/luci",
    "/phpmyadmin/",
    "/admin/config.php",
    "/.git/config",
    "/boaform/admin/formLogin",
    "/actuator/health",
]
HOME_PATHS = [
    "/api/websocket",
    "/api/states",
    "/frontend_latest/app.js",
    "/auth/token",
    "/api/history/period",
    "/lovelace/0",
    "/manifest.json",
    "/api/camera_proxy/camera.door",
]


def generate(path: Path, seed: int = 1) -> float:
    rng = random.Random(seed)
    now = time.time()
    start = now - DAYS * 86400
    db = connect(path)
    scanners = [f"198.51.{rng.randrange(256)}.{rng.randrange(256)}" for _ in range(5000)]
    homes = [f"203.0.113.{i}" for i in range(1, 40)]
    certs = ["phone", "tablet", "laptop", "alexa", "wall-panel", "kid-phone"]
    uas = [f"Mozilla/5.0 (X11; Linux x86_64) Chrome/{v}" for v in range(100, 140)]
    ios = "Home Assistant/2026.1 (io.robbie.HomeAssistant; build:1; iOS 17.5.1)"
    t0 = time.monotonic()
    batch: list[tuple[Any, ...]] = []
    for i in range(ROWS):
        when = start + (now - start) * i / ROWS
        kind = rng.random()
        row: list[Any]
        if kind < 0.70:  # the household's devices
            ip, asn, cc = rng.choice(homes), 3320, "DE"
            row = [
                ip,
                asn,
                cc,
                "GET",
                rng.choice(HOME_PATHS),
                rng.choice(uas),
                rng.choice(certs),
                None,
                "allow",
                200,
            ]
        elif kind < 0.78:  # the iOS app from mobile networks
            asn = rng.choice([3320, 6805])
            row = [
                f"100.64.{rng.randrange(256)}.{rng.randrange(256)}",
                asn,
                "DE",
                "GET",
                rng.choice(HOME_PATHS),
                ios,
                None,
                "iOS companion app",
                "skip",
                200,
            ]
        elif kind < 0.80:  # Amazon at /auth/token
            row = [
                f"52.94.{rng.randrange(256)}.{rng.randrange(256)}",
                16509,
                "US",
                "POST",
                "/auth/token",
                "Apache-HttpClient/UNAVAILABLE",
                None,
                "Require a certificate",
                "block",
                403,
            ]
        else:  # scanners
            ip = rng.choice(scanners)
            row = [
                ip,
                14061 + rng.randrange(60),
                rng.choice(["CN", "RU", "US", "NL", "BR"]),
                "GET",
                rng.choice(PROBES + HOME_PATHS[:2]),
                "curl/8.0",
                None,
                "Require a certificate",
                "block",
                403,
            ]
        ip, asn, cc, method, p, ua, cert, rule, action, status = row
        batch.append(
            (
                when,
                f"{i:016x}",
                ip,
                asn,
                cc,
                "ha.example.com",
                "ha.example.com",
                method,
                p,
                ua,
                cert,
                None,
                rule,
                action,
                status,
                0,
                1234,
                1.5,
                None,
            )
        )
        if len(batch) == 5000:
            write_rows(db, batch)
            batch.clear()
    write_rows(db, batch)
    db.close()
    return time.monotonic() - t0


def timed(fn: Any) -> tuple[float, int]:
    best, n = float("inf"), 0
    for _ in range(3):
        t0 = time.monotonic()
        n = fn()
        best = min(best, time.monotonic() - t0)
    return best * 1000, n


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="hagate-events-bench-") as tmp:
        path = Path(tmp) / "events.sqlite3"
        seconds = generate(path)
        wal = Path(str(path) + "-wal")
        size = path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)
        db = open_log(path)
        now = time.time()
        day = EventFilter(since=now - 86400)
        cases: list[tuple[str, Any]] = [
            ("events (newest 50)", lambda: len(recent(db, EventFilter()))),
            (
                "events --since 24h --action block",
                lambda: len(recent(db, EventFilter(since=now - 86400, action="block"))),
            ),
            (
                "events --ip 203.0.113.7",
                lambda: len(recent(db, EventFilter(network=parse_network("203.0.113.7")))),
            ),
            (
                "events --ip 198.51.0.0/16",
                lambda: len(recent(db, EventFilter(network=parse_network("198.51.0.0/16")))),
            ),
            ("events --asn 16509", lambda: len(recent(db, EventFilter(asn=16509)))),
            ("events --country RU", lambda: len(recent(db, EventFilter(country="RU")))),
            (
                "events --path-prefix /api/camera",
                lambda: len(recent(db, EventFilter(path_prefix="/api/camera"))),
            ),
            ("events --rule iOS", lambda: len(recent(db, EventFilter(rule="iOS")))),
            ("events --cert alexa", lambda: len(recent(db, EventFilter(cert="alexa")))),
            (
                "events --status 403 --ua curl",
                lambda: len(recent(db, EventFilter(status=403, ua="curl"))),
            ),
            (
                "events --ua Nothing-matches (scans all)",
                lambda: len(recent(db, EventFilter(ua="Nothing-matches"))),
            ),
            *[
                (f"events top --by {by} (30 days)", (lambda by=by: len(top(db, EventFilter(), by))))
                for by in ("asn", "country", "ip", "path", "ua", "rule", "cert", "status")
            ],
            (
                "events top --by asn --since 24h --action block",
                lambda: len(top(db, EventFilter(since=now - 86400, action="block"), "asn")),
            ),
            ("events export --since 24h", lambda: sum(1 for _ in rows(db, day))),
            (
                "events tail (one poll)",
                lambda: sum(1 for _ in rows(db, EventFilter(after_id=ROWS - 100))),
            ),
        ]
        results = [(name, *timed(fn)) for name, fn in cases]
        full_ms, full_n = timed(lambda: sum(1 for _ in rows(db, EventFilter())))
        # Reading never blocks the writer: batches written during a full export.
        latencies: list[float] = []
        stop = threading.Event()

        def writer() -> None:
            w = connect(path)
            batch = [
                (
                    time.time(),
                    "w",
                    "192.0.2.1",
                    1,
                    "NL",
                    None,
                    None,
                    "GET",
                    "/",
                    None,
                    None,
                    None,
                    None,
                    "allow",
                    200,
                    0,
                    0,
                    1.0,
                    None,
                )
            ] * 500
            while not stop.is_set():
                t0 = time.monotonic()
                write_rows(w, batch)
                latencies.append((time.monotonic() - t0) * 1000)
                time.sleep(0.25)
            w.close()

        thread = threading.Thread(target=writer)
        thread.start()
        export_ms, _ = timed(lambda: sum(1 for _ in rows(db, EventFilter())))
        stop.set()
        thread.join()
        db.close()
    lines = [
        "## Event log queries",
        "",
        f"`bench/events_bench.py` on {machine()}: {ROWS:,} rows over {DAYS} days (a busy home:",
        "its own devices, the companion app, Amazon, scanners from 5,000 addresses), written by",
        f"the event writer's own code in {seconds:.0f} s ({ROWS / seconds:,.0f} rows/s); the file"
        f" is {size / 1e6:.0f} MB with its indexes. Best of three runs of each query, as",
        "`hagate events` runs it.",
        "",
        "| query | rows | time |",
        "|---|---:|---:|",
    ]
    lines += [f"| `{name}` | {n:,} | {ms:.0f} ms |" for name, ms, n in results]
    worst = max(ms for _, ms, _ in results)
    lines += [
        "",
        f"- Slowest of these: {worst:.0f} ms (target: under a second for each).",
        f"- A full export of all {full_n:,} rows (not a query a person waits on) takes"
        f" {full_ms / 1000:.1f} s.",
        f"- During a full export ({export_ms / 1000:.1f} s), a writer inserted {len(latencies)}"
        f" batches of 500 rows; the slowest took {max(latencies):.0f} ms, the median"
        f" {statistics.median(latencies):.0f} ms: reading does not block the writer (WAL).",
    ]
    body = "\n".join(lines)
    print(body)
    write_section("events", body)


if __name__ == "__main__":
    main()
