"""The Cloudflare Rules language: parse, type-check, compile to closures, evaluate rule sets."""

from __future__ import annotations

from hagate.rules.compiler import compile_expression
from hagate.rules.errors import RuleError
from hagate.rules.parser import parse_expression

__all__ = ["RuleError", "compile_expression", "parse_expression"]
