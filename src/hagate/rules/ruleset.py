"""Rule sets: custom rules, then the rate limiting phase, evaluated on every request.

Order of evaluation, as in Cloudflare:
  1. Custom rules in order. `block` ends evaluation. `skip` ends the custom rules and lets the
     request through; with `phases: [http_ratelimit]` it also skips rate limiting. `log`
     records the match and goes on. Disabled rules are passed over.
  2. Rate limiting rules, unless skipped: matching requests are counted; over the rate, the
     rule blocks (429 by default) or logs.
  3. Nothing blocked: the request goes through.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hagate.config import Config, ConfigError, ConfigSource, Path_, parse_yaml
from hagate.errors import HagateError
from hagate.rules import fields
from hagate.rules.ast import InSet, IPItem, IPRange, Node
from hagate.rules.compiler import Fields, Matcher, compile_expression, field_names
from hagate.rules.errors import RuleError
from hagate.rules.parser import ListDef, parse_expression
from hagate.rules.ratelimit import RateLimiter
from hagate.rules.types import INT, IP, STRING, Kind, to_bytes_str

ACTIONS = ("block", "skip", "log")
RATE_LIMIT_PHASE = "http_ratelimit"
CUSTOM_PHASE = "http_request_firewall_custom"
PHASES = (RATE_LIMIT_PHASE,)
_RULE_KEYS = {
    "description",
    "expression",
    "action",
    "enabled",
    "status",
    "response",
    "phases",
    "ref",
}
_RATE_KEYS = {
    "description",
    "expression",
    "action",
    "enabled",
    "status",
    "response",
    "characteristics",
    "period",
    "requests_per_period",
    "mitigation_timeout",
    "counting_expression",
}


@dataclass(frozen=True)
class Rule:
    number: int  # 1-based position in the list
    description: str
    expression: str
    action: str
    match: Matcher = field(repr=False, compare=False)
    tree: Node = field(repr=False, compare=False)
    enabled: bool = True
    status: int = 403
    response: str | None = None
    phases: frozenset[str] = frozenset()
    fields: frozenset[str] | None = None  # the fields the expression reads; None: unknown


@dataclass(frozen=True)
class RateLimitRule:
    number: int
    description: str
    expression: str
    match: Matcher = field(repr=False, compare=False)
    counts: Matcher = field(repr=False, compare=False)
    characteristics: tuple[str, ...]
    limiter: RateLimiter = field(repr=False, compare=False)
    action: str = "block"
    enabled: bool = True
    status: int = 429
    response: str | None = None
    fields: frozenset[str] | None = None  # read by the expressions and characteristics

    def key(self, values: Fields) -> tuple[Any, ...]:
        return tuple(values.get(name, fields.FIELDS[name].default) for name in self.characteristics)


@dataclass(frozen=True)
class Decision:
    """What happens to a request, and why."""

    blocked: bool
    status: int = 0
    rule: Rule | RateLimitRule | None = None  # the rule that blocked or skipped
    logged: tuple[Rule | RateLimitRule, ...] = ()
    skipped: bool = False

    @property
    def action(self) -> str:
        if self.blocked:
            return "block"
        return "skip" if self.skipped else "allow"


ALLOW = Decision(blocked=False)
CERTIFICATE_FIELDS = "cf.tls_client_auth."


@dataclass(frozen=True)
class Outcome:
    """One rule's result in an explanation."""

    rule: Rule | RateLimitRule
    result: str  # match, no match, disabled, not reached, skipped, over limit, under limit


class RuleSet:
    def __init__(
        self,
        rules: Sequence[Rule] = (),
        rate_limits: Sequence[RateLimitRule] = (),
        lists: Mapping[str, ListDef] | None = None,
    ) -> None:
        self.rules = tuple(rules)
        self.rate_limits = tuple(rate_limits)
        self.lists = dict(lists or {})
        self._active = tuple(r for r in self.rules if r.enabled)
        self._active_limits = tuple(r for r in self.rate_limits if r.enabled)
        # The fields any active rule reads (None when a rule does not say): the gateway need
        # compute no others for a request.
        used: list[frozenset[str] | None] = [r.fields for r in self._active]
        used += [r.fields for r in self._active_limits]
        self.fields_used: frozenset[str] | None = frozenset()
        for u in used:
            self.fields_used = (
                None if u is None or self.fields_used is None else self.fields_used | u
            )
        # Rules that read the client certificate's fields only (the default rule set): a
        # request's other fields need not be made at all.
        self.reads_certificate_only = self.fields_used is not None and all(
            name.startswith(CERTIFICATE_FIELDS) for name in self.fields_used
        )

    def evaluate(self, values: Fields, now: float | None = None) -> Decision:
        """Decide one request. Counts it for rate limiting."""
        logged: list[Rule | RateLimitRule] = []
        skip_limits = False
        for rule in self._active:
            if not rule.match(values):
                continue
            if rule.action == "block":
                return Decision(True, rule.status, rule, tuple(logged))
            if rule.action == "skip":
                skip_limits = RATE_LIMIT_PHASE in rule.phases
                if skip_limits or not self._active_limits:
                    return Decision(False, 0, rule, tuple(logged), skipped=True)
                decision = self._rate_limit(values, logged, now)
                if decision.blocked:
                    return decision
                return Decision(False, 0, rule, decision.logged, skipped=True)
            logged.append(rule)
        return self._rate_limit(values, logged, now)

    def _rate_limit(
        self, values: Fields, logged: list[Rule | RateLimitRule], now: float | None
    ) -> Decision:
        for rl in self._active_limits:
            if not rl.match(values) or not rl.counts(values):
                continue
            if rl.limiter.hit(rl.key(values), now):
                if rl.action == "block":
                    return Decision(True, rl.status, rl, tuple(logged))
                logged.append(rl)
        return Decision(False, 0, None, tuple(logged)) if logged else ALLOW

    def explain(self, values: Fields) -> tuple[list[Outcome], Decision]:
        """Every rule's result for a request, without counting it for rate limits."""
        outcomes: list[Outcome] = []
        decided: Decision | None = None
        skip_limits = False
        logged: list[Rule | RateLimitRule] = []
        for rule in self.rules:
            if decided is not None:
                outcomes.append(Outcome(rule, "not reached"))
                continue
            if not rule.enabled:
                outcomes.append(Outcome(rule, "disabled"))
                continue
            matched = rule.match(values)
            outcomes.append(Outcome(rule, "match" if matched else "no match"))
            if not matched:
                continue
            if rule.action == "block":
                decided = Decision(True, rule.status, rule, tuple(logged))
            elif rule.action == "skip":
                decided = Decision(False, 0, rule, tuple(logged), skipped=True)
                skip_limits = RATE_LIMIT_PHASE in rule.phases
            else:
                logged.append(rule)
        for rl in self.rate_limits:
            if (decided is not None and decided.blocked) or skip_limits:
                outcomes.append(Outcome(rl, "skipped" if skip_limits else "not reached"))
            elif not rl.enabled:
                outcomes.append(Outcome(rl, "disabled"))
            else:
                outcomes.append(Outcome(rl, "counted" if rl.match(values) else "no match"))
        return outcomes, decided or Decision(False, 0, None, tuple(logged))


# -- loading ------------------------------------------------------------------------------


class RuleConfigError(HagateError):
    """One or more rule errors; `problems` holds each as text."""

    exit_code = 2

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


def _list_type(items: list[Any]) -> tuple[Any, list[Any]] | None:
    if all(isinstance(i, int) and not isinstance(i, bool) for i in items):
        return INT, [(i, i) for i in items]
    if not all(isinstance(i, str) for i in items):
        return None
    parsed: list[IPItem] = []
    for item in items:
        try:
            if ".." in item:
                a, _, b = item.partition("..")
                parsed.append(IPRange(ipaddress.ip_address(a), ipaddress.ip_address(b)))
            elif "/" in item:
                parsed.append(ipaddress.ip_network(item, strict=False))
            else:
                parsed.append(ipaddress.ip_address(item))
        except ValueError:
            return STRING, [to_bytes_str(i) for i in items]
    return IP, parsed


def load_lists(raw: Mapping[str, list[Any]], src: ConfigSource) -> dict[str, ListDef]:
    out: dict[str, ListDef] = {}
    for name, items in raw.items():
        if not items:
            raise src.error(("lists", name), "the list is empty")
        typed = _list_type(items)
        if typed is None:
            raise src.error(
                ("lists", name), "a list holds only numbers (ASNs), only IPs/ranges, or only text"
            )
        t, values = typed
        out[name] = ListDef(name, t, InSet(tuple(values)))
    return out


class _Loader:
    def __init__(self, src: ConfigSource, lists: Mapping[str, ListDef]) -> None:
        self.src = src
        self.lists = lists
        self.problems: list[str] = []

    def problem(self, path: Path_, message: str) -> None:
        self.problems.append(str(self.src.error(path, message)))

    def expression(self, path: Path_, text: Any, label: str) -> tuple[Node, Matcher] | None:
        if not isinstance(text, str) or not text.strip():
            self.problem(path, "expected an expression in the Rules language")
            return None
        try:
            tree = parse_expression(text.strip(), self.lists)
        except RuleError as e:
            line = self.src.line(path)
            where = f"{self.src.name}:{line}" if line else self.src.name
            self.problems.append(e.render(f"{where}: {label}"))
            return None
        return tree, compile_expression(tree, self.lists)

    def common(self, path: Path_, raw: Mapping[str, Any], keys: set[str]) -> dict[str, Any] | None:
        for key in raw:
            if key not in keys:
                self.problem((*path, key), f"unknown key (known: {', '.join(sorted(keys))})")
                return None
        description = raw.get("description", "")
        if not isinstance(description, str):
            hint = (
                " (YAML reads yes/no/on/off as booleans: put it in quotes)"
                if isinstance(description, bool)
                else ""
            )
            self.problem((*path, "description"), f"expected text{hint}")
            return None
        enabled = raw.get("enabled", True)
        if not isinstance(enabled, bool):
            self.problem((*path, "enabled"), "expected true or false")
            return None
        response = raw.get("response")
        if response is not None and not isinstance(response, str):
            self.problem((*path, "response"), "expected text")
            return None
        return {"description": description, "enabled": enabled, "response": response}

    def status(self, path: Path_, value: Any, default: int) -> int | None:
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or not 400 <= value <= 599:
            self.problem(path, "expected an HTTP error status from 400 to 599")
            return None
        return value

    def rule(self, i: int, raw: Mapping[str, Any]) -> Rule | None:
        path: Path_ = ("rules", i)
        base = self.common(path, raw, _RULE_KEYS)
        if base is None:
            return None
        action = raw.get("action")
        if action not in ACTIONS:
            self.problem((*path, "action"), f"expected one of: {', '.join(ACTIONS)}")
            return None
        phases = raw.get("phases", [])
        if phases and action != "skip":
            self.problem((*path, "phases"), "only a skip rule can skip phases")
            return None
        if not isinstance(phases, list) or any(p not in PHASES for p in phases):
            self.problem((*path, "phases"), f"expected a list of: {', '.join(PHASES)}")
            return None
        status = self.status((*path, "status"), raw.get("status"), 403)
        label = f"rule {i + 1}" + (f" ({base['description']})" if base["description"] else "")
        compiled = self.expression((*path, "expression"), raw.get("expression"), label)
        if compiled is None or status is None:
            return None
        tree, match = compiled
        return Rule(
            i + 1,
            base["description"],
            raw["expression"].strip(),
            action,
            match,
            tree,
            base["enabled"],
            status,
            base["response"],
            frozenset(phases),
            field_names(tree),
        )

    def rate_limit(self, i: int, raw: Mapping[str, Any]) -> RateLimitRule | None:
        path: Path_ = ("rate_limits", i)
        base = self.common(path, raw, _RATE_KEYS)
        if base is None:
            return None
        numbers: dict[str, int] = {}
        for key, minimum, default in (
            ("period", 1, None),
            ("requests_per_period", 1, None),
            ("mitigation_timeout", 0, 0),
        ):
            value = raw.get(key, default)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                self.problem((*path, key), f"expected a whole number of at least {minimum}")
                return None
            numbers[key] = value
        chars = raw.get("characteristics", ["ip.src"])
        if not isinstance(chars, list) or not all(isinstance(c, str) for c in chars):
            self.problem((*path, "characteristics"), "expected a list of field names")
            return None
        if "ip.src" not in chars:
            self.problem((*path, "characteristics"), "must include ip.src")
            return None
        canonical: list[str] = []
        for c in chars:
            fdef = fields.lookup(c)
            if fdef is None or fdef.type.kind in (Kind.ARRAY, Kind.MAP):
                self.problem((*path, "characteristics"), f"{c!r} is not a field to count by")
                return None
            canonical.append(fdef.name)
        action = raw.get("action", "block")
        if action not in ("block", "log"):
            self.problem((*path, "action"), "expected block or log")
            return None
        status = self.status((*path, "status"), raw.get("status"), 429)
        label = f"rate limit {i + 1}" + (f" ({base['description']})" if base["description"] else "")
        compiled = self.expression((*path, "expression"), raw.get("expression"), label)
        counting = compiled
        if "counting_expression" in raw:
            counting = self.expression(
                (*path, "counting_expression"), raw.get("counting_expression"), label
            )
        if compiled is None or counting is None or status is None:
            return None
        limiter = RateLimiter(
            numbers["period"], numbers["requests_per_period"], numbers["mitigation_timeout"]
        )
        return RateLimitRule(
            i + 1,
            base["description"],
            raw["expression"].strip(),
            compiled[1],
            counting[1],
            tuple(canonical),
            limiter,
            action,
            base["enabled"],
            status,
            base["response"],
            field_names(compiled[0]) | field_names(counting[0]) | frozenset(canonical),
        )


def build_ruleset(
    rules: Sequence[Mapping[str, Any]],
    rate_limits: Sequence[Mapping[str, Any]],
    lists: Mapping[str, list[Any]],
    src: ConfigSource,
) -> RuleSet:
    """Compile rules from config data; every problem is collected, then raised together."""
    lists_defs = load_lists(lists, src)
    loader = _Loader(src, lists_defs)
    compiled = [loader.rule(i, r) for i, r in enumerate(rules)]
    limits = [loader.rate_limit(i, r) for i, r in enumerate(rate_limits)]
    if loader.problems:
        raise RuleConfigError(loader.problems)
    return RuleSet([r for r in compiled if r], [r for r in limits if r], lists_defs)


def ruleset_from_config(cfg: Config) -> RuleSet:
    return build_ruleset(cfg.rules, cfg.rate_limits, cfg.lists, cfg.source)


def ruleset_from_file(
    path: Path, lists: Mapping[str, list[Any]] | None = None, lists_src: ConfigSource | None = None
) -> RuleSet:
    """A YAML list of rules, or a .txt file with one expression per line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise HagateError(f"cannot read {path}: {e}") from e
    lists_src = lists_src or ConfigSource(str(path))
    if path.suffix == ".txt":
        defs = load_lists(lists or {}, lists_src)
        problems: list[str] = []
        out: list[Rule] = []
        for n, line in enumerate(text.splitlines(), start=1):
            expr = line.strip()
            if not expr or expr.startswith("#"):
                continue
            try:
                tree = parse_expression(expr, defs)
            except RuleError as e:
                problems.append(e.render(f"{path}:{n}"))
                continue
            out.append(Rule(n, f"line {n}", expr, "log", compile_expression(tree, defs), tree))
        if problems:
            raise RuleConfigError(problems)
        return RuleSet(out, (), defs)
    data, src = parse_yaml(text, str(path))
    if isinstance(data, dict):  # a config-like file with rules: (and rate_limits:)
        rules, rate_limits, source = data.get("rules") or [], data.get("rate_limits") or [], src
    else:  # a bare list: its line numbers are keyed (i, ...); rebase them under "rules"
        rules, rate_limits = data, []
        source = ConfigSource(src.name, {("rules", *k): v for k, v in src.lines.items()})
    if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
        raise ConfigError(
            f"{path}: expected a YAML list of rules (description, expression, action)"
        )
    return build_ruleset(rules, rate_limits, lists or {}, source)
