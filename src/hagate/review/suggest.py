"""Rule changes suggested from the event log's evidence, each with the counts behind it.

Rules:
  1. A suggestion is the narrowest change the evidence asks for: a preset limited to the
     networks the evidence names, an address list for the relay; never a whole cloud.
  2. Suggestions come in a fixed order (kind, then weight of evidence), so the number shown is
     the number `--apply` takes on the same evidence.
  3. This module only reads, and only through hagate.review.query; applying is the
     caller's, through the checked config editor.
"""

from __future__ import annotations

import re
import sqlite3
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from hagate.review import query
from hagate.rules.presets import AMAZON_ASNS, APPLE_OSES, GOOGLE_ASNS, PRESETS

# Paths no Home Assistant serves and scanners always try.
PROBE_PATH = re.compile(
    r"(\.php\b|^/\.env|^/\.git|^/cgi-bin/|^/wp-|^/phpmyadmin|^/boaform|^/actuator|^/HNAP1"
    r"|^/admin/config|^/vendor/|^/owa/|^/\.aws|^/server-status|^/solr/|^/console/)",
    re.I,
)
ASN_WIDE = 3  # probing addresses in one AS, none ever let in, before the AS itself is named


@dataclass
class Suggestion:
    kind: str  # bound-apps, ios-companion(-no-network), android-companion(-no-network),
    # ha-webhooks, alexa, google, probes, unused-cert, unused-rule
    title: str
    evidence: list[str]
    rule: dict[str, str] | None = None  # for hagate.yaml, above the certificate rule
    relay_rule: dict[str, str] | None = None  # for the relay's --rules file
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def applicable(self) -> bool:
        return self.rule is not None or self.relay_rule is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "title": self.title,
            "evidence": self.evidence,
            "rule": self.rule,
            "relay_rule": self.relay_rule,
            **self.data,
        }


def _apple(ua: str) -> bool:
    return "(io.robbie.HomeAssistant; build:" in ua and any(f"; {o} " in ua for o in APPLE_OSES)


def _android(ua: str) -> bool:
    return "Home Assistant/" in ua and "(Android " in ua


def _companion(
    db: sqlite3.Connection, since: float, existing: set[str], asn_db: bool
) -> list[Suggestion]:
    blocked = query.blocked_app_requests(db, since)
    owners = query.certificate_networks(db, since)
    out = []
    for name, test in (("ios-companion", _apple), ("android-companion", _android)):
        if PRESETS[name].description in existing:
            continue
        per_asn: dict[int, list[int]] = defaultdict(lambda: [0, 0])
        addresses: dict[int, set[str]] = defaultdict(set)
        unplaced = 0  # blocked with no network on record
        for asn, ua, ip, n in blocked:
            if test(ua or ""):
                if asn:
                    per_asn[asn][0] += n
                    addresses[asn].add(ip)
                else:
                    unplaced += n
        if unplaced:
            out.append(_unplaced(name, unplaced, asn_db))
        if not per_asn:
            continue
        asns = sorted(per_asn, key=lambda a: (-per_asn[a][0], a))
        evidence = [
            f"{per_asn[a][0]} requests of the app blocked from AS{a} ({len(addresses[a])}"
            f" address{'es' if len(addresses[a]) != 1 else ''})"
            + ("; your certificate holders use this network too" if a in owners else "")
            for a in asns
        ]
        app = "iOS companion app" if name == "ios-companion" else "Android companion app"
        out.append(
            Suggestion(
                name,
                f"Let the {app} in from {', '.join(f'AS{a}' for a in asns)} (preset {name})",
                evidence,
                rule=PRESETS[name].rule(tuple(asns)),
                data={"asns": asns},
            )
        )
    return out


def _bound_apps(db: sqlite3.Connection, since: float, existing: set[str]) -> list[Suggestion]:
    """The companion apps' requests blocked without a certificate: what the watch, widgets and
    background refresh send. The credentials a certificate earned let them in, on the apps'
    paths, from any network: no user agent or network to trust."""
    if PRESETS["bound-apps"].description in existing:
        return []
    requests: Counter[str] = Counter()
    sources: dict[str, set[str]] = defaultdict(set)
    for _asn, ua, ip, n in query.blocked_app_requests(db, since):
        app = "iOS" if _apple(ua or "") else "Android" if _android(ua or "") else None
        if app is not None:
            requests[app] += n
            sources[app].add(ip)
    if not requests:
        return []
    evidence = [
        f"{requests[app]} requests of the {app} companion app blocked without a certificate,"
        f" from {_addresses(len(sources[app]))}"
        for app in sorted(requests)
    ]
    evidence.append(
        "with the preset they get in only with a Home Assistant login, refresh token or webhook"
        " that a certificate earned, on the apps' paths; no user agent or network is trusted"
    )
    return [
        Suggestion(
            "bound-apps",
            "Let the companion apps in with the Home Assistant credentials their certificate"
            " earned (preset bound-apps)",
            evidence,
            rule=PRESETS["bound-apps"].rule(),
        )
    ]


def _addresses(n: int) -> str:
    return f"{n} address{'es' if n != 1 else ''}"


_WEBHOOK_OF = re.compile(r"a webhook of ([a-z0-9_]+) registered in Home Assistant")


def _webhooks(db: sqlite3.Connection, since: float, existing: set[str]) -> list[Suggestion]:
    """Blocked calls of webhooks Home Assistant registered (Telegram, Netatmo...): the preset
    limited to the integrations named."""
    if PRESETS["ha-webhooks"].description in existing:
        return []
    calls: Counter[str] = Counter()
    sources: dict[str, set[str]] = defaultdict(set)
    for reason, ip, n in query.blocked_webhook_calls(db, since):
        found = _WEBHOOK_OF.search(reason or "")
        if found is not None and found.group(1) != "mobile_app":  # the apps': bound-apps
            calls[found.group(1)] += n
            sources[found.group(1)].add(ip)
    if not calls:
        return []
    domains = sorted(calls)
    evidence = [
        f"{calls[d]} calls of {d}'s webhooks blocked, from {_addresses(len(sources[d]))}"
        for d in domains
    ]
    return [
        Suggestion(
            "ha-webhooks",
            f"Let the webhooks Home Assistant registered for {', '.join(domains)} in without a"
            f" certificate (preset ha-webhooks {' '.join('--domain ' + d for d in domains)})",
            evidence,
            rule=PRESETS["ha-webhooks"].rule(domains=tuple(domains)),
            data={"domains": domains},
        )
    ]


def _unplaced(preset: str, n: int, asn_db: bool) -> Suggestion:
    """The app's blocked requests that cannot be grouped by network: no ASN on record."""
    app = "iOS companion app" if preset == "ios-companion" else "Android companion app"
    if asn_db:
        why = [
            "they came before the ASN database was configured; the ones after it are grouped",
            "let the app try again, then run this again",
        ]
    else:
        why = [
            "hagate.yaml names no ASN database (geoip.asn_db), so hagate cannot group them by "
            f"network, and the {preset} preset could not match",
            "get one: `hagate geoip update` (DB-IP Lite, no account), let the app try again, "
            "then run this again",
        ]
    return Suggestion(
        f"{preset}-no-network",
        f"{n} requests of the {app} were blocked from addresses with no network (ASN) on record",
        why,
    )


def _cloud(db: sqlite3.Connection, since: float, existing: set[str]) -> list[Suggestion]:
    out = []
    cases = (
        ("alexa", "alexa-account-linking", AMAZON_ASNS, ("/auth/token",), "Amazon's servers"),
        (
            "google",
            "google-assistant",
            GOOGLE_ASNS,
            ("/api/google_assistant", "/auth/token"),
            "Google's servers",
        ),
    )
    for kind, preset_name, asns, paths, who in cases:
        if PRESETS[preset_name].description in existing:
            continue
        rows = query.blocked_posts(db, since, asns, paths)
        if not rows:
            continue
        evidence = [f"{n} POST {p} blocked from {who} ({k} addresses)" for p, n, k in rows]
        out.append(
            Suggestion(
                kind,
                f"Let {who} in at {', '.join(paths)} only (preset {preset_name})",
                evidence,
                rule=PRESETS[preset_name].rule(),
            )
        )
    return out


def _probes(db: sqlite3.Connection, since: float) -> list[Suggestion]:
    rows = query.never_let_in(db, since, lambda p: bool(p and PROBE_PATH.search(p)))
    if not rows:
        return []
    allowed_asns = query.allowed_networks(db, since)
    by_asn: dict[int, list[str]] = defaultdict(list)
    for ip, asn, *_ in rows:
        if asn:
            by_asn[asn].append(ip)
    wide = sorted(a for a, ips in by_asn.items() if len(ips) >= ASN_WIDE and a not in allowed_asns)
    single = [ip for ip, asn, *_ in rows if asn not in wide]
    total = sum(r[2] for r in rows)
    evidence = [
        f"{len(rows)} addresses sent {total} requests, none ever let in, all with probes"
        " for paths Home Assistant does not serve (/wp-login.php, /.env, ...)"
    ]
    evidence += [
        f"AS{a}: {len(by_asn[a])} such addresses, and nothing from it was ever let in" for a in wide
    ]
    evidence += [f"{ip}: {n} requests, {probes} probes" for ip, _, n, probes in rows[:10]]
    parts = []
    if wide:
        parts.append(f"ip.src.asnum in {{{' '.join(map(str, wide))}}}")
    if single:
        parts.append(f"ip.src in {{{' '.join(sorted(single))}}}")
    expression = f"({' or '.join(parts)})"
    relay_rule = {
        "description": "Probe-only sources from the event log (hagate events suggest)",
        "expression": expression,
        "action": "block",
    }
    return [
        Suggestion(
            "probes",
            f"Drop {len(rows)} probe-only addresses at the relay"
            + (f" (and AS{', AS'.join(map(str, wide))})" if wide else ""),
            evidence,
            relay_rule=relay_rule,
            data={"addresses": sorted(single), "asns": wide},
        )
    ]


def _unused(
    db: sqlite3.Connection, since: float, certs: list[str], rules: list[str]
) -> list[Suggestion]:
    used_certs = query.used_certificates(db, since)
    # A row names one rule, or the log rules it matched joined by "; " (the gateway's form).
    texts = query.matched_rules(db, since)
    matched = texts | {part for text in texts for part in text.split("; ")}
    out = []
    idle = [c for c in certs if c not in used_certs]
    if idle:
        out.append(
            Suggestion(
                "unused-cert",
                f"Certificates not used in this period: {', '.join(idle)}",
                [
                    f"{c}: no request presented it; if the device is gone: `hagate cert revoke {c}`"
                    for c in idle
                ],
            )
        )
    quiet = [r for r in rules if r not in matched]
    if quiet:
        out.append(
            Suggestion(
                "unused-rule",
                f"Rules that never matched in this period: {', '.join(repr(r) for r in quiet)}",
                [
                    f"{r!r}: no event names it; remove it, or check that it says what you mean"
                    for r in quiet
                ],
            )
        )
    return out


def suggest(
    db: sqlite3.Connection,
    since: float,
    existing_rules: list[str],
    live_certs: list[str],
    asn_db: bool = True,
) -> list[Suggestion]:
    """Every suggestion the evidence since `since` supports, in a fixed order.
    `existing_rules` are the configured rules' descriptions, `live_certs` the names of the
    certificates that are neither revoked nor expired; `asn_db`: whether hagate.yaml names an
    ASN database."""
    existing = set(existing_rules)
    return [
        *_bound_apps(db, since, existing),
        *_companion(db, since, existing, asn_db),
        *_webhooks(db, since, existing),
        *_cloud(db, since, existing),
        *_probes(db, since),
        *_unused(db, since, live_certs, existing_rules),
    ]
