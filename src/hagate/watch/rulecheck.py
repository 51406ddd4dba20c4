"""The audit's checks of the rules: pure functions of the rule set (and which rules the event
log saw match), tried against sample requests rather than guessed from the text.

Rules:
  1. "Skips everything" means: it matches every one of a spread of sample requests without a
     certificate (addresses, networks, paths, methods, user agents). `ssl`, `true` and
     `http.host ne ""` all do.
  2. The certificate rule is an enabled block rule that blocks a request without a
     certificate and lets the same request with a valid one through. It is shadowed when an
     earlier skip rule lets an ordinary browser without a certificate in first.
  3. A network limit is the address or the ASN; a country is not (it holds millions).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from hagate.config import Config
from hagate.errors import HagateError
from hagate.rules import fields
from hagate.rules.ast import Compare, FieldRef, InSet, IsTrue, ListRef, Literal, Logical, Node, Not
from hagate.rules.request import request_fields
from hagate.rules.ruleset import RateLimitRule, Rule, RuleSet, ruleset_from_config
from hagate.watch.cloud import CLOUD_ASNS
from hagate.watch.findings import Finding, Severity, slug

UA_FIELDS = frozenset({"http.user_agent"})
PATH_FIELDS = frozenset(
    {
        "http.request.uri",
        "http.request.uri.path",
        "http.request.uri.path.extension",
        "http.request.full_uri",
    }
)
NETWORK_FIELDS = frozenset({"ip.src", "ip.src.asnum", "ip.geoip.asnum"})
ASN_FIELDS = frozenset({"ip.src.asnum", "ip.geoip.asnum"})
CERT_FIELD = "cf.tls_client_auth.cert_verified"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0"
NEVER_MATCHED_DAYS = 30
NEVER_MATCHED_MIN_SPAN = 7 * 86400.0  # a younger log cannot tell a quiet rule from a new one


@dataclass(frozen=True)
class Sample:
    ip: str
    asn: int
    country: str
    method: str
    target: str
    user_agent: str


SAMPLES = (
    Sample("198.51.100.7", 0, "", "GET", "/", BROWSER),
    Sample("203.0.113.50", 64500, "US", "POST", "/api/services/lock/unlock", "curl/8.5.0"),
    Sample("192.0.2.33", 16509, "IE", "GET", "/api/states", ""),
    Sample("2001:db8::42", 15169, "US", "POST", "/auth/token", "python-requests/2.32"),
    Sample("100.64.3.9", 3320, "DE", "GET", "/lovelace/0?edit=1", BROWSER),
    Sample("10.9.8.7", 24940, "FI", "DELETE", "/api/config/core", "Go-http-client/1.1"),
)
CERT_TLS = {"cf.tls_client_auth.cert_presented": True, "cf.tls_client_auth.cert_verified": True}


def sample_fields(sample: Sample, hostname: str, tls: dict[str, Any] | None = None) -> Any:
    headers = [("Host", hostname)]
    if sample.user_agent:
        headers.append(("User-Agent", sample.user_agent))
    return request_fields(
        client_ip=sample.ip,
        method=sample.method,
        host=hostname,
        target=sample.target,
        headers=headers,
        asn=sample.asn,
        country=sample.country,
        tls=tls or {},
    )


def rule_id(check: str, rule: Rule | RateLimitRule) -> str:
    return f"{check}:{slug(rule.description or f'rule-{rule.number}')}"


def _label(rule: Rule | RateLimitRule) -> str:
    return (
        f"rule {rule.number} ({rule.description!r})" if rule.description else f"rule {rule.number}"
    )


def skips_everything(rule: Rule, hostname: str) -> bool:
    return all(rule.match(sample_fields(s, hostname)) for s in SAMPLES)


def asns_named(tree: Node, lists: dict[str, Any]) -> set[int]:
    """Every ASN an expression compares ip.src.asnum with (sets, lists, single values)."""
    found: set[int] = set()

    def walk(node: Node) -> None:
        if isinstance(node, Compare):
            if (
                isinstance(node.lhs, FieldRef)
                and (node.lhs.canonical or node.lhs.name) in ASN_FIELDS
            ):
                rhs = node.rhs
                items: Iterable[object] = ()
                if isinstance(rhs, InSet):
                    items = rhs.items
                elif isinstance(rhs, ListRef) and rhs.name in lists:
                    items = lists[rhs.name].items.items
                elif isinstance(rhs, Literal | int):
                    value = rhs.value if isinstance(rhs, Literal) else rhs
                    items = (value,)
                for item in items:
                    if isinstance(item, tuple) and len(item) == 2:
                        lo, hi = item
                        found.update(a for a in CLOUD_ASNS if lo <= a <= hi)
                        if isinstance(lo, int) and lo == hi:
                            found.add(lo)
                    elif isinstance(item, int) and not isinstance(item, bool):
                        found.add(item)
            walk(node.lhs)
        elif isinstance(node, Logical):
            walk(node.left)
            walk(node.right)
        elif isinstance(node, Not | IsTrue):
            walk(node.operand)

    walk(tree)
    return found


def _reads(rule: Rule, names: frozenset[str]) -> bool:
    return rule.fields is None or bool(rule.fields & names)


def check_skip_rules(ruleset: RuleSet, hostname: str) -> list[Finding]:
    out = []
    for rule in ruleset.rules:
        if not rule.enabled or rule.action != "skip":
            continue
        if skips_everything(rule, hostname):
            out.append(
                Finding(
                    rule_id("rule-skips-everything", rule),
                    Severity.HIGH,
                    f"{_label(rule)} skips the remaining rules for every request "
                    f"({rule.expression}): no client certificate is needed at all.",
                    f"Remove {_label(rule)} from hagate.yaml, or narrow it to a user agent, "
                    "a path and your own networks (see `hagate rules preset list`).",
                )
            )
            continue
        # Home Assistant's own word limits a rule too: a webhook it registered, a credential
        # bound to a certificate (credcheck.py says when such a rule is too wide).
        limits = fields.WEBHOOK_FIELDS | fields.CREDENTIAL_FIELDS
        if not _reads(rule, UA_FIELDS | PATH_FIELDS | NETWORK_FIELDS | limits):
            out.append(
                Finding(
                    rule_id("rule-skip-unlimited", rule),
                    Severity.HIGH,
                    f"{_label(rule)} lets requests in without a certificate with no limit on "
                    f"the user agent, the path or the network ({rule.expression}).",
                    f"Add the limits to {_label(rule)}: the exact path "
                    '(http.request.uri.path eq "/..."), the app\'s user agent, and the networks '
                    "it comes from (ip.src.asnum in {...}).",
                )
            )
        clouds = sorted(a for a in asns_named(rule.tree, ruleset.lists) if a in CLOUD_ASNS)
        if clouds and not _reads(rule, PATH_FIELDS):
            named = ", ".join(f"AS{a} ({CLOUD_ASNS[a]})" for a in clouds)
            out.append(
                Finding(
                    rule_id("rule-cloud-network", rule),
                    Severity.HIGH,
                    f"{_label(rule)} lets in {named} for every path: anyone renting a server "
                    "there gets past the certificate rule.",
                    f"Limit {_label(rule)} to the method and exact paths the service calls, as "
                    "the presets do: `hagate rules preset add alexa-account-linking` (or "
                    "`hagate rules preset add google-assistant`), then remove this rule.",
                )
            )
    return out


def is_certificate_rule(rule: Rule, hostname: str) -> bool:
    """Blocks an ordinary request without a certificate, lets it through with one."""
    if rule.action != "block":
        return False
    plain = SAMPLES[0]
    return rule.match(sample_fields(plain, hostname)) and not rule.match(
        sample_fields(plain, hostname, CERT_TLS)
    )


def check_certificate_rule(ruleset: RuleSet, hostname: str) -> list[Finding]:
    candidates = [r for r in ruleset.rules if is_certificate_rule(r, hostname)]
    enabled = [r for r in candidates if r.enabled]
    if not candidates:
        return [
            Finding(
                "cert-rule-missing",
                Severity.HIGH,
                "No rule blocks requests without a client certificate: anyone who finds the "
                "address reaches Home Assistant's login page.",
                "Add the certificate rule as the last rule in hagate.yaml: "
                "{description: Require a client certificate, expression: "
                '"(not cf.tls_client_auth.cert_verified)", action: block}',
            )
        ]
    if not enabled:
        rule = candidates[0]
        return [
            Finding(
                "cert-rule-disabled",
                Severity.HIGH,
                f"The certificate rule, {_label(rule)}, is disabled: requests without a "
                "certificate go through.",
                f"Set enabled: true on {_label(rule)} in hagate.yaml (or remove the enabled "
                "line), then: `hagate rules check`",
            )
        ]
    _, decision = ruleset.explain(sample_fields(SAMPLES[0], hostname))
    if decision.skipped and isinstance(decision.rule, Rule):
        by = decision.rule
        return [
            Finding(
                "cert-rule-shadowed",
                Severity.HIGH,
                f"The certificate rule, {_label(enabled[0])}, is never reached for an ordinary "
                f"browser without a certificate: {_label(by)} lets it in first "
                f"({by.expression}).",
                f"Narrow {_label(by)} (a user agent, a path, your networks) or move it below "
                "the certificate rule; check with: `hagate rules explain --ip 198.51.100.7`",
            )
        ]
    return []


def check_never_matched(
    ruleset: RuleSet, matched: set[str], log_span: float, now: float
) -> list[Finding]:
    """Enabled rules no event names in the last 30 days, when the log is old enough to say."""
    if log_span < NEVER_MATCHED_MIN_SPAN:
        return []
    days = int(min(log_span, NEVER_MATCHED_DAYS * 86400) // 86400)
    parts = matched | {p for text in matched for p in text.split("; ")}
    out = []
    for rule in ruleset.rules:
        if not rule.enabled or rule.description in parts:
            continue
        out.append(
            Finding(
                rule_id("rule-never-matched", rule),
                Severity.LOW,
                f"{_label(rule)} has not matched any request in {days} days.",
                f"If nothing needs it any more, remove {_label(rule)} from hagate.yaml; "
                "otherwise check it says what you mean, with the address, --ua and --path of "
                "a request it is meant for: `hagate rules explain --ip 198.51.100.7`",
            )
        )
    return out


GEOIP_FIELDS = {"asn_db": "ip.src.asnum", "country_db": "ip.src.country"}
GEOIP_FIX = (
    "Get the databases (DB-IP Lite, no account; hagate.yaml is pointed at them): "
    "`hagate geoip update`"
)


def geoip_gaps(
    ruleset: RuleSet, configured: set[str]
) -> list[tuple[Rule | RateLimitRule, list[str]]]:
    """The enabled rules that read a GeoIP field whose database hagate.yaml does not name,
    with those databases (asn_db, country_db): such a rule never matches."""
    out: list[tuple[Rule | RateLimitRule, list[str]]] = []
    every: list[Rule | RateLimitRule] = [*ruleset.rules, *ruleset.rate_limits]
    for rule in every:
        missing = sorted(fields.databases_read(rule.fields) - configured)
        if rule.enabled and missing:
            out.append((rule, missing))
    return out


def _fields_and_keys(missing: list[str]) -> tuple[str, str]:
    """The fields the missing databases fill, and their keys in hagate.yaml, as words."""
    return (
        " and ".join(GEOIP_FIELDS[m] for m in missing),
        " and ".join(f"geoip.{m}" for m in missing),
    )


def geoip_gap_text(rule: Rule | RateLimitRule, missing: list[str]) -> str:
    reads, keys = _fields_and_keys(missing)
    return (
        f"{_label(rule)} reads {reads}, but hagate.yaml names no database for it ({keys}): "
        "the field is always empty, so the rule never matches."
    )


def refuse_without_geoip(preset: str, rule: dict[str, str], cfg: Config) -> None:
    """A preset that would never match for want of a GeoIP database is not added."""
    alone = ruleset_from_config(replace(cfg, rules=[rule], rate_limits=[]))
    for _, missing in geoip_gaps(alone, cfg.geoip_databases):
        reads, keys = _fields_and_keys(missing)
        raise HagateError(
            f"the {preset} preset matches on {reads}, but {cfg.source.name} names no database "
            f"for it ({keys}): the rule would never match. {GEOIP_FIX}, then add the preset."
        )


def refuse_without_home_assistant(preset: str, rule: dict[str, str], cfg: Config) -> None:
    """A preset on Home Assistant's webhook list needs the connection that fetches it."""
    alone = ruleset_from_config(replace(cfg, rules=[rule], rate_limits=[]))
    if cfg.home_assistant is None and fields.reads_webhooks(alone.fields_used):
        raise HagateError(
            f"the {preset} preset matches on the webhooks Home Assistant registered, but"
            f" {cfg.source.name} has no home_assistant section to fetch them with: the rule"
            " would never match. Add one (url and token_file, docs/bound-apps.md), then add"
            " the preset."
        )


def check_geoip(ruleset: RuleSet, configured: set[str]) -> list[Finding]:
    out = []
    for rule, missing in geoip_gaps(ruleset, configured):
        # A block rule that never matches lets in what it was meant to stop.
        blocks = getattr(rule, "action", "block") == "block"
        out.append(
            Finding(
                rule_id("rule-needs-geoip", rule),
                Severity.HIGH if blocks else Severity.MEDIUM,
                geoip_gap_text(rule, missing),
                GEOIP_FIX,
            )
        )
    return out


def check_rules(
    ruleset: RuleSet,
    hostname: str,
    matched: set[str],
    log_span: float,
    now: float,
    geoip: set[str] | None = None,
) -> list[Finding]:
    """Every check of the rules; `geoip`: the GeoIP databases configured (asn_db,
    country_db), or None not to check."""
    return [
        *check_skip_rules(ruleset, hostname),
        *check_certificate_rule(ruleset, hostname),
        *check_never_matched(ruleset, matched, log_span, now),
        *(check_geoip(ruleset, geoip) if geoip is not None else ()),
    ]
