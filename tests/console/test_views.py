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
