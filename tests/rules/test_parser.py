"""Parsing: precedence, literals and escapes, and errors that point at the spot."""

from __future__ import annotations

import pytest

from hagate.rules.ast import Compare, IsTrue, Logical, Not, unparse
from hagate.rules.errors import RuleError
from hagate.rules.parser import MAX_DEPTH, parse_expression
from tests.rules.helpers import evaluate


def error(expression: str) -> RuleError:
    with pytest.raises(RuleError) as e:
        parse_expression(expression)
    return e.value


# -- precedence: not > and > xor > or -----------------------------------------------------


def test_and_binds_tighter_than_or() -> None:
    tree = parse_expression("ssl or ssl and not ssl")
    assert isinstance(tree, Logical) and tree.op == "or"
    assert isinstance(tree.right, Logical) and tree.right.op == "and"
    assert isinstance(tree.right.right, Not)


def test_xor_sits_between_and_and_or() -> None:
    tree = parse_expression("ssl or ssl xor ssl and ssl")
    assert tree.op == "or"  # type: ignore[attr-defined]
    assert tree.right.op == "xor"  # type: ignore[attr-defined]
    assert tree.right.right.op == "and"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("ssl or ssl and not ssl", True),  # T or (T and F)
        ("(ssl or ssl) and not ssl", False),
        ("not ssl or ssl", True),  # (not T) or T
        ("not (ssl or ssl)", False),
        ("ssl xor ssl or ssl", True),  # (T xor T) or T
        ("ssl xor (ssl or ssl)", False),
        ("ssl and ssl xor ssl", False),  # (T and T) xor T
        ("! ssl || ssl && ! ssl", False),
        ("ssl ^^ ssl", False),
        ("not not ssl", True),
    ],
)
def test_precedence_by_evaluation(expression: str, expected: bool) -> None:
    assert evaluate(expression, {"ssl": True}) is expected


def test_not_applies_to_a_whole_comparison() -> None:
    tree = parse_expression('not http.host eq "a"')
    assert isinstance(tree, Not) and isinstance(tree.operand, Compare)


def test_bare_boolean_field() -> None:
    assert isinstance(parse_expression("ssl"), IsTrue)


def test_c_like_and_english_operators_are_the_same() -> None:
    pairs = [
        ('http.host eq "a"', 'http.host == "a"'),
        ('http.host ne "a"', 'http.host != "a"'),
        ("ip.src.asnum lt 3", "ip.src.asnum < 3"),
        ("ip.src.asnum le 3", "ip.src.asnum <= 3"),
        ("ip.src.asnum gt 3", "ip.src.asnum > 3"),
        ("ip.src.asnum ge 3", "ip.src.asnum >= 3"),
        ('http.host matches "a"', 'http.host ~ "a"'),
        ("ssl and ssl", "ssl && ssl"),
        ("ssl or ssl", "ssl || ssl"),
        ("ssl xor ssl", "ssl ^^ ssl"),
        ("not ssl", "!ssl"),
    ]
    for english, c_like in pairs:
        assert parse_expression(english) == parse_expression(c_like)


# -- literals -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        (r'"a\"b"', 'a"b'),
        (r'"a\\b"', "a\\b"),
        (r'"\x41\x42"', "AB"),
        (r'"\101"', "A"),
        (r'"\377"', "\xff"),
        ('r"a\\b"', "a\\b"),
        ('r#"say "hi""#', 'say "hi"'),
        ('r##"a"#b"##', 'a"#b'),
        ('""', ""),
        ('"é"', "\xc3\xa9"),  # UTF-8 bytes
    ],
)
def test_string_literals_and_escapes(literal: str, value: str) -> None:
    tree = parse_expression(f"http.host eq {literal}")
    assert isinstance(tree, Compare) and tree.rhs == value


@pytest.mark.parametrize(("literal", "value"), [("42", 42), ("0x1f", 31), ("017", 15), ("-5", -5)])
def test_integer_literals(literal: str, value: int) -> None:
    tree = parse_expression(f"ip.src.asnum eq {literal}")
    assert isinstance(tree, Compare) and tree.rhs == value


def test_boolean_literals_with_eq() -> None:
    assert evaluate("ssl eq true", {"ssl": True})
    assert evaluate("ssl ne true", {"ssl": False})
    assert evaluate("cf.tls_client_auth.cert_verified eq false", {})


# -- errors name the line and the column --------------------------------------------------


def test_unknown_field_suggests_the_nearest() -> None:
    e = error('http.user_agnet contains "x"')
    assert (e.line, e.column) == (1, 1)
    assert "did you mean 'http.user_agent'" in str(e)
    assert "^^^^^^^^^^^^^^^" in str(e)


def test_type_mismatch_points_at_the_operator() -> None:
    e = error('ip.src contains "x"')
    assert (e.line, e.column) == (1, 8)
    assert "'contains' does not apply to IP address" in e.message
    lines = str(e).splitlines()
    assert lines[1].strip() == 'ip.src contains "x"'
    assert lines[2] == "    " + " " * 7 + "^" * len("contains")


def test_error_on_a_later_line() -> None:
    e = error("ssl\nand http.host eq 5")
    assert (e.line, e.column) == (2, 18)
    assert "expected a string" in e.message


@pytest.mark.parametrize(
    ("expression", "needle", "column"),
    [
        ('http.host matches "(unclosed"', "invalid regular expression", 19),
        ("ip.src in {10.0.0.300}", "not an IP address", 12),
        ("ip.src eq 10.0.0.0/8", "CIDR range needs 'in", 11),
        ("ip.src in {10.0.0.0/33}", "not a CIDR range", 12),
        ("ip.src.asnum in {5..3}", "empty", 21),
        ("ip.src.asnum in {123,456}", "spaces, not commas", 21),
        ('http.host eq "a\\qb"', "invalid escape", 16),
        ('http.host eq "open', "no closing quote", 14),
        ('http.host wildcard "a**"', "'**'", 20),
        ("nosuch(http.host)", "unknown function 'nosuch'", 1),
        ('lower(ip.src) eq "x"', "argument 1 of lower() must be String", 7),
        ("len()", "len() takes 1 argument", 1),
        ("http.host", "expected a comparison operator", 10),
        ("ssl and", "expected a field", 8),
        ("(ssl", "expected ')'", 5),
        ("ssl ssl", "unexpected 'ssl'", 5),
        ('http.request.headers.names[*] eq "a"', "wrap it in any() or all()", 1),
        ('any(http.host eq "a")', "argument 1 of any() must be Array<Boolean>", 5),
        ('concat("a", http.request.headers.names[*])', "[*] can only be used in the first", 13),
        ('split(http.host, "", 3)[0] eq "a"', "separator must be a non-empty", 1),
        ('split(http.host, ",", 200)[0] eq "a"', "limit must be a literal integer", 1),
        ("ip.src.asnum in $nope", "unknown list $nope", 17),
        ('ip.src.asnum eq "5"', "expected an integer", 17),
        ('http.host[0] eq "a"', "needs an array", 10),
        ("", "empty", 1),
        ("true", "cannot stand alone", 1),
    ],
)
def test_positioned_errors(expression: str, needle: str, column: int) -> None:
    e = error(expression)
    assert needle in e.message, e.message
    assert e.column == column, str(e)


def test_length_limit() -> None:
    long = " or ".join(['http.host eq "example.com"'] * 200)
    assert len(long) > 4096
    e = error(long)
    assert "4096" in e.message


def test_nesting_limit() -> None:
    deep = "(" * (MAX_DEPTH + 1) + "ssl" + ")" * (MAX_DEPTH + 1)
    assert "nested" in error(deep).message
    ok = "(" * (MAX_DEPTH - 1) + "ssl" + ")" * (MAX_DEPTH - 1)
    parse_expression(ok)
    nots = "not " * (MAX_DEPTH + 1) + "ssl"
    assert "nested" in error(nots).message


def test_printing_uses_canonical_forms() -> None:
    tree = parse_expression('(http.host == "a" && !ssl) || ip.src in {10.0.0.0/8 1.2.3.4..1.2.3.9}')
    assert unparse(tree) == (
        '(http.host eq "a" and not ssl) or ip.src in {10.0.0.0/8 1.2.3.4..1.2.3.9}'
    )
