"""The audit's checks of bound credentials, their rules, and Home Assistant's webhook list."""

from __future__ import annotations

import datetime as dt

from hagate.config import ConfigSource
from hagate.credentials.bindings import PER_CERTIFICATE, summary
from hagate.pki.authority import CertRecord
from hagate.rules.presets import preset
from hagate.rules.ruleset import build_ruleset
from hagate.watch.credcheck import check_bindings, check_bound_rules, check_webhook_list

CERT_RULE = {"description": "cert", "expression": "(not cf.tls_client_auth.cert_verified)",
             "action": "block"}  # fmt: skip
NOW = dt.datetime.now(dt.UTC)


def rules(*extra: dict[str, str]) -> object:
    return build_ruleset([*extra, CERT_RULE], [], {}, ConfigSource("test"))


def record(name: str, sha: str, revoked: bool = False, days: int = 300) -> CertRecord:
    return CertRecord(
        name, 1, sha, "s1", NOW - dt.timedelta(days=1), NOW + dt.timedelta(days=days),
        NOW if revoked else None,
    )  # fmt: skip


def test_a_bound_rule_wider_than_the_apps_paths_is_high_and_the_preset_is_not() -> None:
    wide = {"description": "Any bound", "expression": "hagate.credential.bound", "action": "skip"}
    found = check_bound_rules(rules(wide), "ha.test")  # type: ignore[arg-type]
    assert [f.id for f in found] == ["bound-rule-too-wide-any-bound"]
    assert found[0].severity.label == "high" and "GET /" in found[0].problem
    assert check_bound_rules(rules(preset("bound-apps").rule()), "ha.test") == []  # type: ignore[arg-type]


def test_bindings_of_a_revoked_certificate_and_a_full_one_are_reported() -> None:
    full = {**summary([]), "total": PER_CERTIFICATE, "webhook": PER_CERTIFICATE}
    some = {**summary([]), "total": 3, "access_token": 3}
    found = check_bindings(
        {"a": some, "b": full, "c": some, "d": some},
        [record("old", "a", revoked=True), record("phone", "b"), record("ok", "c")],
    )
    assert [f.id for f in found] == ["bindings-of-old", "bindings-full-phone", "bindings-of-"
                                     + "d"]  # fmt: skip
    assert found[0].fix == "hagate cert unbind old" and "revoked" in found[0].problem
    assert "gone from the inventory" in found[2].problem


def test_the_webhook_list_missing_stale_or_failing_is_said() -> None:
    on_hooks = rules(preset("ha-webhooks").rule())
    assert check_webhook_list(rules(), False, None) == []  # type: ignore[arg-type]
    missing = check_webhook_list(on_hooks, False, None)  # type: ignore[arg-type]
    assert [f.id for f in missing] == ["webhook-list-missing"] and missing[
        0
    ].severity.label == "high"
    now = 1_000_000.0
    fresh = {"fetched": now - 60, "checked": now - 60, "count": 2, "error": None}
    assert check_webhook_list(on_hooks, True, fresh, now) == []  # type: ignore[arg-type]
    failing = {**fresh, "error": "cannot reach Home Assistant: ClientConnectorError"}
    (stale,) = check_webhook_list(on_hooks, True, failing, now)  # type: ignore[arg-type]
    assert stale.id == "webhook-list-stale" and "cannot reach Home Assistant" in stale.problem
    old = {**fresh, "fetched": now - 3600}
    assert [f.id for f in check_webhook_list(on_hooks, True, old, now)] == ["webhook-list-stale"]  # type: ignore[arg-type]
