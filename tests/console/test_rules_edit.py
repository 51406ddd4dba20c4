"""Editing rules in the console: the replay says what would change on the logged requests,
saving keeps hagate.yaml's comments and backs it up, and the running gateway follows."""

from __future__ import annotations

import time
from collections.abc import Sequence

from tests.console.conftest import ConsoleSite, start_console, suggestions

PHONE_ONLY = "not cf.tls_client_auth.cert_verified"


def _form(csrf: str, rules: Sequence[tuple[str, str, str, bool, int | None]], **extra: str):
    form = {"csrf": csrf, **extra}
    for n, (description, expression, action, enabled, origin) in enumerate(rules):
        form[f"description-{n}"] = description
        form[f"expression-{n}"] = expression
        form[f"action-{n}"] = action
        form[f"origin-{n}"] = "" if origin is None else str(origin)
        if enabled:
            form[f"enabled-{n}"] = "on"
    return form


def test_replay_then_save_keeps_comments_and_reloads(tmp_path_factory) -> None:
    s: ConsoleSite = start_console(tmp_path_factory.mktemp("rules"))
    try:
        g = s.gateway
        config = s.state / "hagate.yaml"
        text = config.read_text()
        config.write_text(
            "# my own words about this file\n"
            + text.replace("rules:\n", "rules:\n  # the certificate rule stays last\n", 1)
        )
        for i in range(3):
            assert g.request(f"/probe/{i}").status == 403
        assert g.request("/api/states", cert="phone").status == 200
        g.events()
        b = s.browser()
        b.sign_in()
        csrf = b.csrf()
        # A skip rule for /probe/ above the certificate rule: three blocked requests would
        # now be let in; nothing that is let in today would be blocked.
        rules = [
            ("Let probes in", 'starts_with(http.request.uri.path, "/probe/")', "skip", True, None),
            ("Require a client certificate", PHONE_ONLY, "block", True, 0),
        ]
        r = b.post("/console/rules", _form(csrf, rules, intent="replay"))
        assert r.status == 200, r.text[:2000]
        assert "<strong>3</strong> would now be let in" in r.text
        assert "<strong>0</strong> would now be blocked" in r.text
        assert "/probe/2" in r.text
        assert config.read_text().startswith("# my own words")
        assert "Let probes in" not in config.read_text()  # a replay writes nothing
        r = b.post("/console/rules", _form(csrf, rules, intent="save"))
        assert r.status == 200 and "Saved" in r.text, r.text[:2000]
        saved = config.read_text()
        assert saved.startswith("# my own words about this file\n")
        assert "# the certificate rule stays last" in saved
        assert "Let probes in" in saved
        backups = list(s.state.glob("hagate.yaml.*.bak"))
        assert backups and "Let probes in" not in backups[0].read_text()
        deadline = time.monotonic() + 10
        while g.request("/probe/9").status != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert g.request("/probe/9").status == 200
        assert g.request("/other").status == 403
    finally:
        s.gateway.stop()
        s.gateway.upstream.close()


def test_a_rule_with_a_mistake_is_shown_at_its_column_and_never_saved(site: ConsoleSite) -> None:
    b = site.browser()
    b.sign_in()
    csrf = b.csrf()
    before = (site.state / "hagate.yaml").read_text()
    rules = [("Broken", 'http.host eq "x" and bogus.field', "block", True, None)]
    r = b.post("/console/rules", _form(csrf, rules, intent="save"))
    assert r.status == 400
    assert "column 22" in r.text and "Fix the rules marked below first" in r.text
    assert (site.state / "hagate.yaml").read_text() == before
    # As one types: the check fragment alone.
    r = b.post("/console/rules/check", {"csrf": csrf, "expression-0": "ip.src in {10.0.0.0/33}"})
    assert r.status == 200 and "column" in r.text
    r = b.post("/console/rules/check", {"csrf": csrf, "expression-0": "ip.src in {10.0.0.0/8}"})
    assert "valid" in r.text and "column" not in r.text


def test_reorder_disable_add_and_delete_in_the_draft(site: ConsoleSite) -> None:
    b = site.browser()
    b.sign_in()
    csrf = b.csrf()
    rules = [("A", "true", "log", True, None), ("B", "false", "block", True, None)]
    r = b.post("/console/rules", _form(csrf, rules, op="down:0"))
    assert r.text.index('value="B"') < r.text.index('value="A"')
    r = b.post("/console/rules", _form(csrf, rules, op="add"))
    assert r.text.count('name="expression-') == 3
    r = b.post("/console/rules", _form(csrf, rules, op="delete:1"))
    assert r.text.count('name="expression-') == 1 and 'value="B"' not in r.text
    off = [("A", "true", "log", False, None)]
    r = b.post("/console/rules", _form(csrf, off))
    assert 'name="enabled-0" checked' not in r.text


def test_a_suggestion_shows_its_diff_then_applies(tmp_path_factory) -> None:
    from tests.geo import write_asn_db

    ipad = "Home Assistant/2026.1 (io.robbie.HomeAssistant; build:2026.1; iPadOS 17.5)"
    mobile, amazon = "127.0.0.41", "127.0.0.30"
    tmp = tmp_path_factory.mktemp("suggest")

    def prepare(g) -> None:
        asn_db = write_asn_db(tmp / "asn.mmdb", {f"{mobile}/32": 6805, f"{amazon}/32": 16509})
        cfg = g.state / "hagate.yaml"
        cfg.write_text(cfg.read_text().replace("  asn_db:\n", f"  asn_db: {asn_db}\n"))

    s = start_console(tmp, prepare)
    try:
        g = s.gateway
        for _ in range(3):
            assert (
                g.request("/api/websocket", source=mobile, headers={"User-Agent": ipad}).status
                == 403
            )
        for _ in range(2):  # Amazon's servers refreshing an Alexa account link
            g.request("/auth/token", method="POST", body=b"grant_type=refresh_token", source=amazon)
        g.events()
        b = s.browser()
        b.sign_in()
        found = suggestions(s, "29d")
        # bound-apps first (no network to name); this household picks the network preset.
        assert [f["kind"] for f in found[:3]] == ["bound-apps", "ios-companion", "alexa"], found
        # The page never waits: it asks for a fresh answer, then its list looks again.
        assert b.get("/console/suggestions?fresh=1").status == 200
        deadline = time.monotonic() + 30
        listing = ""
        while "review and apply" not in listing:
            assert time.monotonic() < deadline, listing[-500:]
            time.sleep(0.3)
            listing = b.get("/console/suggestions/list").text
        assert "review and apply" in listing and "AS6805" in listing
        before = (s.state / "hagate.yaml").read_text()
        page = b.get("/console/suggestions/2")
        assert page.status == 200
        assert "+  - description: " in page.text and "ios-companion" in page.text
        assert (s.state / "hagate.yaml").read_text() == before  # shown, not written
        stale = b.post("/console/suggestions/2", {"csrf": b.csrf(), "description": "other"})
        assert stale.status == 409 and (s.state / "hagate.yaml").read_text() == before
        description = found[1]["rule"]["description"]
        done = b.post("/console/suggestions/2", {"csrf": b.csrf(), "description": description})
        assert done.status == 200 and "Added the rule" in done.text
        deadline = time.monotonic() + 10
        while (
            g.request("/api/websocket", source=mobile, headers={"User-Agent": ipad}).status != 200
        ):
            assert time.monotonic() < deadline, "the gateway did not take the rule"
            time.sleep(0.2)
        assert g.request("/api/websocket", source=mobile).status == 403
        # The other one through the API: it was number 3; with the second applied, it is 2.
        assert suggestions(s, "28d")[1]["kind"] == "alexa"
        done_api = s.api("POST", "/api/v1/suggestions/2/apply?since=28d")
        assert done_api.status == 200, done_api.text
        assert "16509" in done_api.json()["added"]["expression"]
        assert s.api("POST", "/api/v1/suggestions/1/apply?since=soon").status == 400
    finally:
        s.gateway.stop()
        s.gateway.upstream.close()
