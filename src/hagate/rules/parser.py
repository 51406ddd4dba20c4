"""Parsing and type-checking an expression in one pass, as wirefilter does.

The right-hand side of a comparison is read according to the type of its left-hand side
(`ip.src in {10.0.0.0/8}` reads IP ranges, `http.host in {"a"}` strings), so the parser works
on characters, not on a token stream. Every error carries the span it is about.

Grammar, loosest first (Cloudflare's precedence: not > and > xor > or):
    expr     := xor (("or" | "||") xor)*
    xor      := and (("xor" | "^^") and)*
    and      := unary (("and" | "&&") unary)*
    unary    := ("not" | "!") unary | "(" expr ")" | compare
    compare  := value [op rhs]            -- no op only for Boolean values
    value    := (field | name "(" args ")") ("[" (string | int | "*") "]")*
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass

from hagate.rules import fields
from hagate.rules.ast import (
    STAR,
    Call,
    Compare,
    FieldRef,
    Index,
    InSet,
    IPItem,
    IPRange,
    IsTrue,
    ListRef,
    Literal,
    Logical,
    Node,
    Not,
    Pattern,
    Star,
)
from hagate.rules.errors import RuleError
from hagate.rules.functions import FUNCTIONS
from hagate.rules.types import ARRAY_BOOL, BOOL, INT, STRING, Kind, Type, array, to_bytes_str

MAX_LENGTH = 4096
MAX_DEPTH = 32

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*")
_LIST_NAME = re.compile(r"[a-z0-9_]+")
_INT = re.compile(r"-?(?:0x[0-9A-Fa-f]+|[0-9]+)")
_IP_CHARS = re.compile(r"[0-9A-Fa-f:.]+(?:/[0-9]+)?")
_WORD_CHAR = re.compile(r"[A-Za-z0-9_.]")
INT_MIN, INT_MAX = -(2**63), 2**63 - 1

# Which comparison operators each type of value supports.
_OPS: dict[Kind, tuple[str, ...]] = {
    Kind.STRING: (
        "eq",
        "ne",
        "lt",
        "le",
        "gt",
        "ge",
        "contains",
        "matches",
        "wildcard",
        "strict_wildcard",
        "in",
    ),
    Kind.INT: ("eq", "ne", "lt", "le", "gt", "ge", "in", "bitwise_and"),
    Kind.IP: ("eq", "ne", "lt", "le", "gt", "ge", "in"),
    Kind.BOOL: ("eq", "ne"),
}
_SYMBOL_OPS = [
    ("==", "eq"),
    ("!=", "ne"),
    ("<=", "le"),
    (">=", "ge"),
    ("<", "lt"),
    (">", "gt"),
    ("~", "matches"),
    ("&", "bitwise_and"),
]
_WORD_OPS = [
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "contains",
    "matches",
    "wildcard",
    "in",
    "bitwise_and",
]


@dataclass(frozen=True)
class ListDef:
    """A named list from the config (Cloudflare's `$name` lists)."""

    name: str
    type: Type  # the item type: STRING, INT or IP
    items: InSet


class Parser:
    def __init__(self, text: str, lists: Mapping[str, ListDef] | None = None) -> None:
        self.s = text
        self.i = 0
        self.depth = 0
        self.lists = lists or {}

    # -- low level ------------------------------------------------------------------------

    def error(self, message: str, start: int | None = None, end: int | None = None) -> RuleError:
        start = self.i if start is None else start
        return RuleError(message, self.s, start, end)

    def ws(self) -> None:
        s, i = self.s, self.i
        while i < len(s) and s[i] in " \t\r\n":
            i += 1
        self.i = i

    def peek(self, n: int = 1) -> str:
        return self.s[self.i : self.i + n]

    def at_end(self) -> bool:
        return self.i >= len(self.s)

    def sym(self, text: str) -> bool:
        self.ws()
        if self.s.startswith(text, self.i):
            self.i += len(text)
            return True
        return False

    def word(self, text: str) -> bool:
        self.ws()
        end = self.i + len(text)
        if self.s.startswith(text, self.i) and not _WORD_CHAR.match(self.s, end):
            self.i = end
            return True
        return False

    def expect(self, text: str, what: str) -> None:
        if not self.sym(text):
            raise self.error(f"expected {what}, found {self.found()}")

    def found(self) -> str:
        self.ws()
        if self.at_end():
            return "the end of the expression"
        m = _IDENT.match(self.s, self.i)
        return repr(m.group(0) if m else self.s[self.i])

    def nested(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"the expression is nested more than {MAX_DEPTH} levels deep")

    # -- expressions ----------------------------------------------------------------------

    def parse(self) -> Node:
        if len(self.s) > MAX_LENGTH:
            raise RuleError(
                f"the expression is {len(self.s)} characters long; the limit is {MAX_LENGTH}",
                self.s,
                MAX_LENGTH,
                len(self.s),
            )
        self.ws()
        if self.at_end():
            raise self.error("the expression is empty")
        node = self.expr()
        self.ws()
        if not self.at_end():
            raise self.error(
                f"unexpected {self.found()}: expected and, or, xor or the end of the expression"
            )
        if node.type != BOOL or node.each:
            what = (
                "an array of Booleans (wrap it in any() or all())"
                if node.each or node.type == ARRAY_BOOL
                else str(node.type)
            )
            raise self.error(f"a rule must be true or false, but this is {what}", *node.span)
        return node

    def expr(self) -> Node:
        return self.logical("or", ("or", "||"), self.xor)

    def xor(self) -> Node:
        return self.logical("xor", ("xor", "^^"), self.and_)

    def and_(self) -> Node:
        return self.logical("and", ("and", "&&"), self.unary)

    def logical(self, op: str, spellings: tuple[str, str], operand: object) -> Node:
        assert callable(operand)
        left: Node = operand()
        while self.word(spellings[0]) or self.sym(spellings[1]):
            op_start = self.i - 2
            right: Node = operand()
            for side in (left, right):
                if side.type not in (BOOL, ARRAY_BOOL) or side.each:
                    raise self.error(
                        f"'{op}' needs true/false on both sides, not {side.type}", *side.span
                    )
            if left.type != right.type:
                raise self.error(
                    f"'{op}' cannot combine a Boolean with an array of Booleans",
                    op_start,
                    op_start + 2,
                )
            left = Logical(left.type, False, (left.span[0], right.span[1]), op, left, right)
        return left

    def unary(self) -> Node:
        self.ws()
        start = self.i
        if self.word("not") or (self.peek() == "!" and self.peek(2) != "!=" and self.sym("!")):
            self.nested()
            operand = self.unary()
            self.depth -= 1
            if operand.type not in (BOOL, ARRAY_BOOL) or operand.each:
                raise self.error(f"'not' needs true/false, not {operand.type}", *operand.span)
            return Not(operand.type, False, (start, operand.span[1]), operand)
        if self.sym("("):
            self.nested()
            node = self.expr()
            self.expect(
                ")", f"')' to close the '(' at column {start - self.s.rfind(chr(10), 0, start)}"
            )
            self.depth -= 1
            return node
        return self.compare(self.value())

    # -- values: fields, calls, indexes ---------------------------------------------------

    def value(self) -> Node:
        self.ws()
        start = self.i
        m = _IDENT.match(self.s, self.i)
        if not m:
            if self.at_end():
                raise self.error("expected a field or a function, found the end of the expression")
            raise self.error(f"expected a field or a function, found {self.found()}")
        name = m.group(0)
        self.i = m.end()
        node: Node
        if self.peek() == "(" or (name in FUNCTIONS and self._next_is("(")):
            node = self.call(name, start)
        else:
            fdef = fields.lookup(name)
            if fdef is None:
                if name in ("true", "false"):
                    raise self.error(
                        "a Boolean literal cannot stand alone; use a field such as ssl",
                        start,
                        self.i,
                    )
                hint = fields.nearest(name)
                suggestion = f" (did you mean '{hint}'?)" if hint else ""
                raise self.error(f"unknown field '{name}'{suggestion}", start, self.i)
            node = FieldRef(fdef.type, False, (start, self.i), name, fdef.name)
        return self.indexes(node)

    def _next_is(self, text: str) -> bool:
        save = self.i
        self.ws()
        ok = self.s.startswith(text, self.i)
        self.i = save
        return ok

    def indexes(self, node: Node) -> Node:
        while self._next_is("["):
            self.ws()
            start = self.i
            self.i += 1
            self.ws()
            key: int | str | Star
            if self.sym("*"):
                key = STAR
            elif self.peek() in ('"', "r"):
                key = self.string()
            else:
                m = _INT.match(self.s, self.i)
                if not m or m.group(0).startswith("-"):
                    raise self.error('expected an index: a number, a "key" or *')
                key = self.to_int(m.group(0), self.i)
                self.i = m.end()
            self.expect("]", "']'")
            t = node.type
            if isinstance(key, Star):
                if not t.is_container:
                    raise self.error(f"[*] needs an array or a map, not {t}", start, self.i)
                node = Index(t.element(), True, (node.span[0], self.i), node, key)
                continue
            if isinstance(key, int) and t.kind is not Kind.ARRAY:
                raise self.error(f"[{key}] needs an array, not {t}", start, self.i)
            if isinstance(key, str) and t.kind is not Kind.MAP:
                raise self.error(f'["..."] needs a map, not {t}', start, self.i)
            node = Index(t.element(), node.each, (node.span[0], self.i), node, key)
        return node

    def call(self, name: str, start: int) -> Node:
        fn = FUNCTIONS.get(name)
        if fn is None:
            known = ", ".join(sorted(FUNCTIONS))
            raise self.error(f"unknown function '{name}' (known: {known})", start, self.i)
        self.expect("(", "'('")
        self.nested()
        args: list[Node] = []
        self.ws()
        if not self.sym(")"):
            while True:
                args.append(self.argument())
                if self.sym(")"):
                    break
                self.expect(",", "',' or ')'")
        self.depth -= 1
        span = (start, self.i)
        return self.check_call(fn.name, args, span)

    def argument(self) -> Node:
        self.ws()
        start = self.i
        literal = self.try_literal()
        if literal is not None:
            return literal
        if self.peek() in ("(", "!") or self.word("not"):
            self.i = start
            return self.expr()
        node = self.value()
        if self._next_is(",") or self._next_is(")"):
            if node.type == BOOL and node.each:
                return IsTrue(ARRAY_BOOL, False, node.span, node)
            return node
        # A comparison or a logical expression as an argument (any(), all()).
        self.i = start
        return self.expr()

    def try_literal(self) -> Literal | None:
        start = self.i
        ch = self.peek()
        if ch == '"' or (ch == "r" and self.s[self.i + 1 : self.i + 2] in ('"', "#")):
            return Literal(STRING, False, (start, self.i), self.string())
        m = _INT.match(self.s, self.i)
        if m and not _WORD_CHAR.match(self.s, m.end()):
            self.i = m.end()
            return Literal(INT, False, (start, self.i), self.to_int(m.group(0), start))
        for word, value in (("true", True), ("false", False)):
            if self.word(word):
                return Literal(BOOL, False, (start, self.i), value)
        return None

    def check_call(self, name: str, args: list[Node], span: tuple[int, int]) -> Node:
        fn = FUNCTIONS[name]
        required = [p for p in fn.params if not p.optional]
        n_params = len(fn.params)
        if len(args) < len(required) + fn.min_variadic or (
            fn.variadic is None and len(args) > n_params
        ):
            expected = (
                f"{len(required)}"
                if len(required) == n_params
                else f"{len(required)} to {n_params}"
            )
            if fn.variadic is not None:
                expected = f"at least {len(required) + fn.min_variadic}"
            raise self.error(f"{name}() takes {expected} argument(s), got {len(args)}", *span)
        each = bool(args) and args[0].each
        for pos, arg in enumerate(args):
            if pos > 0 and arg.each:
                raise self.error(
                    "[*] can only be used in the first argument of a function", *arg.span
                )
            param = fn.params[pos] if pos < n_params else fn.variadic
            assert param is not None
            if not param.accepts(arg.type):
                raise self.error(
                    f"argument {pos + 1} of {name}() must be {param.describe()}, not {arg.type}",
                    *arg.span,
                )
            if param.literal and not isinstance(arg, Literal):
                raise self.error(
                    f"argument {pos + 1} of {name}() must be a literal value", *arg.span
                )
        if name == "concat":
            for arg in args[1:]:
                if arg.type != args[0].type:
                    raise self.error(
                        f"concat() joins values of one type: {args[0].type} and {arg.type}",
                        *arg.span,
                    )
        if fn.check is not None:
            problem = fn.check([a.value if isinstance(a, Literal) else None for a in args])
            if problem:
                raise self.error(problem, *span)
        ret = fn.returns([a.type for a in args])
        # A function over a [*] expansion is applied to each element and returns an array.
        return Call(array(ret) if each else ret, False, span, name, tuple(args))

    # -- comparisons ----------------------------------------------------------------------

    def compare(self, lhs: Node) -> Node:
        start = lhs.span[0]
        self.ws()
        op_start = self.i
        op = self.operator()
        if op is None:
            if lhs.type == BOOL:
                return IsTrue(ARRAY_BOOL if lhs.each else BOOL, False, lhs.span, lhs)
            if lhs.type == ARRAY_BOOL and not lhs.each:
                return lhs  # an array of Booleans, for any() and all()
            what = f"{lhs.type} value" if not lhs.each else f"[*] expansion of {lhs.type}"
            raise self.error(
                f"expected a comparison operator (eq, ne, contains, in, ...) after this {what}, "
                f"found {self.found()}",
                op_start,
            )
        kind = lhs.type.kind
        allowed = _OPS.get(kind, ())
        if op not in allowed:
            shown = op.replace("_", " ")
            ok = ", ".join(o.replace("_", " ") for o in allowed) or "none"
            raise self.error(
                f"'{shown}' does not apply to {lhs.type} values (these do: {ok})",
                op_start,
                self.i,
            )
        self.ws()
        rhs = self.rhs(op, lhs.type)
        t = ARRAY_BOOL if lhs.each else BOOL
        return Compare(t, False, (start, self.i), lhs, op, rhs)

    def operator(self) -> str | None:
        self.ws()
        for text, op in _SYMBOL_OPS:
            if self.s.startswith(text, self.i) and not self.s.startswith("&&", self.i):
                self.i += len(text)
                return op
        if self.word("strict"):
            if not self.word("wildcard"):
                raise self.error("expected 'wildcard' after 'strict'")
            return "strict_wildcard"
        for w in _WORD_OPS:
            if self.word(w):
                return w
        return None

    def rhs(self, op: str, t: Type) -> object:
        kind = t.kind
        if op == "in":
            if self.sym("$"):
                return self.list_ref(t)
            return self.in_set(kind)
        if op == "matches":
            return self.regex()
        if op in ("wildcard", "strict_wildcard"):
            return self.wildcard()
        if kind is Kind.STRING:
            return self.string(expect="a string")
        if kind is Kind.INT:
            return self.integer()
        if kind is Kind.IP:
            item = self.ip_item(allow_ranges=False)
            return item
        if self.word("true"):
            return True
        if self.word("false"):
            return False
        raise self.error(f"expected true or false, found {self.found()}")

    def list_ref(self, t: Type) -> ListRef:
        start = self.i - 1
        m = _LIST_NAME.match(self.s, self.i)
        if not m:
            raise self.error("expected a list name (lower-case letters, digits, _) after $")
        self.i = m.end()
        name = m.group(0)
        ldef = self.lists.get(name)
        if ldef is None:
            known = ", ".join(f"${n}" for n in sorted(self.lists)) or "none are defined"
            raise self.error(f"unknown list ${name} (lists: {known})", start, self.i)
        if ldef.type != t:
            raise self.error(f"list ${name} holds {ldef.type} items, not {t}", start, self.i)
        return ListRef(name)

    def in_set(self, kind: Kind) -> InSet:
        if not self.sym("{"):
            raise self.error(f"expected '{{' and a set of values, or $list, found {self.found()}")
        items: list[object] = []
        while True:
            self.ws()
            if self.sym("}"):
                break
            if self.at_end():
                raise self.error("expected '}' to close the set")
            if self.peek() == ",":
                raise self.error(
                    "separate the values in a set with spaces, not commas "
                    "(as Cloudflare does): {123 456}",
                    self.i,
                    self.i + 1,
                )
            if kind is Kind.STRING:
                items.append(self.string(expect="a string"))
            elif kind is Kind.INT:
                lo = self.integer()
                hi = lo
                if self.s.startswith("..", self.i):
                    self.i += 2
                    hi_start = self.i
                    hi = self.integer()
                    if hi < lo:
                        raise self.error(f"the range {lo}..{hi} is empty", hi_start, self.i)
                items.append((lo, hi))
            else:
                items.append(self.ip_item(allow_ranges=True))
        if not items:
            raise self.error("the set is empty", self.i - 1, self.i)
        return InSet(tuple(items))

    # -- literals -------------------------------------------------------------------------

    def to_int(self, text: str, start: int) -> int:
        neg = text.startswith("-")
        digits = text[1:] if neg else text
        if digits.startswith("0x"):
            value = int(digits[2:], 16)
        elif len(digits) > 1 and digits.startswith("0"):
            if not re.fullmatch(r"[0-7]+", digits):
                raise self.error(
                    f"{text!r} is not an octal number (a leading 0 means octal)",
                    start,
                    start + len(text),
                )
            value = int(digits, 8)
        else:
            value = int(digits)
        value = -value if neg else value
        if not INT_MIN <= value <= INT_MAX:
            raise self.error(f"{text} does not fit in a 64-bit integer", start, start + len(text))
        return value

    def integer(self) -> int:
        self.ws()
        m = _INT.match(self.s, self.i)
        if not m or (_WORD_CHAR.match(self.s, m.end()) and not self.s.startswith("..", m.end())):
            raise self.error(f"expected an integer, found {self.found()}")
        self.i = m.end()
        return self.to_int(m.group(0), m.start())

    def ip_item(self, allow_ranges: bool) -> IPItem:
        self.ws()
        start = self.i
        m = _IP_CHARS.match(self.s, self.i)
        if not m:
            raise self.error(f"expected an IP address, found {self.found()}")
        text = m.group(0)
        self.i = m.end()
        if ".." in text:
            first_text, _, last_text = text.partition("..")
            if not allow_ranges:
                raise self.error("a range needs 'in {...}'", start, self.i)
            first = self.ip_address(first_text, start)
            last = self.ip_address(last_text, start + len(first_text) + 2)
            if first.version != last.version or int(last) < int(first):
                raise self.error(f"{text} is not a valid address range", start, self.i)
            return IPRange(first, last)
        if "/" in text:
            if not allow_ranges:
                raise self.error(
                    "a CIDR range needs 'in {...}', e.g. ip.src in {10.0.0.0/8}", start, self.i
                )
            try:
                return ipaddress.ip_network(text, strict=False)
            except ValueError:
                raise self.error(f"{text!r} is not a CIDR range", start, self.i) from None
        return self.ip_address(text, start)

    def ip_address(self, text: str, start: int) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        try:
            return ipaddress.ip_address(text)
        except ValueError:
            raise self.error(f"{text!r} is not an IP address", start, start + len(text)) from None

    def string(self, expect: str = "a string", regex: bool = False) -> str:
        """A quoted or raw string literal, as bytes in Latin-1 form."""
        self.ws()
        start = self.i
        ch = self.peek()
        if ch == "r" and self.s[self.i + 1 : self.i + 2] in ('"', "#"):
            return to_bytes_str(self.raw_string())
        if ch != '"':
            raise self.error(f"expected {expect}, found {self.found()}")
        self.i += 1
        out: list[str] = []
        s = self.s
        while True:
            if self.i >= len(s):
                raise self.error("this string has no closing quote", start, len(s))
            c = s[self.i]
            if c == '"':
                self.i += 1
                return "".join(out)
            if c != "\\":
                out.append(to_bytes_str(c))
                self.i += 1
                continue
            esc = s[self.i + 1 : self.i + 2]
            if regex:
                # Regex escaping: only \" is the string's; the rest belongs to the regex.
                out.append('"' if esc == '"' else "\\" + to_bytes_str(esc))
                self.i += 2
                continue
            if esc in ('"', "\\"):
                out.append(esc)
                self.i += 2
            elif esc == "x" and re.fullmatch(r"[0-9A-Fa-f]{2}", s[self.i + 2 : self.i + 4]):
                out.append(chr(int(s[self.i + 2 : self.i + 4], 16)))
                self.i += 4
            elif (
                re.fullmatch(r"[0-7]{3}", s[self.i + 1 : self.i + 4])
                and int(s[self.i + 1 : self.i + 4], 8) < 256
            ):
                out.append(chr(int(s[self.i + 1 : self.i + 4], 8)))
                self.i += 4
            else:
                raise self.error(
                    'invalid escape: inside "..." use \\" \\\\ \\xHH or \\NNN (octal); '
                    'for regular expressions use a raw string r"..."',
                    self.i,
                    self.i + 2,
                )

    def raw_string(self) -> str:
        start = self.i
        self.i += 1  # r
        hashes = 0
        while self.peek() == "#":
            hashes += 1
            self.i += 1
        if hashes > 255:
            raise self.error("a raw string can have at most 255 #", start, self.i)
        if self.peek() != '"':
            raise self.error("expected '\"' to start the raw string", start, self.i + 1)
        self.i += 1
        end_marker = '"' + "#" * hashes
        end = self.s.find(end_marker, self.i)
        if end < 0:
            raise self.error(f"this raw string has no closing {end_marker}", start, len(self.s))
        text = self.s[self.i : end]
        self.i = end + len(end_marker)
        return text

    def regex(self) -> Pattern:
        self.ws()
        start = self.i
        if self.peek() == '"':
            text = self.string(regex=True)
        else:
            text = self.string(expect="a regular expression")
        import re2

        try:
            re2.compile(text.encode("latin-1"))
        except re2.error as e:
            raise self.error(f"invalid regular expression: {e}", start, self.i) from None
        return Pattern(text)

    def wildcard(self) -> Pattern:
        self.ws()
        start = self.i
        text = self.string(expect="a wildcard pattern")
        from hagate.rules.wildcard import WildcardError, compile_wildcard

        try:
            compile_wildcard(text, case_sensitive=True)
        except WildcardError as e:
            raise self.error(str(e), start, self.i) from None
        return Pattern(text)


def parse_expression(text: str, lists: Mapping[str, ListDef] | None = None) -> Node:
    """Parse and type-check `text`; raises RuleError with the position of any mistake."""
    return Parser(text, lists).parse()
