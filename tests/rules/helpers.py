"""Evaluate expressions in tests through both the compiler and the reference interpreter."""

from __future__ import annotations

from typing import Any

from hagate.rules.compiler import compile_expression
from hagate.rules.interpreter import interpret
from hagate.rules.parser import ListDef, parse_expression
from hagate.rules.request import fields_from_json


def evaluate(
    expression: str, values: dict[str, Any] | None = None, lists: dict[str, ListDef] | None = None
) -> bool:
    """Evaluate with JSON-style field values; compiled and interpreted must agree."""
    fields = fields_from_json(values or {})
    tree = parse_expression(expression, lists)
    compiled = compile_expression(tree, lists)(fields)
    reference = interpret(tree, fields, lists)
    assert compiled == reference, f"compiler says {compiled}, interpreter {reference}"
    return compiled
