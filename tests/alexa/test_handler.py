"""The Alexa handler's decisions, in process: the answer for each failure, and never a raise."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hagate.alexa.directives import directive
from tests.alexa.helpers import assert_error, fresh_handler, is_error
from tests.net import free_port

lf = fresh_handler()


def turn_on(**header: Any) -> dict[str, Any]:
    d = directive("turn-on", "input_boolean.kitchen_light", token="directive-token")
    d["directive"]["header"].update(header)
    return d


def jwt(exp: float) -> str:
    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    return f"{part({'alg': 'HS256'})}.{part({'iss': 'x', 'exp': exp})}.signature"


def test_an_error_echoes_the_correlation_token_and_endpoint_and_is_valid() -> None:
    d = turn_on()["directive"]
    r = lf.error_response(d, lf.Failure("unreachable", "down"))
    event = assert_error(r, "ENDPOINT_UNREACHABLE")
    assert event["header"]["correlationToken"] == d["header"]["correlationToken"]
    assert event["endpoint"] == {"endpointId": "input_boolean#kitchen_light"}  # never its scope
    assert "directive-token" not in json.dumps(r)
    assert event["header"]["messageId"] != d["header"]["messageId"]


def test_without_an_endpoint_the_unreachable_type_is_the_bridge() -> None:
    d = directive("discover")["directive"]
    event = assert_error(
        lf.error_response(d, lf.Failure("unreachable", "down")), "BRIDGE_UNREACHABLE"
    )
    assert "endpoint" not in event and "correlationToken" not in event["header"]


def test_an_accept_grant_failure_is_in_its_own_namespace() -> None:
    d = {
        "header": {
            "namespace": "Alexa.Authorization",
            "name": "AcceptGrant",
            "payloadVersion": "3",
            "messageId": "m",
        },
        "payload": {"grantee": {"type": "BearerToken", "token": "t"}},
    }
    for kind in ("unreachable", "auth", "internal"):
        event = assert_error(lf.error_response(d, lf.Failure(kind, "x")), "ACCEPT_GRANT_FAILED")
        assert event["header"]["namespace"] == "Alexa.Authorization"


@pytest.mark.parametrize("endpoint_id", ["", "a b", "x" * 257, "é", None, 5, ["a"]])
def test_a_malformed_endpoint_id_is_not_echoed(endpoint_id: Any) -> None:
    d = turn_on()["directive"]
    d["endpoint"]["endpointId"] = endpoint_id
    event = assert_error(lf.error_response(d, lf.Failure("unreachable", "x")), "BRIDGE_UNREACHABLE")
    assert "endpoint" not in event


@pytest.mark.parametrize(
    ("status", "headers", "body", "kind", "needle"),
    [
        (
            403,
            {"x-hagate-page": "blocked"},
            b"A client certificate is required\nrevoked\n",
            "unreachable",
            "hagate refused",
        ),
        (
            502,
            {"x-hagate-page": "upstream"},
            b"Home Assistant cannot be reached\n",
            "unreachable",
            "cannot be reached",
        ),
        (
            400,
            {"x-hagate-page": "upstream-untrusted"},
            b"Home Assistant does not trust the gateway as a proxy\nHome Assistant answered "
            b"400 ...\nIn Home Assistant's configuration.yaml, under http:, set "
            b"use_x_forwarded_for: true and trusted_proxies: [127.0.0.1], then restart\n",
            "internal",
            "Home Assistant does not trust the gateway as a proxy: In Home Assistant's "
            "configuration.yaml, under http:, set use_x_forwarded_for: true and "
            "trusted_proxies: [127.0.0.1]",
        ),
        (400, {}, b"400: Bad Request", "internal", "does not trust hagate as a proxy"),
        (403, {}, b"403: Forbidden", "unreachable", "IP ban"),
        (401, {}, b"401: Unauthorized", "auth", "refused the access token"),
        (404, {}, b"404: Not Found", "internal", "alexa: smart_home:"),
        (500, {}, b"500 Internal Server Error", "internal", "500"),
        (200, {}, b"<html>", "internal", "not JSON"),
        (200, {}, b"[1, 2]", "internal", "not an Alexa message"),
    ],
)
def test_each_failed_answer_becomes_its_failure(
    status: int, headers: dict[str, str], body: bytes, kind: str, needle: str
) -> None:
    with pytest.raises(lf.Failure) as e:
        lf._answer(status, headers, body, "token")
    assert e.value.kind == kind and needle in e.value.message


def test_a_401_for_an_expired_token_says_it_expired() -> None:
    with pytest.raises(lf.Failure) as e:
        lf._answer(401, {}, b"", jwt(time.time() - 60))
    assert e.value.kind == "expired"
    with pytest.raises(lf.Failure) as e:
        lf._answer(401, {}, b"", jwt(time.time() + 3600))
    assert e.value.kind == "auth"


def test_home_assistants_own_answers_pass_through_unchanged() -> None:
    ha_error = {
        "event": {
            "header": {
                "namespace": "Alexa",
                "name": "ErrorResponse",
                "messageId": "1",
                "payloadVersion": "3",
            },
            "payload": {"type": "NO_SUCH_ENDPOINT", "message": "x"},
        }
    }
    assert lf._answer(200, {}, json.dumps(ha_error).encode(), "t") == ha_error


def test_the_directive_token_comes_from_the_endpoint_then_the_grantee_then_the_scope(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HAGATE_URL", "https://ha.test")
    monkeypatch.setenv("HAGATE_TOKEN_MODE", "directive")
    s = lf.Settings()

    def scope(token: str) -> dict[str, str]:
        return {"type": "BearerToken", "token": token}

    assert (
        lf._token({"endpoint": {"scope": scope("e")}, "payload": {"grantee": scope("g")}}, s) == "e"
    )
    assert lf._token({"payload": {"grantee": scope("g"), "scope": scope("s")}}, s) == "g"
    assert lf._token({"payload": {"scope": scope("s")}}, s) == "s"
    with pytest.raises(lf.Failure) as e:
        lf._token({"payload": {}}, s)
    assert e.value.kind == "auth"


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({}, "HAGATE_URL"),
        ({"HAGATE_URL": "http://ha.test"}, "HAGATE_URL"),
        ({"HAGATE_URL": "https://ha.test", "HAGATE_TOKEN_MODE": "x"}, "token mode"),
        ({"HAGATE_URL": "https://ha.test", "HAGATE_CREDENTIALS": "x"}, "credentials"),
        ({"HAGATE_URL": "https://ha.test", "HAGATE_DEADLINE": "soon"}, "HAGATE_DEADLINE"),
        ({"HAGATE_URL": "https://ha.test", "HAGATE_CREDENTIALS": "env"}, "HAGATE_CLIENT_CERT"),
    ],
)
def test_a_misconfigured_handler_answers_an_internal_error_that_says_what(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], needle: str
) -> None:
    for name in list(__import__("os").environ):
        if name.startswith("HAGATE_"):
            monkeypatch.delenv(name)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    handler = fresh_handler()
    event = assert_error(handler.lambda_handler(turn_on(), None), "INTERNAL_ERROR")
    assert needle in event["payload"]["message"]


def test_the_log_line_says_what_happened_and_carries_no_secret(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HAGATE_URL", "https://ha.test")
    monkeypatch.setenv("HAGATE_CREDENTIALS", "env")
    monkeypatch.setenv("HAGATE_CLIENT_CERT", "-----BEGIN CERTIFICATE-----\nsecret-cert")
    monkeypatch.setenv("HAGATE_CLIENT_KEY", "-----BEGIN PRIVATE KEY-----\nsecret-key")
    handler = fresh_handler()
    assert_error(handler.lambda_handler(turn_on(), None), "INTERNAL_ERROR")
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["directive"] == "Alexa.PowerController.TurnOn"
    assert line["endpoint"] == "input_boolean#kitchen_light"
    assert line["outcome"] == "INTERNAL_ERROR" and "total_ms" in line
    assert "secret" not in json.dumps(line) and "directive-token" not in json.dumps(line)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)
_headers = st.fixed_dictionaries(
    {},
    optional={
        "namespace": st.sampled_from(["Alexa", "Alexa.Authorization", "Alexa.Discovery"]) | _json,
        "name": st.sampled_from(["AcceptGrant", "TurnOn", "Discover"]) | _json,
        "payloadVersion": st.sampled_from(["3", "2"]) | _json,
        "correlationToken": st.text(max_size=5) | _json,
        "messageId": _json,
    },
)
_events = st.one_of(
    _json,
    st.fixed_dictionaries(
        {
            "directive": st.fixed_dictionaries(
                {"header": _headers},
                optional={
                    "endpoint": st.fixed_dictionaries(
                        {}, optional={"endpointId": st.text(max_size=6) | _json, "scope": _json}
                    )
                    | _json,
                    "payload": _json,
                },
            )
        }
    ),
)


@settings(max_examples=300, deadline=None)
@given(_events)
def test_any_event_gets_a_valid_answer_and_never_a_raise(event: Any) -> None:
    """Pointed at a closed port, so every well-formed directive ends unreachable, quickly."""
    import os

    os.environ.update(
        HAGATE_URL=f"https://127.0.0.1:{PORT}",
        HAGATE_CREDENTIALS="env",
        HAGATE_TOKEN_MODE="directive",
        HAGATE_CLIENT_CERT=CERT,
        HAGATE_CLIENT_KEY=KEY,
    )
    try:
        response = lf.lambda_handler(event, None)
    finally:
        for k in (
            "HAGATE_URL",
            "HAGATE_CREDENTIALS",
            "HAGATE_TOKEN_MODE",
            "HAGATE_CLIENT_CERT",
            "HAGATE_CLIENT_KEY",
        ):
            os.environ.pop(k, None)
    assert is_error(response), response


PORT = free_port()


def _pem_pair() -> tuple[str, str]:
    from hagate.pki import certs

    ca = certs.create_ca("test")
    issued = certs.issue_client(ca, "alexa", 30)
    return certs.cert_pem(issued.cert).decode(), certs.key_pem(issued.key).decode()


CERT, KEY = _pem_pair()
