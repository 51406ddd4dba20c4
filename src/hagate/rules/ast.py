"""The typed syntax tree of an expression, and printing it back as text.

Nodes compare equal when they mean the same expression: positions (`span`) do not take part,
so `parse(unparse(tree)) == tree` is a property the tests check.

A node with `each=True` is a `[*]` expansion: at run time its value is a list whose elements
are of `type`, and the comparison or function it feeds is applied element by element.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from hagate.rules.types import Kind, Type

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Span = tuple[int, int]


class Star:
    """The `[*]` index."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Star)

    def __hash__(self) -> int:
        return 0x2A

    def __repr__(self) -> str:
        return "[*]"


STAR = Star()


@dataclass(frozen=True)
class IPRange:
    """An explicit `a..b` range of addresses."""

    first: IPAddress
    last: IPAddress


IPItem = IPAddress | IPNetwork | IPRange


@dataclass(frozen=True)
class Node:
    type: Type
    each: bool
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True)
class FieldRef(Node):
    name: str  # as written; deprecated aliases keep their spelling
    canonical: str = field(compare=False, default="")


@dataclass(frozen=True)
class Literal(Node):
    value: object  # str (bytes as Latin-1), int, bool or an IP address


@dataclass(frozen=True)
class Index(Node):
    base: Node
    key: int | str | Star


@dataclass(frozen=True)
class Call(Node):
    name: str
    args: tuple[Node, ...]


@dataclass(frozen=True)
class InSet:
    items: tuple[object, ...]  # str, (lo, hi) int ranges, or IP items


@dataclass(frozen=True)
class ListRef:
    name: str


@dataclass(frozen=True)
class Pattern:
    """The right-hand side of `matches`, `wildcard` and `strict wildcard`."""

    text: str  # bytes as Latin-1


@dataclass(frozen=True)
class Compare(Node):
    lhs: Node
    op: str  # eq ne lt le gt ge contains matches wildcard strict_wildcard in bitwise_and
    rhs: object  # a literal value, InSet, ListRef or Pattern


@dataclass(frozen=True)
class IsTrue(Node):
    operand: Node


@dataclass(frozen=True)
class Not(Node):
    operand: Node


@dataclass(frozen=True)
class Logical(Node):
    op: str  # and xor or
    left: Node
    right: Node


# -- printing -----------------------------------------------------------------------------

_OP_TEXT = {"strict_wildcard": "strict wildcard"}


def quote(value: str) -> str:
    """A quoted string literal for a byte string (Latin-1 form), escaping what must be."""
    out = ['"']
    for ch in value:
        code = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        else:
            out.append(ch)
    out.append('"')
    text = "".join(out)
    # Non-ASCII bytes: show valid UTF-8 as text, anything else as \xHH escapes.
    try:
        return text.encode("latin-1").decode("utf-8")
    except UnicodeDecodeError:
        return "".join(c if ord(c) < 0x80 else f"\\x{ord(c):02x}" for c in text)


def raw(value: str) -> str:
    """A raw string literal r#"..."# with enough hashes to hold `value` as it is."""
    text = value.encode("latin-1").decode("utf-8", errors="surrogateescape")
    hashes = 0
    while '"' + "#" * hashes in text:
        hashes += 1
    return f'r{"#" * hashes}"{text}"{"#" * hashes}'


def _ip_item(item: object) -> str:
    if isinstance(item, IPRange):
        return f"{item.first}..{item.last}"
    return str(item)


def _rhs(node: Compare) -> str:
    rhs = node.rhs
    if isinstance(rhs, ListRef):
        return f"${rhs.name}"
    if isinstance(rhs, InSet):
        kind = node.lhs.type.kind
        parts: list[str] = []
        for item in rhs.items:
            if kind is Kind.STRING:
                assert isinstance(item, str)
                parts.append(quote(item))
            elif kind is Kind.INT:
                assert isinstance(item, tuple)
                lo, hi = item
                parts.append(str(lo) if lo == hi else f"{lo}..{hi}")
            else:
                parts.append(_ip_item(item))
        return "{" + " ".join(parts) + "}"
    if isinstance(rhs, Pattern):
        return raw(rhs.text) if node.op == "matches" else quote(rhs.text)
    return _literal(rhs)


def _literal(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return quote(value)
    return str(value)


def unparse(node: Node) -> str:
    """Print a tree as an expression that parses back to the same tree."""
    if isinstance(node, FieldRef):
        return node.name
    if isinstance(node, Literal):
        return _literal(node.value)
    if isinstance(node, Index):
        key = node.key
        key_text = (
            "*" if isinstance(key, Star) else quote(key) if isinstance(key, str) else str(key)
        )
        return f"{unparse(node.base)}[{key_text}]"
    if isinstance(node, Call):
        return f"{node.name}({', '.join(_arg(a) for a in node.args)})"
    if isinstance(node, Compare):
        return f"{unparse(node.lhs)} {_OP_TEXT.get(node.op, node.op)} {_rhs(node)}"
    if isinstance(node, IsTrue):
        return unparse(node.operand)
    if isinstance(node, Not):
        return f"not {_group(node.operand)}"
    if isinstance(node, Logical):
        return f"{_group(node.left)} {node.op} {_group(node.right)}"
    raise TypeError(node)


def _group(node: Node) -> str:
    return f"({unparse(node)})" if isinstance(node, Logical) else unparse(node)


def _arg(node: Node) -> str:
    return unparse(node)
