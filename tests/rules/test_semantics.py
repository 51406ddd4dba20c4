"""Every operator on every type it applies to, every function, and the defaults of fields."""

from __future__ import annotations

from typing import Any

import pytest

from hagate.config import ConfigSource
from hagate.rules import fields
from hagate.rules.parser import ListDef, parse_expression
from hagate.rules.ruleset import load_lists
from tests.rules.helpers import evaluate

UA_IOS = "Home Assistant/2025.4.1 (io.robbie.HomeAssistant; build:2025.1234; iOS 17.5.1)"
IOS_RULE = (
    '(http.user_agent contains "(io.robbie.HomeAssistant; build:" and '
    'http.user_agent contains "iOS" and ip.geoip.asnum in {123 456})'
)


@pytest.mark.parametrize(
    ("expression", "values", "expected"),
    [
        # Strings compare bytes, case-sensitively.
        ('http.host eq "A"', {"http.host": "a"}, False),
        ('http.host lt "b"', {"http.host": "a"}, True),
        ('http.host ge "b"', {"http.host": "a"}, False),
        ('http.host gt "a"', {"http.host": "ab"}, True),
        ('http.host le "a"', {"http.host": "a"}, True),
        ('http.host contains "XAMP"', {"http.host": "example"}, False),
        ('http.host wildcard "*.EXAMPLE.*"', {"http.host": "a.example.com"}, True),
        ('http.host wildcard "a\\\\*b"', {"http.host": "a*b"}, True),
        ('http.host wildcard "a\\\\*b"', {"http.host": "axb"}, False),
        ('http.host strict wildcard "*.EXAMPLE.*"', {"http.host": "a.example.com"}, False),
        ('http.host wildcard ""', {"http.host": ""}, True),
        ('http.host wildcard "*"', {"http.host": "anything"}, True),
        ('http.host matches "^a.c$"', {"http.host": "abc"}, True),
        ('http.host matches "(?i)^ABC$"', {"http.host": "abc"}, True),
        ('http.host in {"a" "b"}', {"http.host": "c"}, False),
        # Integers
        ("ip.src.asnum eq 5", {"ip.src.asnum": 5}, True),
        ("ip.src.asnum ne 5", {"ip.src.asnum": 6}, True),
        ("ip.src.asnum lt 5", {"ip.src.asnum": 4}, True),
        ("ip.src.asnum gt 5", {"ip.src.asnum": 5}, False),
        ("ip.src.asnum in {1 3..5 9}", {"ip.src.asnum": 4}, True),
        ("ip.src.asnum in {1 3..5 9}", {"ip.src.asnum": 6}, False),
        ("ip.src.asnum & 4", {"ip.src.asnum": 6}, True),
        ("ip.src.asnum bitwise_and 1", {"ip.src.asnum": 6}, False),
        # IPs, v4 and v6 kept apart
        ("ip.src eq 10.0.0.1", {"ip.src": "10.0.0.1"}, True),
        ("ip.src eq ::1", {"ip.src": "::1"}, True),
        ("ip.src ne 10.0.0.1", {"ip.src": "::1"}, True),
        ("ip.src in {10.0.0.0/8}", {"ip.src": "11.0.0.1"}, False),
        ("ip.src in {::/0}", {"ip.src": "10.0.0.1"}, False),
        ("ip.src in {0.0.0.0/0}", {"ip.src": "10.0.0.1"}, True),
        ("ip.src in {2001:db8::1..2001:db8::9}", {"ip.src": "2001:db8::5"}, True),
        ("ip.src lt 10.0.0.5", {"ip.src": "10.0.0.1"}, True),
        ("ip.src lt 10.0.0.5", {"ip.src": "::1"}, False),
        ("ip.src ge 10.0.0.5", {"ip.src": "::1"}, False),
        # Booleans
        ("cf.tls_client_auth.cert_presented", {"cf.tls_client_auth.cert_presented": True}, True),
        # Maps and arrays, missing values
        ('http.request.headers["x"][0] eq "a"', {}, False),
        ('http.request.headers["x"][0] ne "a"', {}, False),
        ('http.request.headers["x"][5] eq "a"', {"http.request.headers": {"x": ["a"]}}, False),
        ('any(http.request.headers["x"][*] eq "a")', {}, False),
        ('all(http.request.headers["x"][*] eq "a")', {}, True),
        (
            'any(http.request.headers[*][0] eq "b")',
            {"http.request.headers": {"x": ["a"], "y": ["b"]}},
            True,
        ),
        (
            'any(http.request.headers[*][*] eq "c")',
            {"http.request.headers": {"x": ["a", "c"]}},
            True,
        ),
        (
            "len(http.request.headers) eq 2",
            {"http.request.headers": {"x": ["a"], "y": ["b"]}},
            True,
        ),
        ("len(http.request.headers.names) eq 0", {}, True),
        (
            'any(http.request.headers.names[*] eq "a" or http.request.headers.names[*] eq "b")',
            {"http.request.headers.names": ["c", "b"]},
            True,
        ),
        (
            'all(not http.request.headers.names[*] eq "a")',
            {"http.request.headers.names": ["c", "b"]},
            True,
        ),
        (
            'any(http.request.headers.names[*] eq "a" xor http.request.headers.names[*] contains "a")',
            {"http.request.headers.names": ["xa"]},
            True,
        ),
        ('has_key(http.request.headers, "x")', {"http.request.headers": {"x": ["a"]}}, True),
        ('has_value(http.request.headers.names, "x")', {"http.request.headers.names": ["x"]}, True),
        (
            'concat(http.request.headers.names, http.request.uri.args.names)[1] eq "b"',
            {"http.request.headers.names": ["a"], "http.request.uri.args.names": ["b"]},
            True,
        ),
        (
            "len(lower(http.request.headers.names[*])) eq 2",
            {"http.request.headers.names": ["A", "B"]},
            True,
        ),
        # Functions on missing values give missing values: comparisons false
        ('lower(http.request.headers["x"][0]) eq ""', {}, False),
        ('len(http.request.headers["x"][0]) ge 0', {}, False),
        # lower()/upper() change ASCII letters only
        ('lower(http.host) eq "\\xc3\\xa9a"', {"http.host": "Éa"}, False),
        ('lower(http.host) eq "\\xc3\\x89a"', {"http.host": "ÉA"}, True),
        ('upper(http.host) eq "\\xc3\\xa9A"', {"http.host": "éa"}, True),
        ("len(http.host) eq 2", {"http.host": "é"}, True),  # bytes, not characters
        ('substring(http.host, 1) eq "\\xa9"', {"http.host": "é"}, True),
        ('to_string(ip.src) eq "10.0.0.1"', {"ip.src": "10.0.0.1"}, True),
        ('url_decode(http.request.uri.query) eq "a/b"', {"http.request.uri.query": "a%2Fb"}, True),
        # The iOS companion app exception
        (IOS_RULE, {"http.user_agent": UA_IOS, "ip.src.asnum": 456}, True),
        (IOS_RULE, {"http.user_agent": UA_IOS, "ip.src.asnum": 789}, False),
        (
            IOS_RULE,
            {"http.user_agent": UA_IOS.replace("iOS", "Android"), "ip.src.asnum": 456},
            False,
        ),
        (
            IOS_RULE.replace("ip.geoip.asnum", "ip.src.asnum"),
            {"http.user_agent": UA_IOS, "ip.src.asnum": 123},
            True,
        ),
    ],
)
def test_operator(expression: str, values: dict[str, Any], expected: bool) -> None:
    assert evaluate(expression, values) is expected


@pytest.mark.parametrize("name", sorted(fields.FIELDS))
def test_absent_fields_take_cloudflare_defaults(name: str) -> None:
    fdef = fields.FIELDS[name]
    kind = fdef.type.kind.name
    probe = {
        "BOOL": f"not {name}",
        "INT": f"{name} eq 0",
        "STRING": f'{name} eq ""',
        "ARRAY": f"len({name}) eq 0",
        "MAP": f"len({name}) eq 0",
        "IP": f"not {name} in {{0.0.0.0/0 ::/0}}",  # no address: comparisons are false
    }[kind]
    assert evaluate(probe, {}) is True


def test_deprecated_aliases_read_the_same_field() -> None:
    values = {"ip.src.asnum": 3320, "ip.src.country": "DE", "ip.src.continent": "EU"}
    assert evaluate("ip.geoip.asnum eq 3320", values)
    assert evaluate('ip.geoip.country eq "DE"', values)
    assert evaluate('ip.geoip.continent eq "EU"', values)


def test_named_lists() -> None:
    raw: dict[str, list[Any]] = {
        "home": ["203.0.113.0/24", "2001:db8::/32", "198.51.100.1..198.51.100.9"],
        "asns": [3320, 6805],
        "hosts": ["a.example.com"],
    }
    lists: dict[str, ListDef] = load_lists(raw, ConfigSource("t"))
    assert evaluate("ip.src in $home", {"ip.src": "203.0.113.9"}, lists)
    assert evaluate("ip.src in $home", {"ip.src": "198.51.100.5"}, lists)
    assert not evaluate("ip.src in $home", {"ip.src": "192.0.2.1"}, lists)
    assert evaluate("ip.src.asnum in $asns", {"ip.src.asnum": 6805}, lists)
    assert evaluate("http.host in $hosts", {"http.host": "a.example.com"}, lists)
    with pytest.raises(Exception, match="holds IP address items"):
        parse_expression("http.host in $home", lists)
