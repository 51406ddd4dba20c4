"""The enrolment decisions as pure code: the device a user agent names, the route a target
names (path tricks included), the miss limiter, the gateway verdict."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hagate.enrol.answer import Kind, MissLimiter, loggable, route
from hagate.enrol.pages import enrol_page
from hagate.enrol.platform import Device, Platform, chosen, detect
from hagate.gateway.identity import NO_CERT
from hagate.gateway.verdict import Outcome, judge
from hagate.geoip import Location
from hagate.http1.heads import RequestHead, parse_request_head
from hagate.http1.paths import PathError, normalise_target
from hagate.rules.ruleset import RuleSet

UAS = {
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148": (
        Device.IOS,
        False,
    ),
    "Mozilla/5.0 (iPad; CPU OS 16_0 like Mac OS X) AppleWebKit/605.1.15": (Device.IOS, False),
    "Home Assistant/2024.6 (io.robbie.HomeAssistant; build:2024.6; iOS 17.5.1)": (
        Device.IOS,
        False,
    ),
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 Version/17.4 Safari/605.1.15": (
        Device.MACOS,
        False,
    ),
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/125.0 Mobile Safari/537.36": (
        Device.ANDROID,
        False,
    ),
    "Mozilla/5.0 (Linux; Android 11; SM-A515F) AppleWebKit/537.36 Chrome/120.0 Mobile Safari/537.36": (
        Device.ANDROID,
        True,
    ),
    "Mozilla/5.0 (Linux; Android 9; Moto G) AppleWebKit/537.36 Chrome/100.0 Mobile Safari/537.36": (
        Device.ANDROID,
        True,
    ),
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/125.0 Safari/537.36": (
        Device.WINDOWS,
        False,
    ),
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/125.0 Safari/537.36": (
        Device.LINUX,
        False,
    ),
    "curl/8.5.0": (Device.OTHER, False),
}


@pytest.mark.parametrize(("ua", "want"), UAS.items())
def test_the_user_agent_names_the_device(ua: str, want: tuple[Device, bool]) -> None:
    got = detect(ua)
    assert (got.device, got.legacy) == want


def test_device_option_overrides_the_user_agent_but_keeps_old_androids_legacy() -> None:
    old_android = "Mozilla/5.0 (Linux; Android 10; K) Chrome/100"
    assert chosen("ios", old_android).device is Device.IOS
    assert chosen("android", old_android).legacy
    assert not chosen("android", "curl/8").legacy
    assert chosen("auto", old_android).device is Device.ANDROID
    assert chosen(None, "curl/8").device is Device.OTHER


TOKEN = "A" * 32


def target(raw: str) -> tuple[str, bool]:
    t = normalise_target(raw)
    return t.path, t.as_sent


def test_the_two_paths_the_gateway_answers() -> None:
    assert route("GET", *target(f"/.hagate/enrol/{TOKEN}")).kind is Kind.PAGE
    r = route("GET", *target(f"/.hagate/enrol/{TOKEN}/mobileconfig"))
    assert (r.kind, r.token, r.file) == (Kind.FILE, TOKEN, "mobileconfig")
    assert route("HEAD", *target(f"/.hagate/enrol/{TOKEN}/legacy.p12")).kind is Kind.FILE


@pytest.mark.parametrize(
    "raw",
    [
        f"/x/../.hagate/enrol/{TOKEN}",
        f"/.hagate/./enrol/{TOKEN}",
        f"//.hagate/enrol/{TOKEN}",
        f"/.hagate//enrol/{TOKEN}",
        f"/.hagate/enrol//{TOKEN}",
        f"/%2ehagate/enrol/{TOKEN}",
        f"/.hagate/enrol/%41{TOKEN[1:]}",
        f"/.hagate/%65nrol/{TOKEN}",
        f"/.hagate/enrol/{TOKEN}/.",
        f"/.hagate/enrol/{TOKEN}/x/..",
        f"/.hagate/enrol/{TOKEN}/",
        f"/.hagate/enrol/{TOKEN}/p12/x",
        f"/.hagate/enrol/{TOKEN}/key.pem",
        "/.hagate/enrol/",
        "/.hagate/enrol",
        "/.hagate/",
        "/.hagate",
        "/.hagate/admin",
    ],
)
def test_path_tricks_and_other_paths_get_the_404(raw: str) -> None:
    try:
        path, as_sent = target(raw)
    except PathError:
        return  # refused even earlier, with 400
    assert route("GET", path, as_sent).kind is Kind.NOT_FOUND


def test_a_query_is_not_part_of_any_gateway_path() -> None:
    assert route("GET", f"/.hagate/enrol/{TOKEN}/p12", True, "x=1").kind is Kind.NOT_FOUND


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"])
def test_only_get_and_head(method: str) -> None:
    assert route(method, f"/.hagate/enrol/{TOKEN}", True).kind is Kind.METHOD


@given(st.text(alphabet="/.%2eEhagtnrolAb_-1", max_size=40))
def test_no_target_that_differs_from_its_normal_form_reaches_a_page(raw: str) -> None:
    try:
        t = normalise_target("/" + raw)
    except PathError:
        return
    r = route("GET", t.path, t.as_sent)
    if r.kind is not Kind.NOT_FOUND:
        assert "/" + raw.split("?")[0] == t.path


def test_events_see_nothing_past_the_first_segment() -> None:
    assert loggable(f"/.hagate/enrol/{TOKEN}/p12") == "/.hagate/enrol/…"
    assert loggable(f"/.hagate/x/{TOKEN}") == "/.hagate/x/…"
    assert loggable("/.hagate/admin") == "/.hagate/admin"


def test_misses_are_limited_per_source_and_forgotten() -> None:
    limiter = MissLimiter(limit=3, window=60)
    for i in range(3):
        assert not limiter.blocked("198.51.100.7", now=i)
        limiter.miss("198.51.100.7", now=i)
    assert limiter.blocked("198.51.100.7", now=10)
    assert not limiter.blocked("198.51.100.8", now=10)  # another source is not punished
    assert not limiter.blocked("198.51.100.7", now=70)  # the window passed
    assert "198.51.100.7" not in limiter.misses


def head(raw_target: str, host: str = "ha.test") -> RequestHead:
    return parse_request_head(f"GET {raw_target} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode(), 100)


def block_everything() -> RuleSet:
    from hagate.config import parse_config, render_template
    from hagate.rules.ruleset import ruleset_from_config

    text = render_template("ha.test", "http://127.0.0.1:8123", "0.0.0.0:8443")
    text = (
        text.split("\nrules:\n")[0]
        + '\nrules:\n  - description: all\n    expression: (http.request.uri.path ne "")\n    action: block\n'
    )
    return ruleset_from_config(parse_config(text, "hagate.yaml"))


def test_the_verdict_answers_gateway_paths_before_the_rules_and_after_the_name() -> None:
    rules = block_everything()
    args = (ipaddress.ip_address("203.0.113.9"), 443, Location(), NO_CERT)
    own = judge(head(f"/.hagate/enrol/{TOKEN}"), "ha.test", "ha.test", 0, rules, *args)
    assert own.outcome is Outcome.GATEWAY_PATH
    trick = judge(head(f"/a/../.hagate/enrol/{TOKEN}"), "ha.test", "ha.test", 0, rules, *args)
    assert trick.outcome is Outcome.GATEWAY_PATH  # answered (with a 404), never forwarded
    other = judge(head("/.hagatex"), "ha.test", "ha.test", 0, rules, *args)
    assert other.outcome is Outcome.BLOCK
    wrong = judge(
        head(f"/.hagate/enrol/{TOKEN}", "other.test"), "ha.test", "ha.test", 0, rules, *args
    )
    assert wrong.outcome is Outcome.WRONG_HOST


def test_the_android_page_says_when_the_app_cannot_connect_yet() -> None:
    android = Platform(Device.ANDROID, legacy=False)
    own_ca = enrol_page("t" * 32, "phone", "ha.example", android, "ab" * 32, with_ca=True)
    text = own_ca.decode()
    assert "on this Android device, so it can reach" in text
    assert "The Home Assistant app cannot connect yet" in text
    assert "A public certificate from Let's Encrypt" in text
    assert "the first connection asks which certificate" not in text
    public = enrol_page("t" * 32, "phone", "ha.example", android, None, with_ca=False).decode()
    assert "In the Home Assistant app, the first connection asks which certificate" in public
    assert "cannot connect yet" not in public
    # Nothing refers to a button "below": the download is the first step itself.
    for page in (text, public):
        assert "below" not in page
        assert page.index("Download certificate") < page.index("Install a certificate")
