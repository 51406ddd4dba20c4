"""The console's views and replay on a state directory whose event log is not there yet, or
is a file the writer has only just made (no table yet): empty answers, never an error."""

from __future__ import annotations

import time

from hagate.console import changes, views
from hagate.review.query import EventFilter
from hagate.state import StateDir
from tests.conftest import Setup


def test_no_log_and_a_log_without_its_table_read_as_empty(setup: Setup) -> None:
    state = StateDir(setup.state)
    cfg_draft = [changes.DraftRule("Cert", "not cf.tls_client_auth.cert_verified", "block")]
    for _ in ("no file", "an empty file"):
        page = views.events(state, EventFilter())
        assert page == {"events": [], "next_before": None, "last_id": 0}
        overview = views.overview(state, views.AuditCache(state))
        assert all(h["let_in"] == h["blocked"] == 0 for h in overview["hourly_24h"])
        assert overview["top_blocked_24h"] == []
        assert views.event(state, 1) is None
        assert views.suggestions(state) == []
        assert changes.replay(state, cfg_draft)["requests"] == 0
        (setup.state / "events.sqlite3").write_bytes(b"")  # what the writer makes first


def test_the_cli_says_plainly_that_there_are_no_events_yet(setup: Setup) -> None:
    (setup.state / "events.sqlite3").write_bytes(b"")
    r = setup.run("events")
    assert r.code != 0 and "no events in" in r.err
    assert setup.run("audit", "--no-probe").code in (0, 1)  # no traceback (run_hagate checks)


def test_devices_show_where_a_certificate_was_last_used_from(setup: Setup) -> None:
    import os
    import stat

    from hagate.enrol.store import EnrolmentStore

    assert setup.run("cert", "issue", "phone").code == 0
    state = StateDir(setup.state)
    [phone] = views.devices(state)
    assert phone["first_used"] is None and phone["last_used"] is None
    store = EnrolmentStore(state)
    first = {"time": 1000.0, "ip": "192.0.2.1", "asn": 3320, "country": "DE", "user_agent": "A"}
    later = {"time": 9000.0, "ip": "198.51.100.7", "asn": 6805, "country": "DE", "user_agent": "B"}
    store.record_use(phone["sha256"], first)
    [phone] = views.devices(state)
    assert phone["first_used"] == first and phone["last_used"]["ip"] == "192.0.2.1"
    store.record_use(phone["sha256"], later)
    [phone] = views.devices(state)
    assert phone["first_used"] == first and phone["last_used"] == later
    path = store.last_use_path(phone["sha256"])
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    listed = setup.run("cert", "list", "--json")
    assert '"198.51.100.7"' in listed.out


def test_the_summary_home_assistant_polls(setup: Setup) -> None:
    """The last hour's counts (a sliding hour), today's distinct blocked sources (since local
    midnight), the audit's high findings, and the devices."""
    from hagate.configedit import insert_rule
    from hagate.events.store import EventStore

    assert setup.run("cert", "issue", "phone").code == 0
    state = StateDir(setup.state)
    local = time.localtime(time.time() - 86400)
    midnight = time.mktime((*local[:3], 0, 0, 0, 0, 0, -1))
    now = midnight + 5 * 3600  # five in the morning, yesterday
    rows = [
        (now - 10, "allow", "192.0.2.1"),
        (now - 20, "skip", "192.0.2.1"),
        (now - 100, "block", "198.51.100.1"),
        (now - 200, "block", "198.51.100.2"),
        (now - 300, "refused", "198.51.100.1"),
        (now - 4000, "allow", "192.0.2.1"),  # over an hour ago
        (now - 4000, "block", "198.51.100.3"),  # over an hour ago, still today
        (midnight - 60, "block", "198.51.100.4"),  # yesterday
        (now + 10, "block", "198.51.100.5"),  # after `now`: a clock step, counted today
    ]
    store = EventStore(setup.state / "events.sqlite3").start()
    for i, (t, action, ip) in enumerate(rows):
        store.record({"time": t, "request_id": f"r{i}", "client_ip": ip, "action": action})
    store.close()
    audit = views.AuditCache(state)
    summary = views.summary(state, audit, now=now)
    assert summary["hostname"] == "ha.test"
    assert summary["last_hour"] == {"let_in": 2, "blocked": 4}
    assert summary["blocked_sources_today"] == 4  # .1, .2, .3 and .5; not yesterday's .4
    assert summary["relays"] == []
    [phone] = summary["devices"]
    assert phone["name"] == "phone" and phone["status"] == "valid" and phone["last_used"] is None
    assert summary["audit"]["high"] == []
    # A rule that lets everyone in: the next summary has it (the audit runs again at once,
    # as hagate.yaml changed), with its fix.
    insert_rule(
        setup.state / "hagate.yaml",
        {"description": "Everyone", "expression": "ip.src in {0.0.0.0/0 ::/0}", "action": "skip"},
    )
    high = views.summary(state, audit, now=now)["audit"]["high"]
    [finding] = [f for f in high if f["id"].startswith("rule-skips-everything")]
    assert finding["severity"] == "high" and "'Everyone'" in finding["problem"]
    assert finding["fix"].startswith("Remove rule")
