"""`hagate events`: the log of a real gateway's decisions, read back with filters, counts,
exports and a follower."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hagate.events.store import EVENTS_NAME, append
from tests.conftest import run_hagate
from tests.gateway.harness import Gateway, make_gateway
from tests.geo import write_asn_db, write_country_db

HOME, SCANNER, AMAZON = "127.0.0.10", "127.0.0.20", "127.0.0.30"


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A gateway that served its owner, turned a scanner away and blocked Amazon's servers."""
    tmp = tmp_path_factory.mktemp("history")
    g = make_gateway(tmp)
    asn = write_asn_db(
        tmp / "asn.mmdb", {f"{HOME}/32": 3320, f"{SCANNER}/32": 64500, f"{AMAZON}/32": 16509}
    )
    country = write_country_db(
        tmp / "c.mmdb",
        {f"{HOME}/32": ("DE", "EU"), f"{SCANNER}/32": ("RU", "EU"), f"{AMAZON}/32": ("US", "NA")},
    )
    cfg = g.state / "hagate.yaml"
    text = cfg.read_text().replace("  asn_db:\n", f"  asn_db: {asn}\n")
    cfg.write_text(text.replace("  country_db:\n", f"  country_db: {country}\n"))
    g.issue("phone")
    g.start()
    try:
        for path in ("/api/states", "/api/config", "/lovelace/0"):
            assert g.request(path, cert="phone", source=HOME).status == 200
        for path in ("/wp-login.php", "/.env", "/wp-admin/", "/cgi-bin/luci", "/wp-login.php"):
            assert g.request(path, source=SCANNER, headers={"User-Agent": "curl/8.0"}).status == 403
        for _ in range(2):
            r = g.request(
                "/auth/token",
                method="POST",
                source=AMAZON,
                body=b"grant_type=refresh_token",
                headers={"User-Agent": "Apache-HttpClient/UNAVAILABLE"},
            )
            assert r.status == 403
        deadline = time.monotonic() + 10
        while len(g.events()) < 11 and time.monotonic() < deadline:
            time.sleep(0.2)
        yield g
    finally:
        g.stop()
        g.upstream.close()


def events(g: Gateway, *args: str) -> list[dict[str, Any]]:
    r = run_hagate("events", *args, "--json", state=g.state)
    assert r.code == 0, r.err
    return [json.loads(line) for line in r.out.splitlines()]


def test_the_log_lists_every_decision_newest_first_with_every_column(history: Gateway) -> None:
    rows = events(history)
    # Ten requests, and the harness's check that the gateway listens (a TLS-less connect).
    assert len(rows) == 11 and [r["action"] for r in rows].count("tls_error") == 1
    assert [r["time"] for r in rows] == sorted((r["time"] for r in rows), reverse=True)
    for column in (
        "time",
        "client_ip",
        "asn",
        "country",
        "method",
        "path",
        "user_agent",
        "cert_name",
        "rule",
        "action",
        "status",
        "request_id",
        "reason",
    ):
        assert column in rows[0]
    first = [r for r in rows if r["action"] != "tls_error"][-1]
    assert first["path"] == "/api/states" and first["cert_name"] == "phone"


@pytest.mark.parametrize(
    ("args", "count"),
    [
        (["--action", "block"], 7),
        (["--action", "allow"], 3),
        (["--ip", SCANNER], 5),
        (["--ip", "127.0.0.0/24"], 11),
        (["--ip", "10.0.0.0/8"], 0),
        (["--asn", "16509"], 2),
        (["--country", "ru"], 5),
        (["--path-prefix", "/wp-"], 3),
        (["--path-prefix", "/api/"], 2),
        (["--rule", "certificate"], 7),
        (["--cert", "phone"], 3),
        (["--status", "403"], 7),
        (["--ua", "Apache-HttpClient"], 2),
        (["--since", "1h"], 11),
        (["--since", "2020-01-01"], 11),
        (["--until", "1h"], 0),
        (["--action", "block", "--ip", AMAZON, "--path-prefix", "/auth/token"], 2),
        (["--limit", "4"], 4),
    ],
)
def test_each_filter_selects_what_it_names(history: Gateway, args: list[str], count: int) -> None:
    assert len(events(history, *args)) == count


def test_the_table_is_readable(history: Gateway) -> None:
    r = run_hagate("events", "--action", "block", state=history.state)
    assert r.code == 0, r.err
    assert "GET /wp-login.php" in r.out and "AS64500 RU" in r.out and "Require a client" in r.out


def test_top_counts_with_as_and_country_names(history: Gateway) -> None:
    r = run_hagate(
        "events", "top", "--by", "asn", "--action", "block", "--json", state=history.state
    )
    assert r.code == 0, r.err
    rows = [json.loads(line) for line in r.out.splitlines()]
    assert [(x["asn"], x["count"], x["as_name"]) for x in rows] == [
        (64500, 5, "Test AS64500"),
        (16509, 2, "Test AS16509"),
    ]
    r = run_hagate("events", "top", "--by", "country", "--json", state=history.state)
    countries = {json.loads(line)["country"]: json.loads(line) for line in r.out.splitlines()}
    assert countries["RU"]["count"] == 5 and countries["RU"]["country_name"] == "Country RU"
    r = run_hagate(
        "events", "top", "--by", "path", "--ip", SCANNER, "--limit", "1", state=history.state
    )
    assert r.code == 0 and "/wp-login.php" in r.out and "2" in r.out


def test_export_writes_every_matching_row_oldest_first(history: Gateway, tmp_path: Path) -> None:
    out = tmp_path / "blocked.csv"
    r = run_hagate(
        "events",
        "export",
        "--format",
        "csv",
        "--action",
        "block",
        "--out",
        out,
        state=history.state,
    )
    assert r.code == 0 and "7 events" in r.err
    table = list(csv.DictReader(out.open()))
    assert len(table) == 7 and table[0]["path"] == "/wp-login.php"
    r = run_hagate("events", "export", "--format", "jsonl", state=history.state)
    lines = [json.loads(line) for line in r.out.splitlines()]
    assert len(lines) == 11 and lines[0]["time"] <= lines[-1]["time"]


def test_tail_follows_new_rows_as_they_land(history: Gateway) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hagate",
            "--state-dir",
            str(history.state),
            "events",
            "tail",
            "--json",
            "--ip",
            HOME,
            "--interval",
            "0.2",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1.0)  # it starts after the rows already there
        assert history.request("/api/tail-test", cert="phone", source=HOME).status == 200
        history.request("/ignored", source=SCANNER)  # filtered out
        assert proc.stdout is not None
        line = json.loads(proc.stdout.readline())
        assert line["path"] == "/api/tail-test" and line["client_ip"] == HOME
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--since", "soon"], "is not a time"),
        (["--ip", "not-an-ip"], "is not an address"),
        (["top", "--by", "colour"], "Invalid value for '--by'"),
        (["--action", "maybe"], "Invalid value for '--action'"),
        (["--status", "700"], "Invalid value for '--status'"),
    ],
)
def test_bad_flags_are_one_line_errors(history: Gateway, args: list[str], needle: str) -> None:
    r = run_hagate("events", *args, state=history.state)
    assert r.code != 0 and needle in r.err and "Traceback" not in r.err


def test_no_log_yet_is_a_plain_error(tmp_path: Path) -> None:
    state = tmp_path / "s"
    assert (
        run_hagate(
            "init", "--hostname", "ha.test", "--upstream", "http://127.0.0.1:1", state=state
        ).code
        == 0
    )
    r = run_hagate("events", state=state)
    assert r.code != 0 and "no event log" in r.err


def test_top_counts_sources_unless_told_and_keeps_long_keys_narrow(tmp_path: Path) -> None:
    state = tmp_path / "state"
    init = run_hagate(
        "init", "--hostname", "ha.test", "--upstream", "http://127.0.0.1:8123", state=state
    )
    assert init.code == 0, init.err
    long_path = "/" + "z" * 180
    now = time.time()
    for n, (ip, path) in enumerate([(SCANNER, "/wp-login.php"), (SCANNER, long_path), (HOME, "/")]):
        row = {"time": now + n, "request_id": f"r{n}", "action": "block"}
        append(state / EVENTS_NAME, {**row, "client_ip": ip, "path": path})
    r = run_hagate("events", "top", state=state)
    assert r.code == 0, r.err
    assert [line.split()[:2] for line in r.out.splitlines()] == [
        ["count", "ip"],
        ["2", SCANNER],
        ["1", HOME],
    ]
    r = run_hagate("events", "top", "--by", "path", state=state)
    assert r.code == 0, r.err
    widths = [len(line.rstrip()) for line in r.out.splitlines()]
    assert max(widths) <= 6 + 1 + 60 + 2 + 19, r.out  # count, the key folded at 60, the time
    assert sum(len(run) for run in re.findall("z+", r.out)) == 180  # folded, nothing lost
