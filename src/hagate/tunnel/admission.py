"""Relay-level rules: the Rules language on what a relay knows of a client, its address."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from pathlib import Path

from hagate.errors import HagateError
from hagate.geoip import GeoIP
from hagate.rules.ast import Call, Compare, FieldRef, Index, IsTrue, Logical, Node, Not
from hagate.rules.ruleset import ruleset_from_file

RELAY_FIELDS = {"ip.src", "ip.src.asnum", "ip.src.country", "ip.src.continent"}


def _fields(node: Node) -> set[str]:
    if isinstance(node, FieldRef):
        return {node.canonical or node.name}
    if isinstance(node, Compare | IsTrue | Not):
        inner = node.lhs if isinstance(node, Compare) else node.operand
        return _fields(inner)
    if isinstance(node, Logical):
        return _fields(node.left) | _fields(node.right)
    if isinstance(node, Call):
        return set().union(*(_fields(a) for a in node.args))
    if isinstance(node, Index):
        return _fields(node.base)
    return set()


def load_admission(path: Path, asn_db: str | None, country_db: str | None) -> Callable[[str], bool]:
    """A predicate: may a connection from this address go on? (block rules drop it)"""
    ruleset = ruleset_from_file(path)
    for rule in ruleset.rules:
        extra = _fields(rule.tree) - RELAY_FIELDS
        if extra:
            raise HagateError(
                f"{path}: rule {rule.number} uses {', '.join(sorted(extra))}; a relay "
                f"sees only {', '.join(sorted(RELAY_FIELDS))}"
            )
    geoip = GeoIP(asn_db, country_db)

    def admit(ip: str) -> bool:
        address = ipaddress.ip_address(ip)
        loc = geoip.lookup(address)
        values = {
            "ip.src": address,
            "ip.src.asnum": loc.asn,
            "ip.src.country": loc.country,
            "ip.src.continent": loc.continent,
        }
        return not ruleset.evaluate(values).blocked

    return admit
