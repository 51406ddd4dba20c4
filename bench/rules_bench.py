"""Rule evaluation speed: hagate's compiled closures against a direct tree-walking evaluator.

Both evaluate the same parsed rules on the same requests in one run. Measured: the default
rule, the iOS companion-app rule, and a 100-rule set where no rule matches (every rule runs).
Loops are bounded: a fixed number of evaluations, repeated, best run kept.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from bench.report import machine, write_section
from hagate.config import ConfigSource
from hagate.rules.compiler import compile_expression
from hagate.rules.interpreter import Interpreter
from hagate.rules.parser import parse_expression
from hagate.rules.request import request_fields
from hagate.rules.ruleset import build_ruleset

DEFAULT = "(not cf.tls_client_auth.cert_verified)"
IOS = (
    '(http.user_agent contains "(io.robbie.HomeAssistant; build:" and '
    'http.user_agent contains "iOS" and ip.geoip.asnum in {123 456})'
)
UA_IOS = "Home Assistant/2025.4.1 (io.robbie.HomeAssistant; build:2025.1234; iOS 17.5.1)"


def hundred_rules() -> list[dict[str, Any]]:
    shapes = [
        'http.request.uri.path contains "/wp-{i}"',
        'http.user_agent matches r"(?i)scanner-{i}/[0-9]+"',
        "ip.src in {{10.{i}.0.0/16 2001:db8:{i}::/48}}",
        "ip.src.asnum in {{{i}00 {i}01 {i}02..{i}09}}",
        'http.request.headers["x-probe-{i}"][0] eq "1"',
        'lower(http.host) eq "host{i}.example.com"',
        'starts_with(http.request.uri.path, "/private-{i}/") and not ssl',
        'any(http.request.headers.names[*] eq "X-Evil-{i}")',
        'http.request.uri.path wildcard "/cgi-bin/{i}*"',
        'http.request.method eq "TRACE" and ip.src.country eq "Z{i}"',
    ]
    return [
        {
            "description": f"rule {i}",
            "expression": shapes[i % len(shapes)].format(i=i),
            "action": "block",
        }
        for i in range(100)
    ]


def timed(fn: Callable[[], Any], n: int, repeats: int = 7) -> float:
    """Best-of-`repeats` nanoseconds per call, over `n` calls each."""
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter_ns()
        for _ in range(n):
            fn()
        runs.append((time.perf_counter_ns() - t0) / n)
    return min(runs)


def measure(label: str, expression: str, values: dict[str, Any]) -> tuple[str, float, float]:
    tree = parse_expression(expression)
    compiled = compile_expression(tree)
    interp = Interpreter()
    assert compiled(values) == interp.run(tree, values)
    return (
        label,
        timed(lambda: compiled(values), 200_000),
        timed(lambda: interp.run(tree, values), 20_000),
    )


def main() -> None:
    # No certificate: the default rule matches; the iOS rule matches too (ASN 456).
    values = request_fields(
        client_ip="203.0.113.7",
        host="ha.example.com",
        target="/api/states?x=1",
        headers=[("Host", "ha.example.com"), ("User-Agent", UA_IOS), ("Accept", "*/*")],
        asn=456,
        country="DE",
        continent="EU",
    )
    rows = [
        measure(label, expr, values)
        for label, expr in (("default rule", DEFAULT), ("iOS companion-app rule", IOS))
    ]
    ruleset = build_ruleset(hundred_rules(), [], {}, ConfigSource("bench"))
    assert not ruleset.evaluate(values).blocked  # no rule matches: all 100 run
    trees = [r.tree for r in ruleset.rules]
    interp = Interpreter()
    c = timed(lambda: ruleset.evaluate(values), 5_000)
    r = timed(lambda: [interp.run(t, values) for t in trees], 500)
    rows.append(("100 rules, none matching", c, r))

    compile_times = []
    for rule in hundred_rules():
        t0 = time.perf_counter_ns()
        compile_expression(parse_expression(rule["expression"]))
        compile_times.append(time.perf_counter_ns() - t0)

    lines = [
        "## Rule evaluation",
        "",
        f"`bench/rules_bench.py` on {machine()}. Per evaluation, best of 7 runs; the peer is a",
        "direct tree-walking evaluator of the same parsed rules (`hagate.rules.interpreter`).",
        "",
        "| rules | compiled (hagate) | tree-walking | speed-up |",
        "|---|---:|---:|---:|",
    ]
    for label, c, r in rows:
        lines.append(f"| {label} | {c / 1000:.2f} µs | {r / 1000:.2f} µs | {r / c:.1f}x |")
    lines += [
        "",
        f"Parsing and compiling a rule takes {statistics.median(compile_times) / 1000:.0f} µs "
        "(median of the 100), once, when the config loads.",
    ]
    body = "\n".join(lines)
    print(body)
    write_section("rules", body)


if __name__ == "__main__":
    main()
