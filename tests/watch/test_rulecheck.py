"""The audit's rule checks, each finding present and absent, on rule sets built from config
text as `hagate.yaml` holds them."""

from __future__ import annotations

from typing import Any

import yaml

from hagate.config import ConfigSource
from hagate.rules.presets import PRESETS
from hagate.rules.ruleset import RuleSet, build_ruleset
from hagate.watch.rulecheck import check_certificate_rule, check_never_matched, check_skip_rules

CERT = {
    "description": "Require a client certificate",
    "expression": "(not cf.tls_client_auth.cert_verified)",
    "action": "block",
}
HOST = "ha.test"


def ruleset(*rules: dict[str, Any], lists: dict[str, list[Any]] | None = None) -> RuleSet:
    return build_ruleset(list(rules), [], lists or {}, ConfigSource("test"))


def skip(expression: str, description: str = "the exception") -> dict[str, Any]:
    return {"description": description, "expression": expression, "action": "skip"}


def ids(findings: list[Any]) -> list[str]:
    return [f.id for f in findings]


def test_a_rule_that_skips_everything_is_high() -> None:
    for expression in (
        "ssl",
        "(ssl or not ssl)",
        "(not cf.tls_client_auth.cert_revoked)",
        'http.host ne ""',
        "ip.src.asnum ge 0",
    ):
        found = check_skip_rules(ruleset(skip(expression, "Let everyone in"), CERT), HOST)
        assert ids(found) == ["rule-skips-everything:let-everyone-in"], expression
        assert found[0].severity.label == "high"


def test_a_narrow_skip_rule_is_not_a_finding() -> None:
    narrow = skip(
        '(http.user_agent contains "(io.robbie.HomeAssistant; build:" and '
        "ip.src.asnum in {3320 6805})"
    )
    assert check_skip_rules(ruleset(narrow, CERT), HOST) == []
    for preset in PRESETS.values():
        rule = preset.rule((3320,) if preset.needs_asns else ())
        assert check_skip_rules(ruleset(rule, CERT), HOST) == [], preset.name


def test_a_skip_rule_without_user_agent_path_or_network_limit_is_high() -> None:
    found = check_skip_rules(ruleset(skip('(http.request.method eq "POST")'), CERT), HOST)
    assert ids(found) == ["rule-skip-unlimited:the-exception"]
    limited = skip('(http.request.method eq "POST" and http.request.uri.path eq "/auth/token")')
    assert check_skip_rules(ruleset(limited, CERT), HOST) == []
    a_country_is_no_limit = skip('(ip.src.country eq "NL")')
    assert ids(check_skip_rules(ruleset(a_country_is_no_limit, CERT), HOST)) == [
        "rule-skip-unlimited:the-exception"
    ]


def test_the_cloud_list_catches_aws_and_google_in_an_over_broad_rule() -> None:
    for expression, named in (
        ("(ip.src.asnum in {16509 3320})", "AS16509 (Amazon AWS)"),
        ("(ip.geoip.asnum eq 15169)", "AS15169 (Google)"),
        ('(http.user_agent contains "Google" and ip.src.asnum in {15169})', "AS15169 (Google)"),
        ("(ip.src.asnum in {16000..16600})", "AS16509 (Amazon AWS)"),
        ("(ip.src.asnum in $clouds)", "AS15169 (Google)"),
    ):
        rules = ruleset(skip(expression), CERT, lists={"clouds": [15169, 3320]})
        found = [f for f in check_skip_rules(rules, HOST) if f.id.startswith("rule-cloud")]
        assert ids(found) == ["rule-cloud-network:the-exception"], expression
        assert named in found[0].problem and found[0].severity.label == "high"


def test_cloud_networks_limited_to_exact_paths_are_not_a_finding() -> None:
    alexa = PRESETS["alexa-account-linking"].rule()
    google = PRESETS["google-assistant"].rule()
    assert "16509" in alexa["expression"] and "15169" in google["expression"]
    assert check_skip_rules(ruleset(alexa, google, CERT), HOST) == []
    home_isp = skip('(http.user_agent contains "Home Assistant/" and ip.src.asnum in {3320})')
    assert check_skip_rules(ruleset(home_isp, CERT), HOST) == []


def test_disabled_skip_rules_are_not_findings() -> None:
    rule = {**skip("ssl"), "enabled": False}
    assert check_skip_rules(ruleset(rule, CERT), HOST) == []


def test_the_certificate_rule_missing_disabled_or_shadowed() -> None:
    assert ids(check_certificate_rule(ruleset(), HOST)) == ["cert-rule-missing"]
    a_block_rule_that_is_not_it = {
        "description": "No PHP",
        "expression": '(http.request.uri.path contains ".php")',
        "action": "block",
    }
    assert ids(check_certificate_rule(ruleset(a_block_rule_that_is_not_it), HOST)) == [
        "cert-rule-missing"
    ]
    disabled = {**CERT, "enabled": False}
    assert ids(check_certificate_rule(ruleset(disabled), HOST)) == ["cert-rule-disabled"]
    shadowing = skip('(http.request.method eq "GET")', "Reads are fine")
    found = check_certificate_rule(ruleset(shadowing, CERT), HOST)
    assert ids(found) == ["cert-rule-shadowed"]
    assert "rule 1 ('Reads are fine')" in found[0].problem
    # Below it, the same rule shadows nothing.
    assert check_certificate_rule(ruleset(CERT, shadowing), HOST) == []
    assert check_certificate_rule(ruleset(CERT), HOST) == []


def test_the_certificate_rule_is_recognised_by_what_it_does_not_its_text() -> None:
    other_spelling = {**CERT, "expression": "cf.tls_client_auth.cert_verified eq false"}
    assert check_certificate_rule(ruleset(other_spelling), HOST) == []
    inverted = {**CERT, "expression": "cf.tls_client_auth.cert_verified"}
    assert ids(check_certificate_rule(ruleset(inverted), HOST)) == ["cert-rule-missing"]


def test_rules_that_never_matched_in_30_days() -> None:
    rules = ruleset(skip('(http.user_agent eq "x" and ip.src in {10.0.0.1})', "Old app"), CERT)
    day = 86400.0
    assert check_never_matched(rules, set(), 3 * day, 0) == []  # the log is too young to say
    found = check_never_matched(rules, {"Require a client certificate"}, 40 * day, 0)
    assert ids(found) == ["rule-never-matched:old-app"]
    assert "30 days" in found[0].problem and found[0].severity.label == "low"
    # A row names several log rules joined by "; ".
    assert check_never_matched(rules, {"Old app; Require a client certificate"}, 40 * day, 0) == []


def test_ids_are_stable_slugs_of_the_description() -> None:
    text = """
- description: "iOS app (home) — v2!"
  expression: ssl
  action: skip
"""
    rules = ruleset(*yaml.safe_load(text), CERT)
    assert ids(check_skip_rules(rules, HOST)) == ["rule-skips-everything:ios-app-home-v2"]
    unnamed = ruleset({"expression": "ssl", "action": "skip"}, CERT)
    assert ids(check_skip_rules(unnamed, HOST)) == ["rule-skips-everything:rule-1"]
