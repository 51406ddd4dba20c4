"""The sending process's periodic checks: certificates near expiry and the audit's
high-severity findings, each offered as an alert (the ledger deduplicates)."""

from __future__ import annotations

import time

from hagate.config import load_config
from hagate.pki.authority import read_inventory
from hagate.state import INVENTORY_NAME, StateDir
from hagate.watch.alerts import DAY, EXPIRY_WARN_DAYS, Alert, Alerter
from hagate.watch.findings import Severity


def expiry_bucket(days_left: float) -> int | None:
    """The warning threshold (14, 7, 3, 1 days) a certificate has crossed, or None."""
    crossed = [d for d in EXPIRY_WARN_DAYS if days_left <= d]
    return min(crossed) if crossed else None


def expiry_alerts(state: StateDir, now: float) -> list[Alert]:
    from hagate.watch.audit import server_certificate

    out = []
    for r in read_inventory(state / INVENTORY_NAME):
        ends = r.not_after.timestamp()
        if r.revoked or ends <= now:
            continue
        bucket = expiry_bucket((ends - now) / DAY)
        if bucket is None:
            continue
        days = int((ends - now) // DAY)
        out.append(
            Alert(
                "certificate_expiring",
                f"client:{r.name}:{bucket}",
                f"The client certificate '{r.name}' expires in {days} days "
                f"({time.strftime('%Y-%m-%d', time.gmtime(ends))}). Enrol the device again: "
                f"`hagate cert enrol {r.name}-new`",
                {"certificate": r.name, "expires": ends, "certificate_kind": "client"},
                repeat_after=30 * DAY,
            )
        )
    server = server_certificate(state, load_config(state.config_path))
    if server is not None and server.not_after > now:
        bucket = expiry_bucket((server.not_after - now) / DAY)
        if bucket is not None:
            days = int((server.not_after - now) // DAY)
            out.append(
                Alert(
                    "certificate_expiring",
                    f"server:{bucket}",
                    f"The server certificate ({server.issuer}) expires in {days} days; then no "
                    "client can connect. "
                    + (
                        "Renewal is failing: see `hagate acme status`."
                        if server.source == "acme"
                        else "Run: `hagate cert renew-server`"
                    ),
                    {
                        "certificate": "server",
                        "expires": server.not_after,
                        "certificate_kind": "server",
                    },
                    repeat_after=30 * DAY,
                )
            )
    return out


def audit_alerts(state: StateDir) -> list[Alert]:
    from hagate.watch.audit import run_audit

    report = run_audit(state)
    return [
        Alert(
            "audit_finding",
            f.id,
            f"hagate audit: {f.problem} Fix: {f.fix}",
            {"finding": f.id, "severity": f.severity.label},
            repeat_after=DAY,
        )
        for f in report.findings
        if f.severity >= Severity.HIGH
    ]


def run_checks(alerter: Alerter) -> None:
    now = time.time()
    for alert in [*expiry_alerts(alerter.state, now), *audit_alerts(alerter.state)]:
        alerter.offer(alert)
