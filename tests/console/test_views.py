"""The console's views and replay on a state directory whose event log is not there yet, or
is a file the writer has only just made (no table yet): empty answers, never an error."""

from __future__ import annotations

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
