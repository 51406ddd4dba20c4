"""The audit's certificate checks, each finding present and absent."""

from __future__ import annotations

import datetime as dt

from hagate.pki.authority import CertRecord
from hagate.watch.certcheck import (
    AcmeState,
    RevokedUse,
    ServerCertificate,
    check_client_certificates,
    check_revoked_uses,
    check_server_certificate,
)
from hagate.watch.findings import Finding

DAY = 86400.0
NOW = 1_800_000_000.0


def record(
    name: str, issued_days_ago: float, ends_in_days: float, revoked: bool = False
) -> CertRecord:
    t = dt.datetime.fromtimestamp
    return CertRecord(
        name=name,
        serial=1,
        sha256=f"sha-{name}",
        sha1="x",
        not_before=t(NOW - issued_days_ago * DAY, dt.UTC),
        not_after=t(NOW + ends_in_days * DAY, dt.UTC),
        revoked_at=t(NOW - DAY, dt.UTC) if revoked else None,
    )


def ids(findings: list[Finding]) -> list[str]:
    return [f.id for f in findings]


def test_a_client_certificate_expiring_within_30_days() -> None:
    soon = record("phone", 10, 20)
    found = check_client_certificates([soon], {"sha-phone": NOW}, NOW)
    assert ids(found) == ["cert-expiring:phone"]
    assert "in 20 days" in found[0].problem and "hagate cert enrol phone-new" in found[0].fix
    assert check_client_certificates([record("phone", 10, 31)], {"sha-phone": NOW}, NOW) == []


def test_revoked_and_expired_certificates_are_not_expiring_or_unused() -> None:
    gone = [record("a", 400, 5, revoked=True), record("b", 900, -1)]
    assert check_client_certificates(gone, {}, NOW) == []


def test_a_certificate_unused_for_90_days() -> None:
    used_long_ago = check_client_certificates(
        [record("tablet", 200, 600)], {"sha-tablet": NOW - 91 * DAY}, NOW
    )
    assert ids(used_long_ago) == ["cert-unused:tablet"]
    assert "hagate cert revoke tablet" in used_long_ago[0].fix
    never_used = check_client_certificates([record("tablet", 100, 600)], {}, NOW)
    assert ids(never_used) == ["cert-unused:tablet"] and "never used" in never_used[0].problem
    assert (
        check_client_certificates([record("tablet", 200, 600)], {"sha-tablet": NOW - 89 * DAY}, NOW)
        == []
    )
    assert check_client_certificates([record("new", 10, 600)], {}, NOW) == []


def test_a_revoked_certificate_still_presented() -> None:
    use = RevokedUse("stolen", 4, NOW - 3600, "198.51.100.9", NOW - 2 * DAY)
    found = check_revoked_uses([use], NOW)
    assert ids(found) == ["cert-revoked-presented:stolen"]
    assert "presented 4 times since (last" in found[0].problem
    assert "198.51.100.9" in found[0].problem
    assert "`hagate events --cert stolen --since 7d`" in found[0].fix
    long_ago = RevokedUse("stolen", 1, NOW - 3600, None, NOW - 30 * DAY)
    assert "presented once in the last 7 days" in check_revoked_uses([long_ago], NOW)[0].problem
    old = RevokedUse("stolen", 4, NOW - 8 * DAY, None, NOW - 9 * DAY)
    assert check_revoked_uses([old], NOW) == []
    assert check_revoked_uses([], NOW) == []


def test_the_server_certificate_expiring_and_acme_failing() -> None:
    ca = ServerCertificate("hagate-ca", NOW + 10 * DAY, "hagate's CA")
    found = check_server_certificate(ca, None, NOW)
    assert ids(found) == ["server-cert-expiring"] and "hagate cert renew-server" in found[0].fix
    acme = ServerCertificate("acme", NOW + 10 * DAY, "CN=R11")
    assert "hagate acme renew" in check_server_certificate(acme, None, NOW)[0].fix
    assert check_server_certificate(ServerCertificate("acme", NOW + 60 * DAY, "x"), None, NOW) == []
    failing = AcmeState(3, "connection refused by the CA", NOW - 40 * DAY)
    found = check_server_certificate(None, failing, NOW)
    assert ids(found) == ["acme-failing"] and "connection refused" in found[0].problem
    assert check_server_certificate(None, AcmeState(0, None, NOW), NOW) == []
