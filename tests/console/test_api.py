"""The console's API (/api/v1/): bearer tokens only (good, revoked, unknown, malformed), bad
input answered 400 with words, and the same objects as the CLI's --json."""

from __future__ import annotations

import json
import time

import pytest
import segno

from tests.conftest import run_hagate
from tests.console.conftest import ConsoleSite, suggestions

GETS = [
    "/api/v1/summary",
    "/api/v1/overview",
    "/api/v1/events",
    "/api/v1/devices",
    "/api/v1/rules",
    "/api/v1/suggestions",
    "/api/v1/audit",
]
CHANGES: list[tuple[str, str, dict[str, object] | None]] = [
    ("POST", "/api/v1/devices", {"name": "tablet"}),
    ("POST", "/api/v1/devices/phone/revoke", None),
    ("PUT", "/api/v1/rules", {"rules": []}),
    ("POST", "/api/v1/rules/check", {"rules": []}),
    ("POST", "/api/v1/rules/replay", {"rules": []}),
    ("POST", "/api/v1/suggestions/1/apply", None),
]


@pytest.mark.parametrize(
    "token",
    [
        "",
        "hgc_" + "A" * 43,  # well formed, never issued
        "not-a-token",
        "hgc_" + "x" * 5000,
        "Bearer",
    ],
)
def test_every_endpoint_refuses_a_bad_token(site: ConsoleSite, token: str) -> None:
    for path in GETS:
        r = site.api("GET", path, token=token)
        assert r.status == 401, (path, r.status)
        assert "error" in r.json()
    for method, path, data in CHANGES:
        assert site.api(method, path, data, token=token).status == 401, path
    devices = site.api("GET", "/api/v1/devices").json()
    assert not any(d["name"] == "tablet" for d in devices)


def test_an_expired_token_is_refused(site: ConsoleSite) -> None:
    import sqlite3

    r = run_hagate("console", "token", "create", "brief", "--days", "1", state=site.state)
    token = r.out.strip()
    assert site.api("GET", "/api/v1/devices", token=token).status == 200
    listed = run_hagate("console", "token", "list", state=site.state).out
    assert "brief" in listed and "expires" in listed
    # A day later, as far as the store can tell.
    db = sqlite3.connect(site.state / "console.sqlite3")
    db.execute("UPDATE tokens SET expires = expires - 86401 WHERE name = 'brief'")
    db.commit()
    db.close()
    assert site.api("GET", "/api/v1/devices", token=token).status == 401
    assert "expired" in run_hagate("console", "token", "list", state=site.state).out


def test_the_api_never_takes_the_session_cookie(site: ConsoleSite) -> None:
    b = site.browser()
    b.sign_in()
    value = b.cookies["hagate_console"][0]
    r = b.get("/api/v1/devices", headers={"Cookie": f"hagate_console={value}"})
    assert r.status == 401


def test_a_revoked_token_stops_at_once_and_stays_listed(site: ConsoleSite) -> None:
    r = run_hagate("console", "token", "create", "integration", state=site.state)
    token = r.out.strip()
    assert token.startswith("hgc_")
    assert site.api("GET", "/api/v1/devices", token=token).status == 200
    assert run_hagate("console", "token", "revoke", "integration", state=site.state).code == 0
    assert site.api("GET", "/api/v1/devices", token=token).status == 401
    listed = json.loads(run_hagate("console", "token", "list", "--json", state=site.state).out)
    entry = next(t for t in listed if t["name"] == "integration")
    assert entry["status"] == "revoked" and entry["last_used"] is not None
    # Only a digest is stored.
    assert token.encode() not in (site.state / "console.sqlite3").read_bytes()
    again = run_hagate("console", "token", "revoke", "integration", state=site.state)
    assert again.code != 0 and "already revoked" in again.err
    missing = run_hagate("console", "token", "revoke", "nobody", state=site.state)
    assert missing.code != 0 and "no token named" in missing.err


def test_the_same_objects_as_the_cli(site: ConsoleSite) -> None:
    for i in range(3):
        site.gateway.request(f"/api/states?n={i}", cert="phone")
    site.gateway.request("/wp-login.php")
    site.gateway.events()
    cli_devices = json.loads(run_hagate("cert", "list", "--json", state=site.state).out)
    assert site.api("GET", "/api/v1/devices").json() == cli_devices
    cli_events = [
        json.loads(line)
        for line in run_hagate("events", "--json", "--limit", "50", state=site.state).out.split(
            "\n"
        )
        if line
    ]
    api_events = site.api("GET", "/api/v1/events?limit=50").json()["events"]
    assert api_events == cli_events and len(api_events) >= 4
    cli_audit = json.loads(run_hagate("audit", "--json", "--no-probe", state=site.state).out)
    api_audit = site.api("GET", "/api/v1/audit?fresh=1").json()
    assert {f["id"] for f in api_audit["findings"]} == {f["id"] for f in cli_audit["findings"]}
    assert api_audit.keys() == cli_audit.keys()
    cli_suggest = [
        json.loads(line)
        for line in run_hagate(
            "events", "suggest", "--json", "--since", "29d", state=site.state
        ).out.split("\n")
        if line
    ]
    assert suggestions(site, "29d") == cli_suggest


def test_event_filters_and_paging(site: ConsoleSite) -> None:
    for i in range(5):
        site.gateway.request(f"/page/{i}", cert="phone")
    site.gateway.events()
    blocked = site.api("GET", "/api/v1/events?action=block").json()["events"]
    assert blocked and all(e["action"] == "block" for e in blocked)
    mine = site.api("GET", "/api/v1/events?cert=phone&path_prefix=/page/&limit=2").json()
    assert [e["path"] for e in mine["events"]] == ["/page/4", "/page/3"]
    older = site.api(
        "GET", f"/api/v1/events?cert=phone&path_prefix=/page/&limit=2&before={mine['next_before']}"
    ).json()
    assert [e["path"] for e in older["events"]] == ["/page/2", "/page/1"]
    newer = site.api("GET", f"/api/v1/events?after={mine['last_id']}").json()
    assert newer["events"] == []
    one = site.api("GET", f"/api/v1/events/{mine['events'][0]['id']}").json()
    assert one["event"]["path"] == "/page/4"
    assert "Decision: ALLOW" in one["explain"]
    assert site.api("GET", "/api/v1/events/999999999").status == 404


@pytest.mark.parametrize(
    "query, words",
    [
        ("action=nonsense", "action"),
        ("ip=300.1.1.1", "300.1.1.1"),
        ("asn=AS-x", "asn"),
        ("status=99", "status"),
        ("since=yesterday-ish", "yesterday-ish"),
        ("limit=0", "limit"),
        ("limit=100000", "limit"),
        ("before=-3", "number"),
    ],
)
def test_bad_filters_are_400_with_words(site: ConsoleSite, query: str, words: str) -> None:
    r = site.api("GET", f"/api/v1/events?{query}")
    assert r.status == 400, r.text
    assert words in r.json()["error"]


@pytest.mark.parametrize(
    "method, path, raw",
    [
        ("POST", "/api/v1/devices", b"{not json"),
        ("POST", "/api/v1/devices", b"[1, 2]"),
        ("POST", "/api/v1/devices", b'{"name": 5}'),
        ("POST", "/api/v1/devices", b'{"name": "../../etc"}'),
        ("POST", "/api/v1/devices", b'{"name": "ok", "ttl": 1}'),
        ("PUT", "/api/v1/rules", b'{"rules": "all"}'),
        ("PUT", "/api/v1/rules", b'{"rules": [{"expression": "true", "action": "skip", "x": 1}]}'),
        (
            "PUT",
            "/api/v1/rules",
            b'{"rules": [{"expression": "http.nope eq 1", "action": "block"}]}',
        ),
        ("POST", "/api/v1/rules/replay", b'{"rules": [{"expression": "(", "action": "block"}]}'),
        ("POST", "/api/v1/suggestions/99/apply", None),
    ],
)
def test_bad_input_is_400_and_changes_nothing(
    site: ConsoleSite, method: str, path: str, raw: bytes | None
) -> None:
    before = (site.state / "hagate.yaml").read_text()
    r = site.api(method, path, raw=raw)
    assert r.status == 400, (r.status, r.text)
    assert r.json()["error"]
    assert (site.state / "hagate.yaml").read_text() == before


def test_rules_check_points_at_the_column(site: ConsoleSite) -> None:
    r = site.api(
        "POST",
        "/api/v1/rules/check",
        {
            "rules": [
                {"expression": 'http.host eq "a" and http.nope', "action": "block"},
                {"expression": "not cf.tls_client_auth.cert_verified", "action": "block"},
            ]
        },
    ).json()
    assert r["valid"] is False
    first, second = r["problems"]
    assert first["column"] == 22 and "http.nope" in first["text"]
    assert second is None


def test_enrol_and_revoke_through_the_api(site: ConsoleSite) -> None:
    r = site.api("POST", "/api/v1/devices", {"name": "watch", "ttl": 120})
    assert r.status == 201, r.text
    made = r.json()
    assert made["url"].startswith("https://ha.test") and "/.hagate/enrol/" in made["url"]
    assert len(made["password"]) >= 8
    # The same link as a QR code, for Home Assistant's dashboards (an SVG data URI).
    assert made["qr"] == segno.make(made["url"], error="m").svg_data_uri(scale=4, border=2)
    listed = {d["name"]: d for d in site.api("GET", "/api/v1/devices").json()}
    assert listed["watch"]["status"] == "valid"
    r = site.api("POST", "/api/v1/devices/watch/revoke")
    assert r.status == 200 and r.json()["status"] == "revoked"
    site.gateway.issue("laptop")
    assert site.gateway.request("/", cert="laptop").status == 200
    assert site.api("POST", "/api/v1/devices/laptop/revoke").status == 200
    assert site.gateway.request("/", cert="laptop").status == 403
    assert site.api("POST", "/api/v1/devices/nobody/revoke").status in (400, 404)


def test_rules_replay_and_save_through_the_api(tmp_path_factory) -> None:
    from tests.console.conftest import start_console

    s = start_console(tmp_path_factory.mktemp("api-rules"))
    try:
        g = s.gateway
        for i in range(4):
            assert g.request(f"/open/{i}").status == 403
        g.events()
        rules = s.api("GET", "/api/v1/rules").json()
        assert [r["action"] for r in rules] == ["block"]
        draft = [
            {
                "description": "Open",
                "expression": 'starts_with(http.request.uri.path, "/open/")',
                "action": "skip",
            },
            {**rules[0], "origin": 0},
        ]
        replayed = s.api("POST", "/api/v1/rules/replay", {"rules": draft}).json()
        assert replayed["to_let_in"] == 4 and replayed["to_blocked"] == 0
        assert {e["path"] for e in replayed["examples_to_let_in"]} == {
            f"/open/{i}" for i in range(4)
        }
        saved = s.api("PUT", "/api/v1/rules", {"rules": draft})
        assert saved.status == 200 and saved.json()["saved"] == 2
        assert [r["description"] for r in s.api("GET", "/api/v1/rules").json()] == [
            "Open",
            rules[0]["description"],
        ]
        deadline = time.monotonic() + 10
        while g.request("/open/9").status != 200:
            assert time.monotonic() < deadline
            time.sleep(0.2)
    finally:
        s.gateway.stop()
        s.gateway.upstream.close()
