"""Rule sets: actions in order, skip and its phases, logging, rate limiting, config errors."""

from __future__ import annotations

from typing import Any

import pytest

from hagate.config import parse_config, render_template
from hagate.rules.ratelimit import RateLimiter
from hagate.rules.request import fields_from_json
from hagate.rules.ruleset import RuleConfigError, RuleSet, ruleset_from_config

BASE = render_template("ha.example.com", "http://127.0.0.1:8123", "0.0.0.0:8443").split("rules:")[0]
UA_IOS = "Home Assistant/2025.4.1 (io.robbie.HomeAssistant; build:2025.1234; iOS 17.5.1)"


def ruleset(yaml_rules: str) -> RuleSet:
    return ruleset_from_config(parse_config(BASE + yaml_rules, "hagate.yaml"))


def request(**values: Any) -> dict[str, Any]:
    values.setdefault("ip.src", "203.0.113.7")
    return fields_from_json({k.replace("__", "."): v for k, v in values.items()})


IOS_FIRST = """
rules:
  - description: iOS companion app from home and mobile
    expression: >-
      (http.user_agent contains "(io.robbie.HomeAssistant; build:"
       and http.user_agent contains "iOS" and ip.geoip.asnum in {3320 6805})
    action: skip
  - description: Require a client certificate
    expression: (not cf.tls_client_auth.cert_verified)
    action: block
"""


def test_default_rule_blocks_without_a_verified_certificate() -> None:
    rs = ruleset(
        "rules:\n  - {description: c, expression: (not cf.tls_client_auth.cert_verified), action: block}\n"
    )
    assert rs.evaluate(request()).blocked
    assert rs.evaluate(request()).status == 403
    assert not rs.evaluate(request(**{"cf.tls_client_auth.cert_verified": True})).blocked


def test_skip_rule_first_lets_the_ios_app_through_only_from_listed_asns() -> None:
    rs = ruleset(IOS_FIRST)
    ok = rs.evaluate(request(**{"http.user_agent": UA_IOS, "ip.src.asnum": 3320}))
    assert not ok.blocked and ok.skipped and ok.rule is not None and ok.rule.number == 1
    other = rs.evaluate(request(**{"http.user_agent": UA_IOS, "ip.src.asnum": 64500}))
    assert other.blocked and other.rule is not None and other.rule.number == 2


def test_log_records_and_continues_and_no_match_allows() -> None:
    rs = ruleset("""
rules:
  - {description: note admin, expression: 'starts_with(http.request.uri.path, "/admin")', action: log}
  - {description: block wp, expression: 'http.request.uri.path contains "wp-login"', action: block, status: 404}
""")
    d = rs.evaluate(request(**{"http.request.uri.path": "/admin/x"}))
    assert not d.blocked and [r.description for r in d.logged] == ["note admin"]
    d = rs.evaluate(request(**{"http.request.uri.path": "/admin/wp-login.php"}))
    assert d.blocked and d.status == 404 and [r.description for r in d.logged] == ["note admin"]
    d = rs.evaluate(request(**{"http.request.uri.path": "/"}))
    assert not d.blocked and not d.logged and d.action == "allow"


def test_disabled_rules_are_passed_over() -> None:
    rs = ruleset(
        "rules:\n  - {description: 'off', expression: ssl, action: block, enabled: false}\n"
    )
    assert not rs.evaluate(request(ssl=True)).blocked


RATE = """
rules:
  - description: Trusted office skips everything
    expression: ip.src in {198.51.100.0/24}
    action: skip
    phases: [http_ratelimit]
  - description: Known devices skip the custom rules only
    expression: cf.tls_client_auth.cert_verified
    action: skip
rate_limits:
  - description: Slow down logins
    expression: http.request.uri.path eq "/auth/login_flow"
    characteristics: [ip.src]
    period: 60
    requests_per_period: 3
    mitigation_timeout: 120
"""


def test_rate_limit_blocks_over_the_rate_per_address_then_for_the_timeout() -> None:
    rs = ruleset(RATE)
    login = {"http.request.uri.path": "/auth/login_flow", "cf.tls_client_auth.cert_verified": True}
    decisions = [rs.evaluate(request(**login), now=1000.0 + i) for i in range(5)]
    assert [d.blocked for d in decisions] == [False, False, False, True, True]
    assert decisions[3].status == 429 and decisions[3].rule is not None
    # Another address has its own counter.
    assert not rs.evaluate(request(**login, **{"ip.src": "203.0.113.8"}), now=1004.0).blocked
    # Still blocked within the mitigation timeout, even in a later window...
    assert rs.evaluate(request(**login), now=1100.0).blocked
    # ...and free again after it.
    assert not rs.evaluate(request(**login), now=1300.0).blocked


def test_skip_with_phases_also_skips_rate_limiting() -> None:
    rs = ruleset(RATE)
    office = {"http.request.uri.path": "/auth/login_flow", "ip.src": "198.51.100.9"}
    assert not any(rs.evaluate(request(**office), now=1000.0 + i).blocked for i in range(10))


def test_requests_not_matching_are_not_counted() -> None:
    rs = ruleset(RATE)
    other = {"http.request.uri.path": "/api/states", "cf.tls_client_auth.cert_verified": True}
    assert not any(rs.evaluate(request(**other), now=1000.0 + i).blocked for i in range(10))


def test_sliding_window_weights_the_previous_window() -> None:
    limiter = RateLimiter(period=10, requests_per_period=10)
    for i in range(10):
        assert not limiter.hit("k", now=5.0 + i * 0.1)  # 10 requests in window [0, 10)
    # At t=12, 80% of the previous window still counts: 8 + 1 = 9, then 10, then 11 > 10.
    assert not limiter.hit("k", now=12.0)
    assert not limiter.hit("k", now=12.0)
    assert limiter.hit("k", now=12.0)
    # Two windows later the old counts are gone.
    assert not limiter.hit("k", now=31.0)


def test_limiter_memory_is_bounded() -> None:
    limiter = RateLimiter(period=10, requests_per_period=1, max_keys=100)
    for i in range(1000):
        limiter.hit(i, now=1.0)
    assert len(limiter) == 100


# -- config errors --------------------------------------------------------------------------


def problems(yaml_rules: str) -> list[str]:
    with pytest.raises(RuleConfigError) as e:
        ruleset(yaml_rules)
    return e.value.problems


def test_all_rule_errors_are_reported_with_config_lines() -> None:
    text = """
rules:
  - description: typo
    expression: http.user_agnet contains "x"
    action: block
  - description: bad action
    expression: ssl
    action: deny
  - description: ok
    expression: ssl
    action: log
"""
    found = problems(text)
    assert len(found) == 2
    base_lines = BASE.count("\n")
    assert found[0].startswith(f"hagate.yaml:{base_lines + 4}: rule 1 (typo): line 1, column 1:")
    assert "did you mean 'http.user_agent'" in found[0] and "^" in found[0]
    assert found[1].startswith(f"hagate.yaml:{base_lines + 8}: rules[1].action: expected one of")


@pytest.mark.parametrize(
    ("yaml_rules", "needle"),
    [
        (
            "rules:\n  - {expression: ssl, action: block, colour: red}\n",
            "rules[0].colour: unknown key",
        ),
        ("rules:\n  - {expression: ssl, action: block, status: 200}\n", "400 to 599"),
        (
            "rules:\n  - {expression: ssl, action: log, phases: [http_ratelimit]}\n",
            "only a skip rule",
        ),
        ("rules:\n  - {expression: ssl, action: skip, phases: [other]}\n", "expected a list of"),
        ("rules:\n  - {action: block}\n", "expected an expression"),
        ("rules:\n  - {description: off, expression: ssl, action: log}\n", "put it in quotes"),
        ("rate_limits:\n  - {expression: ssl, period: 0, requests_per_period: 1}\n", "period"),
        (
            "rate_limits:\n  - {expression: ssl, period: 10, requests_per_period: 1,"
            " characteristics: [http.host]}\n",
            "must include ip.src",
        ),
        (
            "rate_limits:\n  - {expression: ssl, period: 10, requests_per_period: 1,"
            " characteristics: [ip.src, http.request.headers]}\n",
            "not a field to count by",
        ),
    ],
)
def test_rule_config_mistakes(yaml_rules: str, needle: str) -> None:
    assert any(needle in p for p in problems(yaml_rules)), problems(yaml_rules)
