"""Each integration preset lets in exactly what it names, and nothing else (issue 13)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hagate.config import ConfigSource
from hagate.errors import HagateError
from hagate.rules.presets import APPLE_OSES, PRESETS, preset
from hagate.rules.request import request_fields
from hagate.rules.ruleset import RuleSet, build_ruleset

CERT_RULE = {
    "description": "cert",
    "expression": "(not cf.tls_client_auth.cert_verified)",
    "action": "block",
}
OWN_ASNS = (3320, 6805)


def ruleset(name: str, asns: tuple[int, ...] = ()) -> RuleSet:
    return build_ruleset([preset(name).rule(asns), CERT_RULE], [], {}, ConfigSource("test"))


def let_in(rules: RuleSet, method: str, path: str, ua: str, asn: int) -> bool:
    """Whether a request without a certificate gets through."""
    fields = request_fields(
        client_ip="192.0.2.1",
        method=method,
        target=path,
        headers=[("User-Agent", ua)] if ua else [],
        asn=asn,
    )
    return not rules.evaluate(fields).blocked


# What each preset names, written out in Python, apart from its expression.
def apple_app(ua: str) -> bool:
    return "(io.robbie.HomeAssistant; build:" in ua and any(f"; {os} " in ua for os in APPLE_OSES)


SPEC: dict[str, Callable[[str, str, str, int], bool]] = {
    "ios-companion": lambda m, p, ua, asn: apple_app(ua) and asn in OWN_ASNS,
    "android-companion": lambda m, p, ua, asn: (
        "Home Assistant/" in ua and "(Android " in ua and asn in OWN_ASNS
    ),
    "alexa-account-linking": lambda m, p, ua, asn: (
        m == "POST" and p == "/auth/token" and asn in (16509, 14618)
    ),
    "google-assistant": lambda m, p, ua, asn: (
        m == "POST" and p in ("/api/google_assistant", "/auth/token") and asn == 15169
    ),
    "bound-apps": lambda m, p, ua, asn: False,  # nothing without a bound credential
    "ha-webhooks": lambda m, p, ua, asn: False,  # nothing but a webhook Home Assistant listed
}

METHODS = st.sampled_from(["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"])
PATHS = st.sampled_from(
    [
        "/auth/token",
        "/auth/token/",
        "/auth/tokens",
        "/AUTH/TOKEN",
        "/api/google_assistant",
        "/api/google_assistant/x",
        "/api/states",
        "/",
        "/api/websocket",
        "/auth/authorize",
        "/api/alexa/smart_home",
    ]
) | st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=20).map(
    lambda s: "/" + s
)
UAS = st.sampled_from(
    [
        "Home Assistant/2026.1 (io.robbie.HomeAssistant; build:2026.1; iOS 17.5.1)",
        "Home Assistant/2026.1 (io.robbie.HomeAssistant; build:2026.1; iPadOS 17.5)",
        "Home Assistant/2026.1 (io.robbie.HomeAssistant; build:2026.1; watchOS 10.4)",
        "Home Assistant/2026.1 (io.robbie.HomeAssistant; build:2026.1; macOS 14.5)",
        "Home Assistant/2026.1 (io.robbie.HomeAssistant; build:2026.1; visionOS 1.2)",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) Mobile/HomeAssistant, like Safari",
        "Mozilla/5.0 (Linux; Android 15; Pixel 9) Chrome/131 Home Assistant/2026.1 (Android 15; Pixel 9)",
        "Home Assistant/2026.1 (Android 15; Pixel 9)",
        "curl/8.0 (io.robbie.HomeAssistant; build:",
        "Apache-HttpClient/UNAVAILABLE",
        "Google-HomeAssistant",
        "",
    ]
) | st.text(max_size=40)
ASNS = st.sampled_from([3320, 6805, 16509, 14618, 15169, 64500, 0])


@pytest.mark.parametrize("name", sorted(PRESETS))
@settings(max_examples=400, deadline=None)
@given(method=METHODS, path=PATHS, ua=UAS, asn=ASNS)
def test_a_preset_lets_in_exactly_what_it_names(
    name: str, method: str, path: str, ua: str, asn: int
) -> None:
    rules = ruleset(name, OWN_ASNS if PRESETS[name].needs_asns else ())
    assert let_in(rules, method, path, ua, asn) == SPEC[name](method, path, ua, asn)


def test_the_apple_preset_knows_that_ipados_and_watchos_do_not_contain_ios() -> None:
    rules = ruleset("ios-companion", OWN_ASNS)
    for os_name in ("iPadOS 17.5", "watchOS 10.4"):
        ua = f"Home Assistant/2026.1 (io.robbie.HomeAssistant; build:1; {os_name})"
        assert "iOS" not in ua  # the seed's `contains "iOS"` rule missed these devices
        assert let_in(rules, "GET", "/api/websocket", ua, 3320)
        assert not let_in(rules, "GET", "/api/websocket", ua, 64500)


def test_presets_on_a_whole_cloud_never_open_every_path() -> None:
    for name in ("alexa-account-linking", "google-assistant"):
        rules = ruleset(name)
        for path in ("/api/states", "/api/config", "/", "/api/websocket", "/auth/authorize"):
            for method in ("GET", "POST"):
                assert not let_in(rules, method, path, "", PRESETS[name].default_asns[0])


def test_companion_presets_need_the_owners_networks() -> None:
    for name in ("ios-companion", "android-companion"):
        with pytest.raises(HagateError, match="--asn"):
            preset(name).expression()
    with pytest.raises(HagateError, match="takes no --asn"):
        preset("bound-apps").expression((3320,))
    with pytest.raises(HagateError, match="no preset"):
        preset("everything")


def bound_apps_spec(method: str, path: str, kind: str, bound: bool) -> bool:
    """What the bound-apps preset names, per kind of credential."""
    if not bound:
        return False
    return {
        "access_token": path.startswith("/api/"),
        "websocket": path == "/api/websocket",
        "webhook": path.startswith("/api/webhook/"),
        "refresh_token": method == "POST" and path == "/auth/token",
    }.get(kind, False)


@settings(max_examples=600, deadline=None)
@given(
    method=METHODS,
    path=PATHS | st.sampled_from(["/api/webhook/abc", "/api/camera_proxy/camera.door", "/api"]),
    kind=st.sampled_from(["access_token", "refresh_token", "webhook", "websocket", "", "other"]),
    bound=st.booleans(),
    name=st.sampled_from(["phone", "watch", ""]),
)
def test_bound_apps_lets_in_a_bound_credential_on_its_own_paths_only(
    method: str, path: str, kind: str, bound: bool, name: str
) -> None:
    rules = ruleset("bound-apps")
    fields = request_fields(client_ip="192.0.2.1", method=method, target=path)
    fields.update(
        {
            "hagate.credential.bound": bound,
            "hagate.credential.kind": kind,
            "hagate.credential.cert_name": name,
        }
    )
    assert (not rules.evaluate(fields).blocked) == bound_apps_spec(method, path, kind, bound)


@settings(max_examples=400, deadline=None)
@given(
    path=PATHS | st.sampled_from(["/api/webhook/abc", "/api/webhook/x"]),
    registered=st.booleans(),
    domain=st.sampled_from(["telegram_bot", "automation", "mobile_app", "", "netatmo"]),
    limited=st.sampled_from([(), ("telegram_bot",), ("telegram_bot", "netatmo")]),
)
def test_ha_webhooks_lets_in_registered_webhooks_of_the_named_integrations_only(
    path: str, registered: bool, domain: str, limited: tuple[str, ...]
) -> None:
    rules = build_ruleset(
        [preset("ha-webhooks").rule(domains=limited), CERT_RULE], [], {}, ConfigSource("test")
    )
    fields = request_fields(client_ip="192.0.2.1", method="POST", target=path)
    fields.update({"hagate.webhook.registered": registered, "hagate.webhook.domain": domain})
    wanted = registered and (domain in limited if limited else domain != "mobile_app")
    assert (not rules.evaluate(fields).blocked) == wanted
