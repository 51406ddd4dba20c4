"""The audit's checks of certificates: pure functions of the inventory, the server
certificate, the ACME status and when each certificate was last used."""

from __future__ import annotations

import time
from dataclasses import dataclass

from hagate.pki.authority import CertRecord
from hagate.watch.findings import Finding, Severity

DAY = 86400.0
EXPIRY_DAYS = 30
UNUSED_DAYS = 90
REVOKED_SEEN_DAYS = 7  # a revoked certificate presented this recently is a finding


@dataclass(frozen=True)
class ServerCertificate:
    source: str  # "acme" or "hagate-ca"
    not_after: float
    issuer: str


@dataclass(frozen=True)
class RevokedUse:
    name: str
    count: int
    last: float
    last_ip: str | None
    revoked_at: float


@dataclass(frozen=True)
class AcmeState:
    failures: int
    last_error: str | None
    last_success: float | None


def _day(t: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(t))


def _times(n: int) -> str:
    return "once" if n == 1 else f"{n} times"


def _live(record: CertRecord, now: float) -> bool:
    return not record.revoked and record.not_after.timestamp() > now


def check_client_certificates(
    records: list[CertRecord], last_used: dict[str, float], now: float
) -> list[Finding]:
    out = []
    for r in records:
        if not _live(r, now):
            continue
        ends = r.not_after.timestamp()
        if ends - now < EXPIRY_DAYS * DAY:
            days = int((ends - now) // DAY)
            out.append(
                Finding(
                    f"cert-expiring:{r.name}",
                    Severity.MEDIUM,
                    f"The client certificate '{r.name}' expires on {_day(ends)} (in {days} days);"
                    " the device will then be blocked.",
                    f"Enrol the device again: `hagate cert enrol {r.name}-new` (then, once it "
                    f"works: `hagate cert revoke {r.name}`)",
                )
            )
        used = last_used.get(r.sha256)
        since = used if used is not None else r.not_before.timestamp()
        if now - since > UNUSED_DAYS * DAY:
            when = f"last used on {_day(used)}" if used is not None else "never used"
            out.append(
                Finding(
                    f"cert-unused:{r.name}",
                    Severity.LOW,
                    f"The client certificate '{r.name}' has not been used in {UNUSED_DAYS} days "
                    f"({when}): is the device lost or gone?",
                    f"If the device is gone: `hagate cert revoke {r.name}`",
                )
            )
    return out


def check_revoked_uses(uses: list[RevokedUse], now: float) -> list[Finding]:
    out = []
    for u in uses:
        if now - u.last > REVOKED_SEEN_DAYS * DAY:
            continue
        where = f", from {u.last_ip}" if u.last_ip else ""
        window = REVOKED_SEEN_DAYS * DAY
        since = "since" if now - u.revoked_at <= window else f"in the last {REVOKED_SEEN_DAYS} days"
        out.append(
            Finding(
                f"cert-revoked-presented:{u.name}",
                Severity.HIGH,
                f"The certificate '{u.name}', revoked on {_day(u.revoked_at)}, was presented "
                f"{_times(u.count)} {since} (last on {_day(u.last)}{where}). It is "
                "refused, but whoever holds it is still trying.",
                f"Find the device that still holds '{u.name}': `hagate events --cert {u.name} "
                f"--since {REVOKED_SEEN_DAYS}d` shows where and when it was presented; if it "
                "was stolen, change the passwords it knew.",
            )
        )
    return out


def check_server_certificate(
    server: ServerCertificate | None, acme: AcmeState | None, now: float
) -> list[Finding]:
    out = []
    if server is not None and server.not_after - now < EXPIRY_DAYS * DAY:
        days = int((server.not_after - now) // DAY)
        state = "expired" if days < 0 else f"expires in {days} days"
        fix = (
            "Renewal should have happened by now: `hagate acme status`, then `hagate acme renew`"
            if server.source == "acme"
            else "Issue a new one from hagate's CA: `hagate cert renew-server`"
        )
        out.append(
            Finding(
                "server-cert-expiring",
                Severity.HIGH,
                f"The server certificate ({server.issuer}) {state} ({_day(server.not_after)}); "
                "then no client can connect.",
                fix,
            )
        )
    if acme is not None and acme.failures > 0:
        ok = f"; the last success was on {_day(acme.last_success)}" if acme.last_success else ""
        out.append(
            Finding(
                "acme-failing",
                Severity.HIGH,
                f"Renewing the server certificate failed {acme.failures} times in a row{ok}: "
                f"{acme.last_error or 'no error text'}",
                "Read `hagate acme status` for the CA's answer, fix it (port 443 reachable "
                "from the internet, the DNS name pointing here), then: `hagate acme renew`",
            )
        )
    return out
