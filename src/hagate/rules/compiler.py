"""Compiling a checked tree into plain Python closures, once, when the rules load.

Rules of this module:
  1. Nothing here re-parses or re-checks types at request time: the parser did that.
  2. A missing value (None) makes a comparison false; a `[*]` over a missing container is an
     empty list. This is Cloudflare's missing-value behaviour.
  3. The shapes that dominate real rule sets (a field compared with a literal, a bare Boolean
     field, `and` of two or three terms) get closures with no intermediate calls.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import operator
from collections.abc import Callable, Mapping
from typing import Any

from hagate.rules import fields
from hagate.rules.ast import (
    Call,
    Compare,
    FieldRef,
    Index,
    InSet,
    IsTrue,
    ListRef,
    Literal,
    Logical,
    Node,
    Not,
    Pattern,
    Star,
)
from hagate.rules.functions import FUNCTIONS
from hagate.rules.parser import ListDef
from hagate.rules.sets import IntSet, IPSet
from hagate.rules.types import ARRAY_BOOL, Kind
from hagate.rules.wildcard import compile_wildcard

Fields = Mapping[str, Any]
Getter = Callable[[Fields], Any]
Predicate = Callable[[Any], bool]
Matcher = Callable[[Fields], bool]

_ORDER = {"lt": operator.lt, "le": operator.le, "gt": operator.gt, "ge": operator.ge}


class Compiler:
    def __init__(self, lists: Mapping[str, ListDef] | None = None) -> None:
        self.lists = lists or {}

    # -- values ---------------------------------------------------------------------------

    def value(self, node: Node) -> Getter:
        if isinstance(node, FieldRef):
            name = node.canonical or node.name
            default = fields.FIELDS[name].default
            return lambda f: f.get(name, default)
        if isinstance(node, Literal):
            constant = node.value
            return lambda f: constant
        if isinstance(node, Index):
            return self.index(node)
        if isinstance(node, Call):
            return self.call(node)
        # Boolean expressions used as values (arguments of any()/all()).
        if node.type == ARRAY_BOOL:
            return self.bool_array(node)
        return self.matcher(node)

    def index(self, node: Index) -> Getter:
        base = self.value(node.base)
        key = node.key
        if isinstance(key, Star):
            if node.base.each:
                return lambda f: [x for e in base(f) for x in _elements(e)]
            return lambda f: _elements(base(f))
        if node.base.each:
            return lambda f: [v for e in base(f) if (v := _at(e, key)) is not None]
        return lambda f: _at(base(f), key)

    def call(self, node: Call) -> Getter:
        fn = FUNCTIONS[node.name]
        args = [self.value(a) for a in node.args]
        if node.args and node.args[0].each:
            first, rest = args[0], args[1:]

            def mapped(f: Fields) -> list[Any]:
                extra = [a(f) for a in rest]
                out = []
                for element in first(f):
                    v = fn(element, *extra)
                    if v is not None:
                        out.append(v)
                return out

            return mapped
        if len(args) == 1:
            (a0,) = args
            return lambda f: fn(a0(f))
        if len(args) == 2:
            a0, a1 = args
            return lambda f: fn(a0(f), a1(f))
        return lambda f: fn(*[a(f) for a in args])

    # -- Booleans -------------------------------------------------------------------------

    def matcher(self, node: Node) -> Matcher:
        """A closure returning a Python bool for a Boolean (not array) node."""
        if isinstance(node, Compare):
            return self.compare(node)
        if isinstance(node, IsTrue):
            inner = node.operand
            if isinstance(inner, FieldRef):
                name = inner.canonical or inner.name
                return lambda f: f.get(name, False) is True
            get = self.value(inner)
            return lambda f: get(f) is True
        if isinstance(node, Not):
            m = self.matcher(node.operand)
            return lambda f: not m(f)
        if isinstance(node, Logical):
            return self.logical(node)
        if isinstance(node, Call):
            get = self.call(node)
            return lambda f: get(f) is True
        raise TypeError(f"not a Boolean node: {node!r}")

    def logical(self, node: Logical) -> Matcher:
        if node.op == "xor":
            a, b = self.matcher(node.left), self.matcher(node.right)
            return lambda f: a(f) != b(f)
        terms = [self.matcher(t) for t in _flatten(node, node.op)]
        if node.op == "and":
            if len(terms) == 2:
                a, b = terms
                return lambda f: a(f) and b(f)
            if len(terms) == 3:
                a, b, c = terms
                return lambda f: a(f) and b(f) and c(f)

            def all_of(f: Fields) -> bool:
                for t in terms:
                    if not t(f):
                        return False
                return True

            return all_of
        if len(terms) == 2:
            a, b = terms
            return lambda f: a(f) or b(f)

        def any_of(f: Fields) -> bool:
            for t in terms:
                if t(f):
                    return True
            return False

        return any_of

    def bool_array(self, node: Node) -> Getter:
        """A closure returning a list of bools for an Array<Boolean> node."""
        if isinstance(node, Compare):
            pred = self.predicate(node)
            lhs = self.value(node.lhs)
            return lambda f: [pred(v) for v in lhs(f)]
        if isinstance(node, IsTrue):
            get = self.value(node.operand)
            return lambda f: [v is True for v in get(f)]
        if isinstance(node, Not):
            inner = self.bool_array(node.operand)
            return lambda f: [not v for v in inner(f)]
        if isinstance(node, Logical):
            a, b = self.bool_array(node.left), self.bool_array(node.right)
            combine = {"and": operator.and_, "or": operator.or_, "xor": operator.ne}[node.op]
            return lambda f: [bool(combine(x, y)) for x, y in zip(a(f), b(f), strict=False)]
        get = self.value(node)  # an Array<Boolean> field or function result
        return lambda f: v if (v := get(f)) is not None else []

    def compare(self, node: Compare) -> Matcher:
        pred = self.predicate(node)
        lhs = node.lhs
        if isinstance(lhs, FieldRef):
            name = lhs.canonical or lhs.name
            default = fields.FIELDS[name].default
            if default is not None:
                # Fast path: a field that always has a value, compared with a literal.
                op, rhs = node.op, node.rhs
                if op == "contains":
                    needle = rhs
                    return lambda f: needle in f.get(name, default)
                if op == "eq" and not isinstance(rhs, bool):
                    return lambda f: f.get(name, default) == rhs
                if op == "in" and isinstance(rhs, InSet | ListRef):
                    members = self.members(node)
                    return lambda f: f.get(name, default) in members
                return lambda f: pred(f.get(name, default))
        get = self.value(lhs)
        return lambda f: (v := get(f)) is not None and pred(v)

    def members(self, node: Compare) -> Any:
        rhs = node.rhs
        assert isinstance(rhs, ListRef | InSet)
        items = self.lists[rhs.name].items.items if isinstance(rhs, ListRef) else rhs.items
        kind = node.lhs.type.kind
        if kind is Kind.STRING:
            return frozenset(items)
        if kind is Kind.INT:
            return IntSet(items)  # type: ignore[arg-type]
        return IPSet(items)  # type: ignore[arg-type]

    def predicate(self, node: Compare) -> Predicate:
        """The test applied to one non-missing left-hand value."""
        op, rhs, kind = node.op, node.rhs, node.lhs.type.kind
        if op == "eq":
            return lambda v: v == rhs
        if op == "ne":
            return lambda v: v != rhs
        if op in _ORDER:
            cmp = _ORDER[op]
            if kind is Kind.IP:
                assert isinstance(rhs, ipaddress.IPv4Address | ipaddress.IPv6Address)
                version = rhs.version
                return lambda v: v.version == version and bool(cmp(v, rhs))
            bound: Any = rhs
            return lambda v: bool(cmp(v, bound))
        if op == "contains":
            return lambda v: rhs in v
        if op == "matches":
            assert isinstance(rhs, Pattern)
            import re2  # only for rules that use matches (RE2 takes 2.4 MB)

            search = re2.compile(rhs.text.encode("latin-1")).search
            return lambda v: search(v.encode("latin-1")) is not None
        if op in ("wildcard", "strict_wildcard"):
            assert isinstance(rhs, Pattern)
            return compile_wildcard(rhs.text, case_sensitive=op == "strict_wildcard")
        if op == "in":
            members = self.members(node)
            return lambda v: v in members
        if op == "bitwise_and":
            mask = rhs
            return lambda v: (v & mask) != 0
        raise ValueError(op)


def _elements(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, dict):
        return list(value.values())
    return list(value)


def _at(value: Any, key: int | str) -> Any:
    if value is None:
        return None
    if isinstance(key, int):
        return value[key] if isinstance(value, list | tuple) and 0 <= key < len(value) else None
    return value.get(key) if isinstance(value, dict) else None


def _flatten(node: Node, op: str) -> list[Node]:
    if isinstance(node, Logical) and node.op == op:
        return [*_flatten(node.left, op), *_flatten(node.right, op)]
    return [node]


def field_names(node: object) -> frozenset[str]:
    """The (canonical) names of every field an expression tree reads."""
    if isinstance(node, FieldRef):
        return frozenset({node.canonical or node.name})
    if not dataclasses.is_dataclass(node) or isinstance(node, type):
        if isinstance(node, tuple):
            return frozenset().union(*(field_names(item) for item in node))
        return frozenset()
    return frozenset().union(
        *(field_names(getattr(node, f.name)) for f in dataclasses.fields(node))
    )


def compile_expression(node: Node, lists: Mapping[str, ListDef] | None = None) -> Matcher:
    """A closure `fields -> bool` for a checked expression tree."""
    return Compiler(lists).matcher(node)
