"""What the console changes: rules (checked, replayed, then saved with comments kept), devices
(enrolled, revoked) and applied suggestions. The same components the CLI calls.

Rules:
  1. A rule set is saved only when it checks as the gateway would load it; the file is backed
     up first and replaced in one step (configedit.replace_checked), then the running gateway
     is told to reload.
  2. A replay reads the log and evaluates; it changes nothing and counts no rate limit.
"""

from __future__ import annotations

import io
import ipaddress
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from hagate import config
from hagate.configedit import replace_checked, yaml_editor
from hagate.errors import HagateError
from hagate.events.store import EVENTS_NAME
from hagate.geoip import GeoIP
from hagate.pidfile import reload_running
from hagate.rules.errors import RuleError
from hagate.rules.ruleset import ACTIONS, RuleSet, build_ruleset, load_lists
from hagate.state import StateDir

REPLAY_DAYS = 7
REPLAY_GROUPS = 200_000  # distinct requests evaluated at most; beyond, the replay says so
EXAMPLES = 5
MAX_RULES = 200


# The logged columns a replay rebuilds a request from, and which rule fields read each: a
# replay groups the log only by the columns its rules read, so each group is judged once.
LOGGED: tuple[str, ...] = ("client_ip", "asn", "country", "host", "sni", "method", "path")
LOGGED += ("user_agent", "cert_sha256")
_READS = (
    ("cf.tls_client_auth.", ("cert_sha256",)),
    ("http.host", ("host", "sni")),
    ("http.user_agent", ("user_agent",)),
    ("http.request.headers", ("host", "sni", "user_agent")),
    ("http.request.method", ("method",)),
    ("http.request.full_uri", ("host", "sni", "path")),
    ("http.request.uri", ("path",)),
    ("ip.src.asnum", ("asn",)),
    ("ip.src.country", ("country",)),
    ("ip.src.is_in_european_union", ("country",)),
    ("ip.src.continent", ("client_ip",)),
    ("ip.src", ("client_ip",)),
)


def replay_columns(fields: frozenset[str] | None) -> list[str]:
    """The logged columns that the rule fields `fields` read (all, for None: a rule that
    does not say)."""
    if fields is None:
        return list(LOGGED)
    out: set[str] = set()
    for name in fields:
        for prefix, columns in _READS:
            if (
                name == prefix
                or name.startswith(prefix + ".")
                or (prefix.endswith(".") and name.startswith(prefix))
            ):
                out.update(columns)
                break
    return [c for c in LOGGED if c in out]


@dataclass(frozen=True)
class DraftRule:
    """One rule as the console's editor holds it; `origin` is its index in hagate.yaml."""

    description: str
    expression: str
    action: str
    enabled: bool = True
    origin: int | None = None

    def to_config(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "description": self.description,
            "expression": self.expression,
            "action": self.action,
        }
        if not self.enabled:
            out["enabled"] = False
        return out


def draft_from_config(cfg: config.Config) -> list[DraftRule]:
    return [
        DraftRule(
            description=str(r.get("description") or ""),
            expression=str(r.get("expression") or ""),
            action=str(r.get("action") or ""),
            enabled=r.get("enabled", True) is not False,
            origin=i,
        )
        for i, r in enumerate(cfg.rules)
    ]


def draft_from_form(form: Mapping[str, str]) -> list[DraftRule]:
    """The editor's form: description-N, expression-N, action-N, enabled-N, origin-N for N
    from 0, then the one operation its button asked for (op = up:N, down:N, delete:N, add)."""
    out: list[DraftRule] = []
    for n in range(MAX_RULES + 1):
        if f"expression-{n}" not in form:
            break
        origin = form.get(f"origin-{n}", "")
        out.append(
            DraftRule(
                description=form.get(f"description-{n}", "").strip(),
                expression=form.get(f"expression-{n}", "").strip(),
                action=form.get(f"action-{n}", "").strip(),
                enabled=form.get(f"enabled-{n}") == "on",
                origin=int(origin) if origin.isdigit() else None,
            )
        )
    if len(out) > MAX_RULES:
        raise HagateError(f"at most {MAX_RULES} rules")
    op, _, arg = form.get("op", "").partition(":")
    i = int(arg) if arg.isdigit() else -1
    if op == "add":
        out.append(DraftRule("", "", "block"))
    elif op in ("up", "down", "delete") and 0 <= i < len(out):
        if op == "delete":
            del out[i]
        else:
            j = i - 1 if op == "up" else i + 1
            if 0 <= j < len(out):
                out[i], out[j] = out[j], out[i]
    return out


def check_expression(text: str, lists: Mapping[str, Any]) -> dict[str, Any] | None:
    """None when `text` parses and type-checks; else the error with its column."""
    from hagate.rules.parser import parse_expression

    if not text.strip():
        return {"message": "an expression is needed", "line": 1, "column": 1, "text": ""}
    try:
        parse_expression(text.strip(), lists)
    except RuleError as e:
        return {"message": e.message, "line": e.line, "column": e.column, "text": e.render()}
    return None


def compile_draft(cfg: config.Config, draft: list[DraftRule]) -> RuleSet:
    """The draft as the gateway would load it (rate limits as configured); raises
    RuleConfigError with every problem."""
    return build_ruleset([d.to_config() for d in draft], cfg.rate_limits, cfg.lists, cfg.source)


def draft_problems(cfg: config.Config, draft: list[DraftRule]) -> list[dict[str, Any] | None]:
    """Each rule's expression error (or None), for showing beside the rule."""
    lists = load_lists(cfg.lists, cfg.source)
    out: list[dict[str, Any] | None] = []
    for d in draft:
        problem = check_expression(d.expression, lists)
        if problem is None and d.action not in ACTIONS:
            problem = {"message": f"action: one of {', '.join(ACTIONS)}", "column": 1}
        out.append(problem)
    return out


# -- replay -------------------------------------------------------------------------------


def replay(
    state: StateDir, draft: list[DraftRule], days: int = REPLAY_DAYS, now: float | None = None
) -> dict[str, Any]:
    """What `draft` would have done to the requests of the last `days` days, beside what
    today's rules do to them: how many change from let in to blocked and back, with examples.
    Requests are grouped by the logged columns the rules read (other columns take one of the
    group's values, which no rule looks at), so each distinct request is decided once."""
    from hagate.pki.authority import Authority
    from hagate.review.query import has_events, open_log
    from hagate.rules.request import issued_certificate_fields, request_fields
    from hagate.rules.ruleset import ruleset_from_config
    from hagate.rules.types import to_bytes_str

    now = time.time() if now is None else now
    cfg = config.load_config(state.config_path)
    # Rate limits depend on timing the log does not keep: both sides are judged without them.
    before = ruleset_from_config(cfg)
    after = compile_draft(cfg, draft)
    before = RuleSet(before.rules, (), before.lists)
    after = RuleSet(after.rules, (), after.lists)
    geo = GeoIP(cfg.asn_db, cfg.country_db)
    authority = Authority(state)
    records = {r.sha256: r for r in authority.records()}
    tls_cache: dict[str, dict[str, Any]] = {}

    def tls_for(sha: str | None) -> dict[str, Any]:
        if not sha or sha not in records:
            return {}
        if sha not in tls_cache:
            tls_cache[sha] = issued_certificate_fields(authority, records[sha])
        return tls_cache[sha]

    result: dict[str, Any] = {
        "days": days,
        "requests": 0,
        "distinct": 0,
        "to_blocked": 0,
        "to_let_in": 0,
        "examples_to_blocked": [],
        "examples_to_let_in": [],
        "truncated": False,
    }
    path = state / EVENTS_NAME
    if not path.exists():
        return result
    used = (
        None
        if before.fields_used is None or after.fields_used is None
        else before.fields_used | after.fields_used
    )
    grouped = replay_columns(used)
    sampled = [c for c in LOGGED if c not in grouped]
    select = ", ".join([*grouped, *(f"min({c}) AS {c}" for c in sampled)])
    group_by = ", ".join(grouped) if grouped else "NULL"
    db = open_log(path)
    if not has_events(db):
        db.close()
        return result
    try:
        cursor = db.execute(
            f"SELECT {select}, count(*) AS n, max(time) AS last FROM events"
            " WHERE time >= ? AND method IS NOT NULL AND action IN"
            " ('allow', 'skip', 'log', 'block')"
            f" GROUP BY {group_by} LIMIT ?",
            (now - days * 86400, REPLAY_GROUPS + 1),
        )
        for row in cursor:
            if result["distinct"] == REPLAY_GROUPS:
                result["truncated"] = True
                break
            result["distinct"] += 1
            result["requests"] += row["n"]
            try:
                ip = ipaddress.ip_address(row["client_ip"])
            except ValueError:
                continue
            host = str(row["host"] or row["sni"] or cfg.hostname)
            headers = [(to_bytes_str("Host"), to_bytes_str(host))]
            if row["user_agent"]:
                headers.append((to_bytes_str("User-Agent"), to_bytes_str(row["user_agent"])))
            values = request_fields(
                client_ip=ip,
                method=str(row["method"]),
                host=to_bytes_str(host),
                target=to_bytes_str(str(row["path"] or "/")),
                headers=headers,
                asn=int(row["asn"] or 0),
                country=str(row["country"] or ""),
                continent=geo.lookup(ip).continent or "" if "client_ip" in grouped else "",
                tls=tls_for(row["cert_sha256"]),
                only=used,
            )
            was = before.evaluate(values, now).blocked
            will = after.evaluate(values, now).blocked
            if was == will:
                continue
            kind = "to_blocked" if will else "to_let_in"
            result[kind] += row["n"]
            examples = result["examples_" + kind]
            if len(examples) < EXAMPLES:
                examples.append(
                    {
                        "client_ip": row["client_ip"],
                        "asn": row["asn"],
                        "country": row["country"],
                        "method": row["method"],
                        "path": row["path"],
                        "user_agent": row["user_agent"],
                        "cert": records[row["cert_sha256"]].name
                        if row["cert_sha256"] in records
                        else None,
                        "count": row["n"],
                        "last": row["last"],
                    }
                )
    finally:
        db.close()
    return result


# -- saving -------------------------------------------------------------------------------


def save_rules(state: StateDir, draft: list[DraftRule]) -> str:
    """Write `draft` as hagate.yaml's `rules:` (see rules_text); returns the backup's name.
    The running gateway is told to reload."""
    backup = replace_checked(state.config_path, rules_text(state, draft))
    reload_running(state)
    return backup.name


def rules_text(state: StateDir, draft: list[DraftRule]) -> str:
    """hagate.yaml with `draft` as its `rules:`, keeping the comments and every other key of
    the rules that came from the file."""
    path = state.config_path
    y = yaml_editor()
    doc = y.load(path.read_text(encoding="utf-8"))
    if not isinstance(doc, CommentedMap):
        raise HagateError(f"{path} is not a YAML mapping; fix it first (hagate rules check)")
    old = doc.get("rules")
    old_list = list(old) if isinstance(old, CommentedSeq) else []
    new = old if isinstance(old, CommentedSeq) else CommentedSeq()
    entries = []
    for d in draft:
        if d.origin is not None and 0 <= d.origin < len(old_list):
            entry = old_list[d.origin]
            if not isinstance(entry, CommentedMap):
                entry = CommentedMap()
        else:
            entry = CommentedMap()
        for key, value in d.to_config().items():
            if entry.get(key) != value:
                entry[key] = value
        if d.enabled and "enabled" in entry:
            del entry["enabled"]
        entries.append(entry)
    new[:] = entries
    doc["rules"] = new
    out = io.StringIO()
    y.dump(doc, out)
    return out.getvalue()


# -- devices and suggestions ----------------------------------------------------------------


def revoke_device(state: StateDir, name: str) -> dict[str, Any]:
    from hagate.pki.authority import Authority

    record = Authority(state).revoke(name, "revoked in the console")
    return {"name": record.name, "serial": record.serial_hex, "status": record.status()}


def enrol_device(state: StateDir, name: str, ttl: float, base_url: str | None) -> Any:
    from hagate.enrol.issue import enrol

    return enrol(state, name, None, ttl, base_url)


def rule_diff(state: StateDir, rule: dict[str, str]) -> str:
    """What adding `rule` above the certificate rule would change in hagate.yaml, as a diff."""
    from hagate.configedit import text_diff, with_rule_inserted

    return text_diff(state.config_path, with_rule_inserted(state.config_path, rule))


def add_rule(state: StateDir, rule: dict[str, str]) -> dict[str, Any]:
    """Add `rule` above the certificate rule (checked, backed up), and reload."""
    from hagate.configedit import insert_rule

    backup = insert_rule(state.config_path, rule)
    reload_running(state)
    return {"added": rule, "backup": backup.name}


def kept_suggestion_rule(found: list[dict[str, Any]], number: int) -> dict[str, str]:
    """The hagate.yaml rule of suggestion `number` among the console's kept suggestions."""
    if not 1 <= number <= len(found):
        raise HagateError(f"there is no suggestion {number} (there are {len(found)})")
    rule = found[number - 1].get("rule")
    if not isinstance(rule, dict):
        raise HagateError(f"suggestion {number} is not a rule for hagate.yaml")
    return {str(k): str(v) for k, v in rule.items()}
