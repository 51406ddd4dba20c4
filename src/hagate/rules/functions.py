"""Functions of the Rules language: signatures for type checking and their implementations.

Every implementation takes already-evaluated arguments, where `None` is a missing value (an
absent map key, an index out of range). Unless a function says otherwise, a missing argument
gives a missing result, and a comparison on a missing value is false, as in Cloudflare.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes

from hagate.rules.types import (
    ARRAY_BOOL,
    ARRAY_STRING,
    BOOL,
    INT,
    IP,
    STRING,
    Kind,
    Type,
    array,
)

_UPPER_TO_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}
_LOWER_TO_UPPER = {c: c - 32 for c in range(ord("a"), ord("z") + 1)}


def ascii_lower(s: str) -> str:
    """Lower-case ASCII letters only; other bytes stay as they are (Cloudflare's lower())."""
    return s.lower() if s.isascii() else s.translate(_UPPER_TO_LOWER)


def ascii_upper(s: str) -> str:
    return s.upper() if s.isascii() else s.translate(_LOWER_TO_UPPER)


@dataclass(frozen=True)
class Param:
    kinds: frozenset[Kind]  # accepted kinds; ARRAY/MAP accept any element type
    literal: bool = False  # must be a literal (checked at load time)
    optional: bool = False
    element: Type | None = None  # for ARRAY: required element type

    def accepts(self, t: Type) -> bool:
        if t.kind not in self.kinds:
            return False
        return self.element is None or t.kind is not Kind.ARRAY or t.inner == self.element

    def describe(self) -> str:
        if self.element is not None:
            return str(array(self.element))
        return " or ".join(k.value for k in sorted(self.kinds, key=lambda k: k.value))


def _p(
    *kinds: Kind, literal: bool = False, optional: bool = False, element: Type | None = None
) -> Param:
    return Param(frozenset(kinds), literal, optional, element)


@dataclass(frozen=True)
class Function:
    name: str
    params: tuple[Param, ...]
    returns: Callable[[Sequence[Type]], Type]
    impl: Callable[..., Any]
    variadic: Param | None = None
    min_variadic: int = 0
    propagate_missing: bool = True  # a missing argument gives a missing result
    check: Callable[[Sequence[object | None]], str | None] | None = None  # literal checks

    def __call__(self, *args: Any) -> Any:
        if self.propagate_missing and None in args:
            return None
        return self.impl(*args)


def _fixed(t: Type) -> Callable[[Sequence[Type]], Type]:
    return lambda _: t


# -- implementations ----------------------------------------------------------------------


def _any(values: Sequence[bool] | None) -> bool:
    return values is not None and any(values)


def _all(values: Sequence[bool] | None) -> bool:
    return values is not None and all(values)


def _len(value: Any) -> int:
    return len(value)


def _concat(*parts: Any) -> Any:
    if parts and isinstance(parts[0], str):
        return "".join(parts)
    out: list[Any] = []
    for p in parts:
        out.extend(p)
    return out


def _url_decode(value: str, options: str = "") -> str:
    def once(s: str) -> str:
        raw = s.replace("+", " ")
        if "u" in options:
            raw = _unicode_percent(raw)
        return unquote_to_bytes(raw.encode("latin-1")).decode("latin-1")

    result = once(value)
    if "r" in options:
        for _ in range(8):  # bounded: each round only shrinks the text
            nxt = once(result)
            if nxt == result:
                break
            result = nxt
    return result


def _unicode_percent(s: str) -> str:
    out = []
    i = 0
    while i < len(s):
        if s[i] == "%" and s[i + 1 : i + 2] in ("u", "U") and i + 6 <= len(s):
            try:
                code = int(s[i + 2 : i + 6], 16)
            except ValueError:
                out.append(s[i])
                i += 1
                continue
            out.append(chr(code).encode("utf-8", errors="replace").decode("latin-1"))
            i += 6
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def _to_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _substring(value: str, start: int, end: int | None = None) -> str:
    return value[start:end] if end is not None else value[start:]


def _split(value: str, sep: str, limit: int) -> list[str]:
    return value.split(sep, limit - 1)


def _join(items: Sequence[str], sep: str) -> str:
    return sep.join(items)


def _cidr(ip: Any, v4_bits: int, v6_bits: int) -> Any:
    bits = v4_bits if ip.version == 4 else v6_bits
    limit = 32 if ip.version == 4 else 128
    if not 1 <= bits <= limit:
        return None
    return ipaddress.ip_network(f"{ip}/{bits}", strict=False).network_address


def _cidr6(ip: Any, v6_bits: int) -> Any:
    return ip if ip.version == 4 else _cidr(ip, 32, v6_bits)


def _remove_bytes(value: str, remove: str) -> str:
    return value.translate({ord(c): None for c in remove})


def _decode_base64(value: str) -> str | None:
    try:
        return base64.b64decode(value.encode("latin-1"), validate=False).decode("latin-1")
    except (binascii.Error, ValueError):
        return None


def _lookup_json(value: str, *keys: Any) -> Any:
    try:
        doc = json.loads(value.encode("latin-1"))
    except ValueError:
        return None
    for key in keys:
        if isinstance(key, int) and isinstance(doc, list):
            if not 0 <= key < len(doc):
                return None
            doc = doc[key]
        elif isinstance(key, str) and isinstance(doc, dict):
            name = key.encode("latin-1").decode("utf-8", errors="replace")
            if name not in doc:
                return None
            doc = doc[name]
        else:
            return None
    return doc


def _lookup_json_string(value: str, *keys: Any) -> str | None:
    found = _lookup_json(value, *keys)
    return found.encode("utf-8").decode("latin-1") if isinstance(found, str) else None


def _lookup_json_integer(value: str, *keys: Any) -> int | None:
    found = _lookup_json(value, *keys)
    if isinstance(found, int) and not isinstance(found, bool):
        return found
    return None


def _has_key(mapping: dict[str, Any], key: str) -> bool:
    return key in mapping


def _has_value(container: Any, value: Any) -> bool:
    if isinstance(container, dict):
        return any(value == v or (isinstance(v, list) and value in v) for v in container.values())
    return value in container


# -- literal checks -----------------------------------------------------------------------


def _check_split(args: Sequence[object | None]) -> str | None:
    sep, limit = args[1], args[2]
    if not isinstance(sep, str) or not sep:
        return "split()'s separator must be a non-empty literal string"
    if not isinstance(limit, int) or not 1 <= limit <= 128:
        return "split()'s limit must be a literal integer from 1 to 128"
    return None


def _check_url_decode(args: Sequence[object | None]) -> str | None:
    if len(args) > 1 and (not isinstance(args[1], str) or set(args[1]) - {"r", "u"}):
        return 'url_decode()\'s options must be a literal made of "r" and "u"'
    return None


def _check_cidr(args: Sequence[object | None]) -> str | None:
    for value, limit, label in ((args[1], 32, "IPv4"), (args[-1], 128, "IPv6")):
        if isinstance(value, int) and not 1 <= value <= limit:
            return f"{label} network bits must be between 1 and {limit}"
    return None


S, N, B, A, M, P = Kind.STRING, Kind.INT, Kind.BOOL, Kind.ARRAY, Kind.MAP, Kind.IP

FUNCTIONS: dict[str, Function] = {
    f.name: f
    for f in [
        Function("any", (_p(A, element=BOOL),), _fixed(BOOL), _any, propagate_missing=False),
        Function("all", (_p(A, element=BOOL),), _fixed(BOOL), _all, propagate_missing=False),
        Function("lower", (_p(S),), _fixed(STRING), ascii_lower),
        Function("upper", (_p(S),), _fixed(STRING), ascii_upper),
        Function("starts_with", (_p(S), _p(S)), _fixed(BOOL), str.startswith),
        Function("ends_with", (_p(S), _p(S)), _fixed(BOOL), str.endswith),
        Function("len", (_p(S, A, M),), _fixed(INT), _len),
        Function(
            "concat",
            (),
            lambda ts: ts[0] if ts else STRING,
            _concat,
            variadic=_p(S, A),
            min_variadic=1,
        ),
        Function(
            "url_decode",
            (_p(S), _p(S, literal=True, optional=True)),
            _fixed(STRING),
            _url_decode,
            check=_check_url_decode,
        ),
        Function("to_string", (_p(N, B, P),), _fixed(STRING), _to_string),
        Function("substring", (_p(S), _p(N), _p(N, optional=True)), _fixed(STRING), _substring),
        Function(
            "split",
            (_p(S), _p(S, literal=True), _p(N, literal=True)),
            _fixed(ARRAY_STRING),
            _split,
            check=_check_split,
        ),
        Function("join", (_p(A, element=STRING), _p(S)), _fixed(STRING), _join),
        Function("cidr", (_p(P), _p(N), _p(N)), _fixed(IP), _cidr, check=_check_cidr),
        Function("cidr6", (_p(P), _p(N)), _fixed(IP), _cidr6, check=_check_cidr),
        Function("remove_bytes", (_p(S), _p(S)), _fixed(STRING), _remove_bytes),
        Function("decode_base64", (_p(S),), _fixed(STRING), _decode_base64),
        Function(
            "lookup_json_string",
            (_p(S),),
            _fixed(STRING),
            _lookup_json_string,
            variadic=_p(S, N),
            min_variadic=1,
        ),
        Function(
            "lookup_json_integer",
            (_p(S),),
            _fixed(INT),
            _lookup_json_integer,
            variadic=_p(S, N),
            min_variadic=1,
        ),
        Function("has_key", (_p(M), _p(S)), _fixed(BOOL), _has_key),
        Function("has_value", (_p(A, M), _p(S, N, B, P)), _fixed(BOOL), _has_value),
    ]
}

ARRAY_BOOL_TYPE = ARRAY_BOOL
