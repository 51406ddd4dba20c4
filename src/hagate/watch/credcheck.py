"""Audit checks of what lets requests in without a certificate on Home Assistant's own word:
the bound-apps rules, the bindings kept, and the list of webhooks Home Assistant registered.

Every check is a pure function of facts (the rule set, the bindings' summaries, the
inventory, the gateway's status file of the webhook list); audit.py gathers them.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from hagate.credentials.bindings import PER_CERTIFICATE
from hagate.credentials.extract import KINDS
from hagate.credentials.webhooks import STALE_AFTER
from hagate.pki.authority import CertRecord
from hagate.rules.fields import reads_credentials, reads_webhooks
from hagate.rules.request import request_fields
from hagate.rules.ruleset import Rule, RuleSet
from hagate.rules.types import to_bytes_str
from hagate.watch.findings import Finding, Severity, slug

# Requests a bound credential must not open: Home Assistant's login and its pages.
OUTSIDE_APP_PATHS = (
    ("GET", "/"),
    ("GET", "/auth/authorize"),
    ("POST", "/auth/login_flow"),
    ("GET", "/local/camera.jpg"),
    ("GET", "/frontend_latest/app.js"),
    ("GET", "/lovelace/0"),
)


def check_bound_rules(ruleset: RuleSet, hostname: str) -> list[Finding]:
    """A skip rule on `hagate.credential.*` that also lets bound credentials in on paths
    beyond the companion apps' (Home Assistant's login, its frontend)."""
    out = []
    for rule in ruleset.rules:
        if not isinstance(rule, Rule) or not rule.enabled or rule.action != "skip":
            continue
        if not reads_credentials(rule.fields) or rule.fields is None:
            continue
        opened = []
        for method, path in OUTSIDE_APP_PATHS:
            for kind in KINDS:
                values = request_fields(
                    client_ip="192.0.2.1", method=method, host=hostname, target=path
                )
                values.update(
                    {
                        "hagate.credential.bound": True,
                        "hagate.credential.kind": to_bytes_str(kind),
                        "hagate.credential.cert_name": to_bytes_str("phone"),
                    }
                )
                if rule.match(values):
                    opened.append(f"{method} {path} ({kind})")
                    break
        if opened:
            name = rule.description or f"#{rule.number}"
            out.append(
                Finding(
                    f"bound-rule-too-wide-{slug(name)}",
                    Severity.HIGH,
                    f"Rule {name!r} lets credentials bound to a certificate in beyond the"
                    f" companion apps' paths, without the certificate: {', '.join(opened[:3])}.",
                    "Use the preset instead: `hagate rules preset show bound-apps`, and replace"
                    " the rule's expression with it.",
                )
            )
    return out


def check_bindings(
    summaries: Mapping[str, Mapping[str, Any]], records: list[CertRecord]
) -> list[Finding]:
    """Bindings held by a certificate that no longer counts (revoked, expired, gone), and a
    certificate holding as many as hagate keeps."""
    by_sha = {r.sha256: r for r in records}
    out = []
    for sha256, summary in sorted(summaries.items()):
        total = int(summary.get("total") or 0)
        if not total:
            continue
        record = by_sha.get(sha256)
        standing = record.status() if record is not None else "gone from the inventory"
        name = record.name if record is not None else sha256[:16]
        if standing not in ("valid", "expiring"):
            out.append(
                Finding(
                    f"bindings-of-{slug(name)}",
                    Severity.MEDIUM,
                    f"{total} Home Assistant credentials are still bound to the certificate"
                    f" {name!r}, which is {standing} (they let nothing in: the gateway checks"
                    " the certificate at each use).",
                    f"hagate cert unbind {name}",
                )
            )
        elif total >= PER_CERTIFICATE:
            out.append(
                Finding(
                    f"bindings-full-{slug(name)}",
                    Severity.MEDIUM,
                    f"The certificate {name!r} holds {total} credentials, as many as hagate"
                    " keeps for one certificate (the oldest are dropped): a device presenting"
                    " that many logins or webhooks is unusual.",
                    f"Look at what uses it (`hagate events list --cert {name}`); if it is not"
                    f" yours, `hagate cert revoke {name}`.",
                )
            )
    return out


def check_webhook_list(
    ruleset: RuleSet,
    configured: bool,
    status: Mapping[str, Any] | None,
    now: float | None = None,
) -> list[Finding]:
    """Rules on `hagate.webhook.*` need the list; the list needs Home Assistant."""
    if not reads_webhooks(ruleset.fields_used):
        return []
    now = time.time() if now is None else now
    if not configured:
        return [
            Finding(
                "webhook-list-missing",
                Severity.HIGH,
                "Rules read hagate.webhook.*, but hagate.yaml has no home_assistant section to"
                " fetch Home Assistant's webhooks with: those rules never match.",
                "Add `home_assistant:` with token_file (docs/bound-apps.md), then reload.",
            )
        ]
    if status is None:
        return []  # the gateway has not run with it yet
    fetched = status.get("fetched")
    error = status.get("error")
    old = fetched is None or now - float(fetched) > STALE_AFTER
    if not error and not old:
        return []
    since = (
        "never fetched"
        if fetched is None
        else f"fetched {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(float(fetched)))}"
    )
    why = f": {error}" if error else ""
    return [
        Finding(
            "webhook-list-stale",
            Severity.MEDIUM,
            f"The gateway could not refresh Home Assistant's list of webhooks{why}. The list"
            f" it has ({since}) keeps serving, so a webhook removed since still gets in.",
            "Check that Home Assistant runs and that home_assistant.url and token_file are"
            " right; the gateway tries again every 30 s (or reload it).",
        )
    ]
