"""`hagate rules preset`: list, show and add, keeping the user's config as it was written."""

from __future__ import annotations

import time
from pathlib import Path

import yaml

from hagate.rules.presets import preset
from tests.conftest import Setup, run_hagate
from tests.gateway.harness import make_gateway
from tests.geo import write_asn_db


def with_asn_db(setup: Setup) -> None:
    """The presets read ip.src.asnum, which comes from an ASN database."""
    asn = write_asn_db(setup.tmp / "asn.mmdb", {"198.51.100.0/24": 64500})
    cfg = setup.state / "hagate.yaml"
    cfg.write_text(cfg.read_text().replace("  asn_db:\n", f"  asn_db: {asn}\n"))


def test_list_and_show(setup: Setup) -> None:
    r = setup.run("rules", "preset", "list")
    assert r.code == 0
    for name in ("ios-companion", "android-companion", "alexa-account-linking", "google-assistant"):
        assert name in r.out
    shown = setup.run("rules", "preset", "show", "google-assistant")
    rules = setup.tmp / "g.yaml"
    rules.write_text(shown.out)
    check = setup.run("rules", "check", rules)
    assert check.code == 0 and "1 rule(s)" in check.out, check.err
    assert "/api/google_assistant" in shown.out and "{15169}" in shown.out


def test_add_puts_the_rule_above_the_certificate_rule_and_keeps_every_comment(setup: Setup) -> None:
    with_asn_db(setup)
    cfg = setup.state / "hagate.yaml"
    cfg.write_text(
        cfg.read_text().replace("rules:\n", "rules:\n  # my own note about the rules\n", 1)
    )
    before = cfg.read_text()
    r = setup.run("rules", "preset", "add", "ios-companion", "--asn", "3320", "--asn", "6805")
    assert r.code == 0, r.err
    after = cfg.read_text()
    added = [line for line in after.splitlines() if line not in before.splitlines()]
    rule = yaml.safe_load(after)["rules"][0]
    assert rule == preset("ios-companion").rule((3320, 6805)) and len(added) == 3, added
    # Everything that was there is still there, in order (comments and the commented examples).
    kept = [line for line in after.splitlines() if line not in added]
    assert kept == before.splitlines()
    assert after.index("ios-companion") < after.index("Require a client certificate")
    assert "# my own note about the rules" in after
    backups = list(setup.state.glob("hagate.yaml.*.bak"))
    assert len(backups) == 1 and backups[0].read_text() == before
    assert setup.run("rules", "check").code == 0
    assert (cfg.stat().st_mode & 0o777) == 0o600


def test_add_twice_or_without_the_networks_is_a_plain_error(setup: Setup) -> None:
    with_asn_db(setup)
    assert setup.run("rules", "preset", "add", "alexa-account-linking").code == 0
    again = setup.run("rules", "preset", "add", "alexa-account-linking")
    assert again.code != 0 and "already has" in again.err
    no_asn = setup.run("rules", "preset", "add", "android-companion")
    assert no_asn.code != 0 and "--asn" in no_asn.err
    unknown = setup.run("rules", "preset", "add", "everything")
    assert unknown.code != 0 and "no preset" in unknown.err


def test_a_result_that_does_not_check_changes_nothing(setup: Setup) -> None:
    with_asn_db(setup)
    cfg = setup.state / "hagate.yaml"
    broken = cfg.read_text().replace(
        'expression: "(not cf.tls_client_auth.cert_verified)"',
        'expression: "(not cf.tls_client_auth.cert_verifed)"',
    )
    cfg.write_text(broken)
    r = setup.run("rules", "preset", "add", "google-assistant")
    assert r.code != 0 and "nothing was written" in r.err and "cert_verifed" in r.err
    assert cfg.read_text() == broken and not list(setup.state.glob("*.bak"))


def test_a_preset_that_could_never_match_is_refused_and_the_gaps_are_named(
    setup: Setup,
) -> None:
    cfg = setup.state / "hagate.yaml"
    before = cfg.read_text()
    r = setup.run("rules", "preset", "add", "ios-companion", "--asn", "3320")
    assert r.code == 1 and r.err == (
        "error: the ios-companion preset matches on ip.src.asnum, but "
        f"{cfg} names no database for it (geoip.asn_db): the rule would never match. "
        "Get the databases (DB-IP Lite, no account; hagate.yaml is pointed at them): "
        "`hagate geoip update`, then add the preset.\n"
    )
    assert cfg.read_text() == before and not list(setup.state.glob("*.bak"))
    # The same rule written by hand: `rules check` passes it with a warning, the audit finds it.
    ios = preset("ios-companion").rule((3320,))
    by_hand = (
        f"  - {{description: {ios['description']}, expression: '{ios['expression']}', "
        "action: skip}\n"
        "  - {description: Only from home, expression: 'ip.src.country ne \"NL\"', "
        "action: block}\n"
    )
    cfg.write_text(before.replace("\nrules:\n", "\nrules:\n" + by_hand, 1))
    check = setup.run("rules", "check")
    assert check.code == 0 and "all valid" in check.out, check.err
    assert check.err.splitlines() == [
        "warning: rule 1 ('iOS companion app from your networks (preset ios-companion)') reads "
        "ip.src.asnum, but hagate.yaml names no database for it (geoip.asn_db): the field is "
        "always empty, so the rule never matches.",
        "warning: rule 2 ('Only from home') reads ip.src.country, but hagate.yaml names no "
        "database for it (geoip.country_db): the field is always empty, so the rule never "
        "matches.",
        "  Get the databases (DB-IP Lite, no account; hagate.yaml is pointed at them): "
        "`hagate geoip update`",
    ]
    audit = setup.run("audit", "--no-probe")
    ios_id = "rule-needs-geoip:ios-companion-app-from-your-networks-preset-ios-companion"
    assert f"MEDIUM  {ios_id}" in audit.out, audit.out
    assert "HIGH    rule-needs-geoip:only-from-home" in audit.out
    with_asn_db(setup)
    check = setup.run("rules", "check")
    assert check.code == 0 and "ip.src.asnum" not in check.err and "ip.src.country" in check.err


def test_add_tells_the_running_gateway_to_reload(tmp_path: Path) -> None:
    g = make_gateway(tmp_path)
    asn = write_asn_db(tmp_path / "asn.mmdb", {"127.0.0.30/32": 16509})
    cfg = g.state / "hagate.yaml"
    cfg.write_text(cfg.read_text().replace("  asn_db:\n", f"  asn_db: {asn}\n"))
    g.start()
    try:
        amazon = "127.0.0.30"
        assert g.request("/auth/token", method="POST", body=b"x", source=amazon).status == 403
        r = run_hagate("rules", "preset", "add", "alexa-account-linking", state=g.state)
        assert r.code == 0 and "Told the running gateway to reload" in r.out, r.out + r.err
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if g.request("/auth/token", method="POST", body=b"x", source=amazon).status == 200:
                break
            time.sleep(0.2)
        else:
            raise AssertionError("the gateway did not take the new rule")
        assert g.request("/api/states", method="POST", body=b"x", source=amazon).status == 403
    finally:
        g.stop()
        g.upstream.close()
    assert not (g.state / "gateway.pid").exists()  # removed when the gateway stopped
