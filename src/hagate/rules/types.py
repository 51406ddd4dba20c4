"""The types of the Rules language: Bool, Int, String (bytes), IP, Array<T>, Map<T>.

Strings are byte strings, as in Cloudflare. At run time they are Python `str` holding one code
point per byte (Latin-1), so `len`, `substring` and comparisons work on bytes exactly, and
header values from the wire need no decoding at all.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Kind(enum.Enum):
    BOOL = "Boolean"
    INT = "Integer"
    STRING = "String"
    IP = "IP address"
    ARRAY = "Array"
    MAP = "Map"


@dataclass(frozen=True)
class Type:
    kind: Kind
    inner: Type | None = None

    def __str__(self) -> str:
        if self.inner is not None:
            return f"{self.kind.value}<{self.inner}>"
        return self.kind.value

    @property
    def is_container(self) -> bool:
        return self.kind in (Kind.ARRAY, Kind.MAP)

    def element(self) -> Type:
        assert self.inner is not None, self
        return self.inner


BOOL = Type(Kind.BOOL)
INT = Type(Kind.INT)
STRING = Type(Kind.STRING)
IP = Type(Kind.IP)


def array(inner: Type) -> Type:
    return Type(Kind.ARRAY, inner)


def map_of(inner: Type) -> Type:
    return Type(Kind.MAP, inner)


ARRAY_BOOL = array(BOOL)
ARRAY_STRING = array(STRING)
MAP_ARRAY_STRING = map_of(ARRAY_STRING)


def to_bytes_str(text: str) -> str:
    """User text to the language's byte-string form: UTF-8 bytes as Latin-1 code points."""
    return text.encode("utf-8").decode("latin-1")


def from_bytes_str(value: str) -> str:
    """The byte-string form back to readable text (invalid UTF-8 shown with replacements)."""
    return value.encode("latin-1").decode("utf-8", errors="replace")
