"""The per-request verdict from parsed facts, without a socket: name, size limit, then rules."""

from __future__ import annotations

import ipaddress

import pytest

from hagate.config import ConfigSource
from hagate.gateway.identity import NO_CERT, CertState, P
from hagate.gateway.verdict import Outcome, Verdict, judge
from hagate.geoip import Location
from hagate.http1.heads import parse_request_head
from hagate.rules.ruleset import build_ruleset

RULES = build_ruleset(
    [
        {
            "description": "Amazon",
            "expression": 'http.request.uri.path eq "/auth/token"',
            "action": "skip",
        },
        {
            "description": "cert",
            "expression": "(not cf.tls_client_auth.cert_verified)",
            "action": "block",
        },
    ],
    [],
    {},
    ConfigSource("test"),
)
PHONE = CertState({P + "cert_verified": True, P + "cert_presented": True}, "phone", "ab", None)
IP = ipaddress.ip_address("203.0.113.7")


def verdict(
    raw: str, sni: str | None = "ha.test", cert: CertState = PHONE, max_body: int = 0
) -> Verdict:
    head = parse_request_head(raw.replace("\n", "\r\n").encode() + b"\r\n\r\n")
    return judge(head, sni, "ha.test", max_body, RULES, IP, 443, Location(), cert, now=0)


@pytest.mark.parametrize(
    ("host", "sni"),
    [
        ("other.test", "ha.test"),
        ("ha.test", "other.test"),
        ("other.test", None),
        ("ha.test.evil", "ha.test"),
    ],
)
def test_a_request_for_another_name_is_wrong_host_before_any_rule(
    host: str, sni: str | None
) -> None:
    v = verdict(f"GET /auth/token HTTP/1.1\nHost: {host}", sni=sni, cert=NO_CERT)
    assert v.outcome is Outcome.WRONG_HOST and v.decision is None
    assert repr(host) in v.reason


@pytest.mark.parametrize(
    ("host", "sni"), [("HA.TEST:443", "ha.test"), ("ha.test.", "HA.test."), ("ha.test", None)]
)
def test_the_served_name_in_any_spelling_is_let_through(host: str, sni: str | None) -> None:
    assert verdict(f"GET / HTTP/1.1\nHost: {host}", sni=sni).outcome is Outcome.FORWARD


def test_a_declared_body_over_the_limit_is_too_large_before_the_rules() -> None:
    raw = "POST /auth/token HTTP/1.1\nHost: ha.test\nContent-Length: 1001"
    assert verdict(raw, cert=NO_CERT, max_body=1000).outcome is Outcome.TOO_LARGE
    assert verdict(raw, cert=NO_CERT, max_body=1001).outcome is Outcome.FORWARD
    assert verdict(raw, cert=NO_CERT, max_body=0).outcome is Outcome.FORWARD  # 0: no limit


def test_the_rules_decide_last() -> None:
    blocked = verdict("GET /api/ HTTP/1.1\nHost: ha.test", cert=NO_CERT)
    assert blocked.outcome is Outcome.BLOCK and blocked.decision is not None
    assert blocked.decision.rule is not None and blocked.decision.rule.description == "cert"
    skipped = verdict("GET /auth/token HTTP/1.1\nHost: ha.test", cert=NO_CERT)
    assert skipped.outcome is Outcome.FORWARD and skipped.decision is not None
    assert skipped.decision.skipped
    allowed = verdict("GET /api/ HTTP/1.1\nHost: ha.test")
    assert allowed.outcome is Outcome.FORWARD and allowed.decision is not None
    assert not allowed.decision.skipped


CERT_EXPRESSIONS = [
    "(not cf.tls_client_auth.cert_verified)",
    'cf.tls_client_auth.cert_subject_dn eq "CN=phone"',
    "cf.tls_client_auth.cert_revoked or not cf.tls_client_auth.cert_presented",
    'cf.tls_client_auth.cert_fingerprint_sha256 in {"ab" "cd"}',
]


@pytest.mark.parametrize("expression", CERT_EXPRESSIONS)
@pytest.mark.parametrize("action", ["block", "skip", "log"])
@pytest.mark.parametrize(
    "cert",
    [
        NO_CERT,
        PHONE,
        CertState({P + "cert_presented": True, P + "cert_revoked": True}, "old", "cd", "revoked"),
        CertState(
            {P + "cert_verified": True, P + "cert_subject_dn": "CN=phone"}, "phone", "ab", None
        ),
    ],
)
def test_rules_on_the_certificate_alone_decide_as_on_every_field(
    expression: str, action: str, cert: CertState
) -> None:
    """The shortcut for rule sets that read only the certificate's fields (no other field is
    made) decides as the whole set of fields would."""
    from hagate.gateway.verdict import decide
    from hagate.rules.request import request_fields

    rules = build_ruleset(
        [{"description": "r", "expression": expression, "action": action},
         {"description": "cert", "expression": CERT_EXPRESSIONS[0], "action": "block"}],
        [], {}, ConfigSource("test"),
    )  # fmt: skip
    assert rules.reads_certificate_only
    head = parse_request_head(b"GET /api/states HTTP/1.1\r\nHost: ha.test\r\n\r\n")
    shortcut = decide(rules, head, IP, 443, Location(), cert, now=0)
    every = rules.evaluate(request_fields(client_ip=IP, target="/api/states", tls=cert.fields))
    assert shortcut == every
    assert not RULES.reads_certificate_only  # a rule on the path: the fields are made
