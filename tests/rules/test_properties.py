"""Property tests: the parser only ever raises its own positioned error, the compiled closures
agree with the reference interpreter, and printing a tree parses back to the same tree."""

from __future__ import annotations

import ipaddress
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from hagate.rules.ast import unparse
from hagate.rules.compiler import compile_expression, field_names
from hagate.rules.errors import RuleError
from hagate.rules.fields import FIELDS
from hagate.rules.interpreter import interpret
from hagate.rules.parser import parse_expression
from hagate.rules.request import request_fields

SETTINGS = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- building blocks ----------------------------------------------------------------------

ALPHABET = ["a", "b", "A", "/", "*", '"', "\\", "é", "%2F"]
text_values = st.lists(st.sampled_from(ALPHABET), max_size=6).map("".join)


def escape(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def wildcard_literal(value: str) -> str:
    # Escape what the wildcard grammar reserves, then quote for the string grammar.
    body = value.replace("\\", "\\\\").replace("*", "\\*")
    return escape(body)


wild_patterns = (
    st.lists(st.one_of(st.sampled_from(["a", "A", "b", "/", ".", "é"]), st.just("*")), max_size=5)
    .map(lambda parts: "".join(parts))
    .filter(lambda p: "**" not in p)
)

STRING_FIELDS = ["http.host", "http.user_agent", "http.request.uri.path", "http.request.method"]
INT_FIELDS = ["ip.src.asnum", "cf.edge.server_port"]
BOOL_FIELDS = ["ssl", "cf.tls_client_auth.cert_verified", "cf.tls_client_auth.cert_presented"]
IPS = ["10.0.0.1", "10.0.0.200", "192.0.2.7", "::1", "2001:db8::5", "2001:db8:1::1"]
IP_ITEMS = [
    "10.0.0.0/8",
    "10.0.0.1",
    "192.0.2.0..192.0.2.10",
    "2001:db8::/48",
    "::1",
    "0.0.0.0/0",
    "2001:db8::1..2001:db8::9",
]
REGEXES = ["^a", "b$", "(?i)A.b", "[a-b]+", "é", r"\.", "^$"]


@st.composite
def string_comparison(draw: st.DrawFn) -> str:
    field = draw(st.sampled_from(STRING_FIELDS))
    # Plain fields half the time: they take the compiler's fast paths.
    lhs = (
        field
        if draw(st.booleans())
        else draw(
            st.sampled_from(
                [
                    f"lower({field})",
                    f"upper({field})",
                    f"url_decode({field})",
                    f'concat({field}, "a")',
                    f"substring({field}, 1)",
                    f"substring({field}, -2, 5)",
                ]
            )
        )
    )
    kind = draw(st.sampled_from(["cmp", "contains", "matches", "wildcard", "in", "fn"]))
    if kind == "cmp":
        op = draw(st.sampled_from(["eq", "ne", "lt", "le", "gt", "ge", "==", "!="]))
        return f"{lhs} {op} {escape(draw(text_values))}"
    if kind == "contains":
        return f"{lhs} contains {escape(draw(text_values))}"
    if kind == "matches":
        return f'{lhs} matches r#"{draw(st.sampled_from(REGEXES))}"#'
    if kind == "wildcard":
        op = draw(st.sampled_from(["wildcard", "strict wildcard"]))
        return f"{lhs} {op} {escape(draw(wild_patterns))}"
    if kind == "in":
        items = draw(st.lists(text_values, min_size=1, max_size=3))
        return f"{lhs} in {{{' '.join(escape(i) for i in items)}}}"
    fn = draw(st.sampled_from(["starts_with", "ends_with"]))
    return f"{fn}({field}, {escape(draw(text_values))})"


@st.composite
def int_comparison(draw: st.DrawFn) -> str:
    field = draw(st.sampled_from([*INT_FIELDS, "len(http.host)"]))
    if draw(st.booleans()):
        op = draw(st.sampled_from(["eq", "ne", "lt", "le", "gt", "ge"]))
        return f"{field} {op} {draw(st.integers(-2, 10))}"
    items = []
    for lo, span in draw(
        st.lists(st.tuples(st.integers(0, 8), st.integers(0, 3)), min_size=1, max_size=3)
    ):
        items.append(str(lo) if span == 0 else f"{lo}..{lo + span}")
    return f"{field} in {{{' '.join(items)}}}"


@st.composite
def ip_comparison(draw: st.DrawFn) -> str:
    lhs = draw(st.sampled_from(["ip.src", "cidr(ip.src, 24, 64)", "cidr6(ip.src, 32)"]))
    if draw(st.booleans()):
        op = draw(st.sampled_from(["eq", "ne", "lt", "ge"]))
        return f"{lhs} {op} {draw(st.sampled_from(IPS))}"
    items = draw(st.lists(st.sampled_from(IP_ITEMS), min_size=1, max_size=3))
    return f"{lhs} in {{{' '.join(items)}}}"


@st.composite
def array_comparison(draw: st.DrawFn) -> str:
    lit = escape(draw(text_values))
    return draw(
        st.sampled_from(
            [
                f"any(http.request.headers.names[*] eq {lit})",
                f"all(lower(http.request.headers.names[*])[*] contains {lit})",
                f'any(http.request.headers["x"][*] eq {lit})',
                f'all(http.request.headers["x"][*] ne {lit})',
                f'http.request.headers["x"][0] eq {lit}',
                f'http.request.headers["x"][1] ne {lit}',
                f'len(http.request.headers["x"]) ge {draw(st.integers(0, 3))}',
                f"http.request.headers.names[0] lt {lit}",
                f"any(http.request.headers[*][0] contains {lit})",
                f"any(not http.request.headers.names[*] eq {lit} or http.request.headers.names[*] eq {lit})",
                f"has_value(http.request.headers.names, {lit})",
                f'join(http.request.headers.names, ",") contains {lit}',
                f'split(http.host, "/", 3)[1] eq {lit}',
            ]
        )
    )


atoms = st.one_of(
    string_comparison(),
    int_comparison(),
    ip_comparison(),
    array_comparison(),
    st.sampled_from(BOOL_FIELDS),
)


def combine(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        children.map(lambda c: f"not {c}" if not c.startswith("not") else f"not ({c})"),
        children.map(lambda c: f"({c})"),
        st.tuples(children, st.sampled_from(["and", "or", "xor", "&&", "||", "^^"]), children).map(
            lambda t: f"{t[0]} {t[1]} {t[2]}"
        ),
    )


expressions = st.recursive(atoms, combine, max_leaves=8)

field_values = st.fixed_dictionaries(
    {},
    optional={
        **{f: text_values.filter(bool) for f in STRING_FIELDS},
        **{f: st.integers(-1, 10) for f in INT_FIELDS},
        **{f: st.booleans() for f in BOOL_FIELDS},
        "ip.src": st.sampled_from(IPS).map(ipaddress.ip_address),
        "http.request.headers.names": st.lists(text_values, max_size=3),
        "http.request.headers": st.dictionaries(
            st.sampled_from(["x", "y"]), st.lists(text_values, max_size=3), max_size=2
        ),
    },
)


def to_latin1(values: dict[str, Any]) -> dict[str, Any]:
    def conv(v: Any) -> Any:
        if isinstance(v, str):
            return v.encode().decode("latin-1")
        if isinstance(v, list):
            return [conv(x) for x in v]
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        return v

    return {k: conv(v) for k, v in values.items()}


# -- properties ---------------------------------------------------------------------------


@SETTINGS
@given(expressions, field_values)
def test_compiled_agrees_with_reference_interpreter(
    expression: str, values: dict[str, Any]
) -> None:
    tree = parse_expression(expression)  # generated expressions are valid by construction
    fields = to_latin1(values)
    assert compile_expression(tree)(fields) == interpret(tree, fields)


@SETTINGS
@given(expressions)
def test_print_then_parse_gives_the_same_tree(expression: str) -> None:
    tree = parse_expression(expression)
    printed = unparse(tree)
    assert parse_expression(printed) == tree
    assert unparse(parse_expression(printed)) == printed


@SETTINGS
@given(st.text(max_size=200))
def test_parser_raises_only_its_own_error_on_any_text(text: str) -> None:
    try:
        parse_expression(text)
    except RuleError as e:
        assert e.column >= 1 and e.line >= 1
        assert "^" in str(e)


@SETTINGS
@given(expressions, st.data())
def test_parser_raises_only_its_own_error_on_mutated_expressions(
    expression: str, data: st.DataObject
) -> None:
    chars = list(expression)
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["delete", "insert", "replace"]))
        pos = data.draw(st.integers(0, max(0, len(chars) - 1)))
        piece = data.draw(st.sampled_from(list('()[]{}"#r*$,.:/\\!&|^~<=>- \n0x9aé')))
        if op == "delete" and chars:
            del chars[pos]
        elif op == "insert":
            chars.insert(pos, piece)
        elif chars:
            chars[pos] = piece
    mutated = "".join(chars)
    assume(mutated != expression)
    try:
        tree = parse_expression(mutated)
    except RuleError:
        return
    # Whatever parses must also compile and evaluate without error.
    compile_expression(tree)({})
    interpret(tree, {})


# -- the gateway computes only the fields its rules read ------------------------------------


@SETTINGS
@given(expressions, field_values)
def test_an_expression_reads_only_the_fields_field_names_reports(
    expression: str, values: dict[str, Any]
) -> None:
    tree = parse_expression(expression)
    match = compile_expression(tree)
    fields = to_latin1(values)
    read = field_names(tree)
    assert match({k: v for k, v in fields.items() if k in read}) == match(fields)


requests = st.fixed_dictionaries(
    {
        "method": st.sampled_from(["GET", "POST"]),
        "host": st.sampled_from(["", "ha.test"]),
        "target": st.sampled_from(["/", "/a.JS", "/api/x?b=1&b=2&c", "/p?x=%41&=&y"]),
        "headers": st.lists(
            st.tuples(
                st.sampled_from(["Host", "User-Agent", "Referer", "Cookie", "X-Forwarded-For"]),
                st.sampled_from(["", "a", "k=v; k=w; bad", "h.example"]),
            ),
            max_size=5,
        ),
    }
)


@SETTINGS
@given(requests, st.sets(st.sampled_from(sorted(FIELDS)), max_size=8))
def test_fields_asked_for_are_the_same_as_when_all_are_computed(
    request: dict[str, Any], only: set[str]
) -> None:
    full = request_fields(client_ip="192.0.2.7", **request)
    partial = request_fields(client_ip="192.0.2.7", only=frozenset(only), **request)
    for name in only:
        assert partial.get(name) == full.get(name), name
