"""A direct, slow, obviously-correct evaluator of expression trees.

It exists to check the compiler: property tests evaluate generated expressions both ways and
demand the same answer. It shares no evaluation code with `compiler.py`; set membership, wildcards
and missing values are written here again in the plainest way.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any

from hagate.rules import fields
from hagate.rules.ast import (
    Call,
    Compare,
    FieldRef,
    Index,
    InSet,
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
from hagate.rules.functions import FUNCTIONS
from hagate.rules.parser import ListDef
from hagate.rules.types import Kind


def _lower(s: str) -> str:
    return "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in s)


def _wildcard(value: str, pattern: str, strict: bool) -> bool:
    regex = ""
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\":
            regex += re.escape(pattern[i + 1])
            i += 2
        elif pattern[i] == "*":
            regex += ".*"
            i += 1
        else:
            regex += re.escape(pattern[i])
            i += 1
    if not strict:
        return re.fullmatch(_lower(regex), _lower(value), re.DOTALL) is not None
    return re.fullmatch(regex, value, re.DOTALL) is not None


def _ops(op: str, x: bool, y: bool) -> bool:
    if op == "and":
        return x and y
    if op == "or":
        return x or y
    return x != y


def _member(value: Any, item: object, kind: Kind) -> bool:
    if kind is Kind.STRING:
        return bool(value == item)
    if kind is Kind.INT:
        assert isinstance(item, tuple)
        return bool(item[0] <= value <= item[1])
    if isinstance(item, IPRange):
        return bool(value.version == item.first.version and item.first <= value <= item.last)
    if isinstance(item, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return bool(value.version == item.version and value in item)
    return bool(value == item)


class Interpreter:
    def __init__(self, lists: Mapping[str, ListDef] | None = None) -> None:
        self.lists = lists or {}

    def run(self, node: Node, values: Mapping[str, Any]) -> bool:
        return self.eval(node, values) is True

    def eval(self, node: Node, values: Mapping[str, Any]) -> Any:
        if isinstance(node, FieldRef):
            name = fields.ALIASES.get(node.name, node.name)
            return values[name] if name in values else fields.FIELDS[name].default
        if isinstance(node, Literal):
            return node.value
        if isinstance(node, Index):
            return self.index(node, values)
        if isinstance(node, Call):
            args = [self.eval(a, values) for a in node.args]
            fn = FUNCTIONS[node.name]
            if node.args and node.args[0].each:
                results = [fn(e, *args[1:]) for e in args[0]]
                return [r for r in results if r is not None]
            return fn(*args)
        if isinstance(node, Compare):
            lhs = self.eval(node.lhs, values)
            if node.lhs.each:
                return [self.test(node, v) for v in lhs]
            return lhs is not None and self.test(node, lhs)
        if isinstance(node, IsTrue):
            v = self.eval(node.operand, values)
            if node.operand.each:
                return [x is True for x in v]
            return v is True
        if isinstance(node, Not):
            v = self.eval(node.operand, values)
            return [not x for x in v] if isinstance(v, list) else not v
        if isinstance(node, Logical):
            a = self.eval(node.left, values)
            b = self.eval(node.right, values)
            if isinstance(a, list):
                return [_ops(node.op, x, y) for x, y in zip(a, b, strict=False)]
            return _ops(node.op, bool(a), bool(b))
        raise TypeError(node)

    def index(self, node: Index, values: Mapping[str, Any]) -> Any:
        base = self.eval(node.base, values)

        def one(container: Any) -> Any:
            if container is None:
                return None
            key = node.key
            if isinstance(container, dict):
                return container.get(key) if isinstance(key, str) else None
            if isinstance(key, int) and key < len(container):
                return container[key]
            return None

        def expand(container: Any) -> list[Any]:
            if container is None:
                return []
            return list(container.values()) if isinstance(container, dict) else list(container)

        if isinstance(node.key, Star):
            if node.base.each:
                return [x for c in base for x in expand(c)]
            return expand(base)
        if node.base.each:
            return [r for c in base if (r := one(c)) is not None]
        return one(base)

    def test(self, node: Compare, v: Any) -> bool:
        op, rhs, kind = node.op, node.rhs, node.lhs.type.kind
        if op == "eq":
            return bool(v == rhs)
        if op == "ne":
            return bool(v != rhs)
        if op in ("lt", "le", "gt", "ge"):
            if kind is Kind.IP and v.version != rhs.version:  # type: ignore[attr-defined]
                return False
            return bool({"lt": v < rhs, "le": v <= rhs, "gt": v > rhs, "ge": v >= rhs}[op])
        if op == "contains":
            return bool(rhs in v)
        if op == "matches":
            assert isinstance(rhs, Pattern)
            import re2

            return re2.search(rhs.text.encode("latin-1"), v.encode("latin-1")) is not None
        if op in ("wildcard", "strict_wildcard"):
            assert isinstance(rhs, Pattern)
            return _wildcard(v, rhs.text, strict=op == "strict_wildcard")
        if op == "bitwise_and":
            return bool(v & rhs)
        if op == "in":
            assert isinstance(rhs, ListRef | InSet)
            items = self.lists[rhs.name].items.items if isinstance(rhs, ListRef) else rhs.items
            return any(_member(v, item, kind) for item in items)
        raise ValueError(op)


def interpret(
    node: Node, values: Mapping[str, Any], lists: Mapping[str, ListDef] | None = None
) -> bool:
    return Interpreter(lists).run(node, values)
