"""Text for `hagate rules explain`: each rule with its result, then the decision."""

from __future__ import annotations

from hagate.rules.ruleset import Decision, Outcome, RateLimitRule, Rule

_MARK = {"match": "MATCH", "no match": "-", "counted": "COUNTED"}


def _label(rule: Rule | RateLimitRule) -> str:
    return f'"{rule.description}"' if rule.description else f"#{rule.number}"


def render(outcomes: list[Outcome], decision: Decision, request_line: str) -> str:
    lines = [request_line, ""]
    rules = [o for o in outcomes if isinstance(o.rule, Rule)]
    limits = [o for o in outcomes if isinstance(o.rule, RateLimitRule)]
    lines.append("Custom rules:" if rules else "Custom rules: none")
    for o in rules:
        assert isinstance(o.rule, Rule)
        action = o.rule.action + (" +ratelimit" if o.rule.phases else "")
        lines.append(
            f"  {o.rule.number:>2}. {_MARK.get(o.result, o.result):<11} "
            f"{action:<6} {_label(o.rule)}"
        )
        lines.append(f"      {o.rule.expression}")
    if limits:
        lines.append("Rate limiting rules:")
        for o in limits:
            assert isinstance(o.rule, RateLimitRule)
            lines.append(
                f"  {o.rule.number:>2}. {_MARK.get(o.result, o.result):<11} "
                f"{o.rule.action:<6} {_label(o.rule)} "
                f"({o.rule.limiter.requests_per_period} per {o.rule.limiter.period}s "
                f"by {', '.join(o.rule.characteristics)})"
            )
    lines.append("")
    if decision.blocked:
        assert decision.rule is not None
        lines.append(
            f"Decision: BLOCK ({decision.status}) by rule {decision.rule.number} "
            f"{_label(decision.rule)}"
        )
    elif decision.skipped:
        assert decision.rule is not None
        lines.append(f"Decision: ALLOW (skip rule {decision.rule.number} {_label(decision.rule)})")
    else:
        lines.append("Decision: ALLOW (no rule blocked it)")
    if decision.logged:
        lines.append("Logged by: " + ", ".join(_label(r) for r in decision.logged))
    return "\n".join(lines)
