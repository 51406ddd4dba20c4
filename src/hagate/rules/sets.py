"""Fast membership for `in {...}` and `$lists`: integer ranges and IP ranges by bisection."""

from __future__ import annotations

import bisect
import ipaddress
from collections.abc import Iterable

from hagate.rules.ast import IPAddress, IPItem, IPRange


def _merge(intervals: list[tuple[int, int]]) -> tuple[list[int], list[int]]:
    intervals.sort()
    starts: list[int] = []
    ends: list[int] = []
    for lo, hi in intervals:
        if starts and lo <= ends[-1] + 1:
            ends[-1] = max(ends[-1], hi)
        else:
            starts.append(lo)
            ends.append(hi)
    return starts, ends


class IntSet:
    """Integers and inclusive ranges."""

    __slots__ = ("ends", "starts")

    def __init__(self, items: Iterable[tuple[int, int]]) -> None:
        self.starts, self.ends = _merge(list(items))

    def __contains__(self, value: object) -> bool:
        if not isinstance(value, int):
            return False
        i = bisect.bisect_right(self.starts, value) - 1
        return i >= 0 and value <= self.ends[i]


class IPSet:
    """Addresses, CIDR networks and explicit ranges, IPv4 and IPv6 kept apart."""

    __slots__ = ("v4", "v6")

    def __init__(self, items: Iterable[IPItem]) -> None:
        v4: list[tuple[int, int]] = []
        v6: list[tuple[int, int]] = []
        for item in items:
            if isinstance(item, IPRange):
                lo, hi, version = int(item.first), int(item.last), item.first.version
            elif isinstance(item, ipaddress.IPv4Network | ipaddress.IPv6Network):
                lo, hi = int(item.network_address), int(item.broadcast_address)
                version = item.version
            else:
                lo = hi = int(item)
                version = item.version
            (v4 if version == 4 else v6).append((lo, hi))
        self.v4 = _merge(v4)
        self.v6 = _merge(v6)

    def __contains__(self, value: object) -> bool:
        if not isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
            return False
        starts, ends = self.v4 if value.version == 4 else self.v6
        n = int(value)
        i = bisect.bisect_right(starts, n) - 1
        return i >= 0 and n <= ends[i]


def ip_compare_ok(a: IPAddress, b: IPAddress) -> bool:
    return a.version == b.version
