"""hagate and Home Assistant's parser read every forwarded byte the same way (issue 11).

A seeded corpus of hostile requests (and legal odd ones) goes through the gateway, in
port-forward mode and through relay -> tunnel -> gateway, to aiohttp as Home Assistant runs it.
Every stream HA received is re-parsed with aiohttp's C parser and its pure-Python one, and:
  - both frame it the same way, without error, and as HA's live server did;
  - nothing follows on a connection after an upgrade HA did not switch, or a body cut short;
  - Host is what the rules saw, once, and is also X-Forwarded-Host; X-Forwarded-* are the
    gateway's own; no client without a certificate reaches any path but the skip rule's;
  - every certificate holder who follows a hostile case gets the answer to their own request;
  - the event log lists exactly the requests HA received.

HAGATE_DIFF_MUTATIONS sets how many seeded mutations run on top of the fixed corpus (default
150; `make bench` runs 2,000), HAGATE_DIFF_SEED their seed, HAGATE_DIFF_EXAMPLES the number of
hypothesis examples.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.differential.corpus import (
    HOST,
    SKIP_PATH,
    Case,
    hostile_cases,
    legal_cases,
    mutated_cases,
)
from tests.differential.harness import (
    AIOHTTP_SIDES,
    ATTACKER,
    HOLDER,
    HaSide,
    Outcome,
    Parsed,
    check_events,
    check_outcomes,
    parse_streams,
    point_at,
    run_cases,
    send,
    settled_events,
    victim,
)
from tests.gateway.harness import Gateway, make_gateway
from tests.gateway.test_gateway import AUTH_SKIP_RULES
from tests.tunnel.harness import Relay, start_connector

RULES = AUTH_SKIP_RULES  # a skip rule for SKIP_PATH, then the certificate rule
MUTATIONS = int(os.environ.get("HAGATE_DIFF_MUTATIONS", "150"))
SEED = int(os.environ.get("HAGATE_DIFF_SEED", "20261201"))
EXAMPLES = int(os.environ.get("HAGATE_DIFF_EXAMPLES", "40"))


@pytest.fixture(scope="module", params=AIOHTTP_SIDES)
def ha_side(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HaSide]:
    ha = HaSide(tmp_path_factory.mktemp("ha-side"), request.param)
    try:
        yield ha
    finally:
        ha.stop()


def _gateway(tmp: Path, ha: HaSide, mode: str) -> Iterator[Gateway]:
    g = make_gateway(tmp)
    point_at(g, ha.url, RULES)
    g.issue("phone")
    relay: Relay | None = None
    if mode == "serve":
        g.start()
    else:
        g.net = 1
        relay = Relay.create(tmp)
        relay.start()
        start_connector(g, [relay], relay.token())
    try:
        yield g
    finally:
        g.stop()
        if relay is not None:
            relay.stop()


@pytest.fixture(params=["serve", "relay"])
def gateway(request: pytest.FixtureRequest, ha_side: HaSide, tmp_path: Path) -> Iterator[Gateway]:
    ha_side.reset()
    yield from _gateway(tmp_path, ha_side, request.param)


def report(problems: list[str]) -> str:
    shown = "\n".join(f"- {p}" for p in problems[:25])
    return f"{len(problems)} broken invariants:\n{shown}"


def test_the_corpus_is_read_the_same_way_by_hagate_and_home_assistant(
    gateway: Gateway, ha_side: HaSide
) -> None:
    start = time.time()
    cases = hostile_cases() + legal_cases() + mutated_cases(SEED, MUTATIONS)
    outcomes = run_cases(gateway, cases)
    parsed = parse_streams(ha_side, gateway)
    problems = parsed.problems + check_outcomes(outcomes)
    problems += check_events(parsed.messages, settled_events(gateway, start))
    assert not problems, report(problems)
    # The run did exercise the gateway: cases reached HA, legal ones among them.
    assert len(parsed.messages) > len(legal_cases())
    holders = [m for m in parsed.messages if [gateway.addr(HOLDER)] == _xff(m)]
    assert len(holders) >= len(legal_cases())


def _xff(m: dict[str, object]) -> list[str]:
    return [v for k, v in m["headers"] if k.lower() == "x-forwarded-for"]  # type: ignore[attr-defined]


def test_each_found_disagreement_is_refused_and_leaves_the_next_user_alone(
    gateway: Gateway, ha_side: HaSide
) -> None:
    """The four findings of issue 11, one by one, with what the client and HA see."""
    smuggle = send(gateway, hostile_cases()[0], gateway.addr(ATTACKER))
    assert [r.status for r in smuggle.responses] == [400]
    assert "Upgrade" in smuggle.responses[0].body.decode()
    second = gateway.request(
        SKIP_PATH, method="GET", headers={"Content-Length": "0"}, source=gateway.addr(ATTACKER)
    )
    assert second.status == 200 and b"manifest" not in second.body
    for host in ("ha.test:@evil.test", "ha.test:443@evil.test", "ha.test:99999", "ha.test:443/x"):
        r = gateway.request(SKIP_PATH, headers={"Host": host}, source=gateway.addr(ATTACKER))
        assert r.status == 400, host
    for name in ("Host", "User-Agent", "Authorization", "Cookie"):
        r = gateway.request("/api/", cert="phone", headers={"Connection": f"keep-alive, {name}"})
        assert r.status == 400 and name.lower() in r.body.decode(), name
    # A chunk that goes bad after the head went out: the next user still gets their answer.
    with gateway.connect(source=gateway.addr(ATTACKER)) as sock:
        sock.sendall(
            b"POST /auth/token HTTP/1.1\r\nHost: ha.test\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n"
        )
        time.sleep(0.2)
        sock.sendall(b"zz\r\nGET /manifest.json HTTP/1.1\r\nX-Ignore: ")
        from tests.gateway.harness import read_response

        assert read_response(sock, bytearray()).status == 400
    assert victim(gateway, 1) == ""
    parsed = parse_streams(ha_side, gateway)
    assert not parsed.problems, report(parsed.problems)
    paths = [m["path"] for m in parsed.messages]
    assert "/manifest.json" not in paths and paths.count(SKIP_PATH) == 2
    rows = settled_events(gateway)
    bad_body = [r for r in rows if r["method"] == "POST" and r["status"] == 400]
    assert bad_body and bad_body[0]["action"] == "skip"
    assert "Home Assistant had the head" in bad_body[0]["reason"]
    assert not check_events(parsed.messages, rows)


# -- hypothesis: generated request streams over the same invariants -----------------------

_NAMES = st.sampled_from(
    [
        "Host",
        "Content-Length",
        "Transfer-Encoding",
        "Connection",
        "Upgrade",
        "Expect",
        "X-Forwarded-For",
        "X-Forwarded-Host",
        "Forwarded",
        "User-Agent",
        "Cookie",
        "Authorization",
        "Sec-WebSocket-Key",
        "Sec-WebSocket-Version",
        "TE",
        "Trailer",
        "X-A",
    ]
)
_VALUES = st.one_of(
    st.sampled_from(
        [
            HOST,
            "ha.test:443",
            "ha.test:@evil.test",
            "chunked",
            "identity",
            "0",
            "5",
            "36",
            "close",
            "keep-alive",
            "Upgrade",
            "Host",
            "websocket",
            "h2c",
            "100-continue",
            "13",
            "dGhlIHNhbXBsZSBub25jZQ==",
            "1.2.3.4",
        ]
    ),
    st.text(st.characters(min_codepoint=0, max_codepoint=255), max_size=12),
)
_SEGMENTS = st.sampled_from(
    ["auth", "token", "api", "states", "..", ".", "%2e", "%2e%2e", "%2f", "", ";", "%41", "ws"]
)


@st.composite
def request_bytes(draw: st.DrawFn) -> bytes:
    method = draw(st.sampled_from(["GET", "POST", "HEAD", "PUT", "OPTIONS"]))
    if draw(st.booleans()):
        target = SKIP_PATH
    else:
        target = "/" + "/".join(draw(st.lists(_SEGMENTS, min_size=1, max_size=5)))
    version = draw(st.sampled_from(["HTTP/1.1", "HTTP/1.1", "HTTP/1.0"]))
    headers = [("Host", HOST)] if draw(st.integers(0, 4)) else []
    headers += draw(st.lists(st.tuples(_NAMES, _VALUES), max_size=5))
    head = "\r\n".join([f"{method} {target} {version}", *(f"{k}: {v}" for k, v in headers)])
    body = draw(
        st.sampled_from(
            [b"", b"{}", b"5\r\nhello\r\n0\r\n\r\n", b"GET /manifest.json HTTP/1.1\r\nX: "]
        )
    )
    return (head + "\r\n\r\n").encode("latin-1") + body


@st.composite
def cases(draw: st.DrawFn) -> Case:
    stream = b"".join(draw(st.lists(request_bytes(), min_size=1, max_size=3)))
    cut = draw(st.integers(0, len(stream)))
    parts = [p for p in (stream[:cut], stream[cut:]) if p]
    return Case("hypothesis", parts, cert=draw(st.booleans()))


@pytest.fixture(scope="module")
def served(ha_side: HaSide, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    yield from _gateway(tmp_path_factory.mktemp("hypothesis"), ha_side, "serve")


def test_generated_streams_keep_every_invariant(served: Gateway, ha_side: HaSide) -> None:
    start = time.time()
    everything = Parsed()
    numbers = iter(range(10**6))

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        derandomize=True,
    )
    @given(cases())
    def one(case: Case) -> None:
        ha_side.reset()
        outcome = send(served, case, served.addr(HOLDER if case.cert else ATTACKER))
        outcome.victim = victim(served, next(numbers))
        parsed = parse_streams(ha_side, served)
        problems = parsed.problems + check_outcomes([outcome])
        assert not problems, report(problems) + f"\ncase: {case.parts!r}"
        everything.messages += parsed.messages

    one()
    rows = settled_events(served, start)
    problems = check_events(everything.messages, rows)
    assert not problems, report(problems)
    assert everything.messages  # generated requests did reach HA


def test_outcome_checks_can_fail() -> None:
    """The checks are not vacuous: a legal case answered 400, or a victim given another
    answer, is reported."""
    legal = legal_cases()[0]
    from tests.gateway.harness import Response

    bad = Outcome(legal, responses=[Response(400, "HTTP/1.1 400 Bad Request", b"")])
    assert check_outcomes([bad])
    assert check_outcomes([Outcome(legal, responses=[Response(200, "", b"")], victim="x")])
    assert not check_outcomes([Outcome(legal, responses=[Response(200, "", b"")])])
