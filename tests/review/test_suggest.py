"""`hagate events suggest` on a history the real gateway wrote: each kind of suggestion, its
evidence, and --apply (checked, comments kept, the gateway reloaded)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hagate.tunnel.admission import load_admission
from tests.conftest import run_hagate
from tests.gateway.harness import Gateway, make_gateway
from tests.geo import write_asn_db

IOS = "Home Assistant/2026.1 (io.robbie.HomeAssistant; build:2026.1; iOS 17.5.1)"
IPAD = "Home Assistant/2026.1 (io.robbie.HomeAssistant; build:2026.1; iPadOS 17.5)"
HOME, MOBILE, AMAZON, GOOGLE = "127.0.0.40", "127.0.0.41", "127.0.0.30", "127.0.0.50"
SCANNERS, LONE = ["127.0.0.20", "127.0.0.21", "127.0.0.22"], "127.0.0.23"
RULES = """\
  - description: Log the old API
    expression: http.request.uri.path eq "/api/old"
    action: log
  # the rule every request must pass
  - description: Require a client certificate
    expression: (not cf.tls_client_auth.cert_verified)
    action: block
"""


@pytest.fixture
def history(tmp_path: Path) -> Iterator[tuple[Gateway, Path]]:
    g = make_gateway(tmp_path)
    nets = {
        f"{HOME}/32": 3320,
        f"{MOBILE}/32": 6805,
        f"{AMAZON}/32": 16509,
        f"{GOOGLE}/32": 15169,
        f"{LONE}/32": 64501,
        **{f"{ip}/32": 64500 for ip in SCANNERS},
    }
    asn_db = write_asn_db(tmp_path / "asn.mmdb", nets)
    cfg = g.state / "hagate.yaml"
    cfg.write_text(cfg.read_text().replace("  asn_db:\n", f"  asn_db: {asn_db}\n"))
    g.configure(rules=RULES)
    g.issue("phone")
    g.issue("old-tablet")
    g.start()
    try:
        for _ in range(3):
            assert g.request("/api/states", cert="phone", source=HOME).status == 200
        for _ in range(2):
            assert (
                g.request("/api/websocket", source=HOME, headers={"User-Agent": IOS}).status == 403
            )
        for _ in range(3):
            assert (
                g.request("/api/websocket", source=MOBILE, headers={"User-Agent": IPAD}).status
                == 403
            )
        for _ in range(2):
            g.request("/auth/token", method="POST", body=b"grant_type=refresh_token", source=AMAZON)
        g.request("/api/google_assistant", method="POST", body=b"{}", source=GOOGLE)
        g.request("/auth/token", method="POST", body=b"code=x", source=GOOGLE)
        for ip in SCANNERS:
            for path in ("/wp-login.php", "/.env"):
                g.request(path, source=ip)
        g.request("/cgi-bin/luci", source=LONE)
        g.request("/api/", source=LONE)
        deadline = time.monotonic() + 10
        while len(g.events()) < 21 and time.monotonic() < deadline:  # 20 requests, 1 probe
            time.sleep(0.2)
        yield g, asn_db
    finally:
        g.stop()
        g.upstream.close()


def suggestions(g: Gateway) -> list[dict[str, Any]]:
    r = run_hagate("events", "suggest", "--json", state=g.state)
    assert r.code == 0, r.err
    return [json.loads(line) for line in r.out.splitlines()]


def test_each_kind_of_suggestion_with_its_evidence(history: tuple[Gateway, Path]) -> None:
    g, _ = history
    found = suggestions(g)
    assert [s["kind"] for s in found] == [
        "bound-apps",
        "ios-companion",
        "alexa",
        "google",
        "probes",
        "unused-cert",
        "unused-rule",
    ]
    bound, ios, alexa, google, probes, certs, rules = found
    assert bound["evidence"][0] == (
        "5 requests of the iOS companion app blocked without a certificate, from 2 addresses"
    )
    assert "hagate.credential.bound" in bound["rule"]["expression"]
    assert ios["asns"] == [6805, 3320]  # most evidence first; iPadOS counted too
    assert "3 requests of the app blocked from AS6805" in ios["evidence"][0]
    assert "your certificate holders use this network too" in ios["evidence"][1]
    assert "ip.src.asnum in {3320 6805}" in ios["rule"]["expression"]
    assert alexa["evidence"] == ["2 POST /auth/token blocked from Amazon's servers (1 addresses)"]
    assert (
        alexa["rule"]["expression"].count("/auth/token") == 1
        and "16509" in alexa["rule"]["expression"]
    )
    assert (
        "/api/google_assistant" in google["rule"]["expression"]
        and "15169" in google["rule"]["expression"]
    )
    assert probes["asns"] == [64500] and probes["addresses"] == [LONE]
    assert (
        probes["relay_rule"]["expression"] == f"(ip.src.asnum in {{64500}} or ip.src in {{{LONE}}})"
    )
    assert "old-tablet" in certs["title"] and "phone" not in certs["title"]
    assert "'Log the old API'" in rules["title"] and "Require a client" not in rules["title"]
    table = run_hagate("events", "suggest", state=g.state)
    assert "1. Let the companion apps in with the Home Assistant credentials" in table.out
    assert "2. Let the iOS companion app in from AS6805, AS3320" in table.out
    assert "apply: hagate events suggest --since 30d --apply 5 --relay-rules FILE" in table.out


def test_apply_adds_the_preset_keeps_comments_and_the_gateway_takes_it(
    history: tuple[Gateway, Path],
) -> None:
    g, _ = history
    cfg = g.state / "hagate.yaml"
    before = cfg.read_text()
    r = run_hagate("events", "suggest", "--apply", "2", state=g.state)
    assert r.code == 0 and "Told the running gateway to reload" in r.out, r.out + r.err
    after = cfg.read_text()
    assert "# the rule every request must pass" in after and after.index(
        "preset ios-companion"
    ) < after.index("Require a client certificate")
    assert [
        line for line in after.splitlines() if line in before.splitlines()
    ] == before.splitlines()
    deadline = time.monotonic() + 10
    while g.request("/api/websocket", source=MOBILE, headers={"User-Agent": IPAD}).status != 200:
        assert time.monotonic() < deadline, "the gateway did not take the rule"
        time.sleep(0.2)
    # Only the app, only from those networks.
    assert g.request("/api/websocket", source=MOBILE).status == 403
    assert g.request("/api/websocket", source=LONE, headers={"User-Agent": IPAD}).status == 403
    assert "ios-companion" not in [s["kind"] for s in suggestions(g)]  # done, not suggested again


def test_apply_the_relay_rule_writes_a_file_the_relay_loads(
    history: tuple[Gateway, Path], tmp_path: Path
) -> None:
    g, asn_db = history
    n = [s["kind"] for s in suggestions(g)].index("probes") + 1
    missing = run_hagate("events", "suggest", "--apply", str(n), state=g.state)
    assert missing.code != 0 and "--relay-rules" in missing.err
    relay_rules = tmp_path / "relay-rules.yaml"
    r = run_hagate(
        "events", "suggest", "--apply", str(n), "--relay-rules", relay_rules, state=g.state
    )
    assert r.code == 0, r.err
    admit = load_admission(relay_rules, str(asn_db), None)
    assert not admit(LONE) and not admit(SCANNERS[0]) and admit(HOME) and admit(AMAZON)
    again = run_hagate(
        "events", "suggest", "--apply", str(n), "--relay-rules", relay_rules, state=g.state
    )
    assert again.code == 0 and relay_rules.read_text().count("Probe-only sources") == 1


def test_what_cannot_be_applied_says_so(history: tuple[Gateway, Path]) -> None:
    g, _ = history
    kinds = [s["kind"] for s in suggestions(g)]
    review = run_hagate(
        "events", "suggest", "--apply", str(kinds.index("unused-cert") + 1), state=g.state
    )
    assert review.code != 0 and "for you to review" in review.err
    none = run_hagate("events", "suggest", "--apply", "99", state=g.state)
    assert none.code != 0 and "no suggestion 99" in none.err


def test_apply_refuses_a_result_that_does_not_check(history: tuple[Gateway, Path]) -> None:
    g, _ = history
    cfg = g.state / "hagate.yaml"
    broken = cfg.read_text().replace('uri.path eq "/api/old"', 'uri.path eq "/api/old" and')
    cfg.write_text(broken)
    r = run_hagate("events", "suggest", "--apply", "1", state=g.state)
    assert r.code != 0 and "nothing was written" in r.err, r.err
    assert cfg.read_text() == broken and not list(g.state.glob("hagate.yaml.*.bak"))


def test_a_rule_counts_as_matched_by_its_whole_description_only(tmp_path: Path) -> None:
    """A rule named "cert" is not matched because "Require a client certificate" was."""
    from hagate.events.store import connect, write_rows
    from hagate.review.query import open_log
    from hagate.review.suggest import suggest

    path = tmp_path / "events.sqlite3"
    store = connect(path)
    row = [
        time.time(),
        "r",
        "192.0.2.1",
        None,
        None,
        None,
        None,
        "GET",
        "/",
        None,
        None,
        None,
        "Require a client certificate",
        "block",
        403,
        0,
        0,
        1.0,
        None,
    ]
    logged = [*row[:12], "Log the old API; Log logins", "allow", 200, *row[15:]]
    write_rows(store, [tuple(row), tuple(logged)])
    store.close()
    db = open_log(path)
    rules = ["Log the old API", "Log logins", "cert", "Require a client certificate"]
    found = {s.kind: s for s in suggest(db, 0, rules, [])}
    db.close()
    assert found["unused-rule"].title == "Rules that never matched in this period: 'cert'"


def test_without_an_asn_database_it_says_why_it_cannot_group_the_app(tmp_path: Path) -> None:
    g = make_gateway(tmp_path)  # hagate.yaml names no GeoIP database
    g.start()
    try:
        for _ in range(3):
            assert (
                g.request("/api/websocket", source=MOBILE, headers={"User-Agent": IOS}).status
                == 403
            )
        deadline = time.monotonic() + 10
        while len(g.events()) < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        g.stop()
        g.upstream.close()
    r = run_hagate("events", "suggest", state=g.state)
    assert r.code == 0, r.err
    # The preset that needs no network comes first; the network one says why it cannot be.
    assert r.out.startswith("1. Let the companion apps in with the Home Assistant credentials")
    lines = r.out.splitlines()
    second = next(i for i, line in enumerate(lines) if line.startswith("2. "))
    assert lines[second : second + 3] == [
        "2. 3 requests of the iOS companion app were blocked from addresses with no network "
        "(ASN) on record",
        "     hagate.yaml names no ASN database (geoip.asn_db), so hagate cannot group them by "
        "network, and the ios-companion preset could not match",
        "     get one: `hagate geoip update` (DB-IP Lite, no account), let the app try again, "
        "then run this again",
    ]
    nothing = run_hagate("events", "suggest", "--apply", "2", state=g.state)
    assert nothing.code == 1 and "nothing to apply" in nothing.err


def test_the_bound_apps_suggestion_applied_lets_in_no_request_without_credentials(
    history: tuple[Gateway, Path],
) -> None:
    g, _ = history
    r = run_hagate("events", "suggest", "--apply", "1", state=g.state)
    assert r.code == 0, r.err
    assert "preset bound-apps" in (g.state / "hagate.yaml").read_text()
    time.sleep(1)  # the reload
    assert g.request("/api/websocket", source=MOBILE, headers={"User-Agent": IPAD}).status == 403
    assert "bound-apps" not in [s["kind"] for s in suggestions(g)]
