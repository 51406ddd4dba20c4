"""The Alexa handler from `hagate alexa bundle`, run as Lambda runs it (python3.13 -I -S,
unpacked, cold then warm), against the real Home Assistant through relay -> tunnel -> gateway.
Every answer the handler builds itself is checked against the ErrorResponse schema."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hagate.alexa.directives import directive
from hagate.alexa.invoke import Invocation, run_bundle
from tests.alexa.helpers import assert_error
from tests.conftest import run_hagate
from tests.e2e.homeassistant import HomeAssistant, find_python313
from tests.gateway.harness import Gateway
from tests.net import free_port

pytestmark = pytest.mark.parametrize("gateway", ["relay"], indirect=True)
KITCHEN = "input_boolean.kitchen_light"


@pytest.fixture(scope="module")
def long_lived(home_assistant: HomeAssistant, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("alexa") / "token"
    path.write_text(home_assistant.long_lived_token("hagate alexa test") + "\n")
    return path


def make_bundle(gateway: Gateway, out: Path, *extra: str | Path, port: int | None = None) -> Path:
    r = run_hagate(
        "alexa",
        "bundle",
        "--out",
        out,
        "--url",
        f"https://ha.test:{port or gateway.port}",
        "--connect-address",
        "127.0.0.1",
        *extra,
        state=gateway.state,
    )
    assert r.code == 0, r.err
    return out


def invoke(bundle: Path, events: list[dict[str, Any]], **kw: Any) -> list[Invocation]:
    results = run_bundle(bundle, events, python=find_python313(), **kw)
    assert all(r.raised is None for r in results), [r.raised for r in results]
    return results


def name(response: dict[str, Any]) -> str:
    return str(response["event"]["header"]["name"])


@pytest.fixture
def bundle(gateway: Gateway, long_lived: Path, tmp_path: Path) -> Path:
    return make_bundle(gateway, tmp_path / "alexa.zip", "--long-lived-token-file", long_lived)


def test_discovery_turn_on_off_and_report_state(
    gateway: Gateway, home_assistant: HomeAssistant, bundle: Path
) -> None:
    results = invoke(
        bundle,
        [
            directive("discover"),
            directive("turn-on", KITCHEN),
            directive("report-state", KITCHEN),
            directive("turn-off", KITCHEN),
        ],
    )
    discovery, on, report, off = (r.response for r in results)
    assert name(discovery) == "Discover.Response"
    ids = {e["endpointId"] for e in discovery["event"]["payload"]["endpoints"]}
    assert "input_boolean#kitchen_light" in ids and "input_boolean#porch_light" in ids
    assert name(on) == "Response" and name(off) == "Response"
    assert name(report) == "StateReport"
    power = [p for p in report["context"]["properties"] if p["name"] == "powerState"]
    assert power and power[0]["value"] == "ON"
    assert home_assistant.state(KITCHEN) == "off"  # the last directive switched it off
    logs = [r.log[0] for r in results]
    assert [entry["reused"] for entry in logs] == [False, True, True, True]
    # One connection for all four: no retry, no new handshake (TLS 1.3 session tickets make a
    # kept socket readable; an answer left open makes http.client refuse the next request).
    assert [entry["retried"] for entry in logs] == [False] * 4
    assert [entry["connect_ms"] is None for entry in logs] == [False, True, True, True]
    assert (
        logs[1]["directive"] == "Alexa.PowerController.TurnOn" and logs[1]["outcome"] == "Response"
    )


def test_turn_on_switches_the_entity_in_home_assistant(
    gateway: Gateway, home_assistant: HomeAssistant, bundle: Path
) -> None:
    invoke(bundle, [directive("turn-on", KITCHEN)])
    assert home_assistant.state(KITCHEN) == "on"
    invoke(bundle, [directive("turn-off", KITCHEN)])
    assert home_assistant.state(KITCHEN) == "off"


def test_directive_mode_takes_the_token_from_the_directive(
    gateway: Gateway, home_assistant: HomeAssistant, tmp_path: Path
) -> None:
    b = make_bundle(gateway, tmp_path / "d.zip", "--token-mode", "directive")
    good, bad = invoke(
        b,
        [
            directive("discover", token=home_assistant.access_token),
            directive("turn-on", KITCHEN, token="not-a-token"),
        ],
    )
    assert name(good.response) == "Discover.Response"
    assert_error(bad.response, "INVALID_AUTHORIZATION_CREDENTIAL")


def test_a_wrong_long_lived_token_is_an_invalid_credential(
    gateway: Gateway, tmp_path: Path
) -> None:
    wrong = tmp_path / "wrong"
    wrong.write_text("eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjQxMDI0NDQ4MDB9.bad\n")
    b = make_bundle(
        gateway, tmp_path / "w.zip", "--long-lived-token-file", wrong, "--cert", "alexa-w"
    )
    (r,) = invoke(b, [directive("turn-on", KITCHEN)])
    assert_error(r.response, "INVALID_AUTHORIZATION_CREDENTIAL")


def test_a_revoked_alexa_certificate_is_unreachable_not_a_bad_credential(
    gateway: Gateway, long_lived: Path, tmp_path: Path
) -> None:
    b = make_bundle(
        gateway, tmp_path / "r.zip", "--long-lived-token-file", long_lived, "--cert", "alexa-old"
    )
    assert run_hagate("cert", "revoke", "alexa-old", state=gateway.state).code == 0
    (r,) = invoke(b, [directive("turn-on", KITCHEN)])
    event = assert_error(r.response, "ENDPOINT_UNREACHABLE")
    assert (
        "hagate refused" in event["payload"]["message"] and "revoked" in event["payload"]["message"]
    )
    assert r.log[0]["reason"] == "gateway 403" and r.ms < 6500


def test_a_stopped_relay_is_unreachable_at_once(
    gateway: Gateway, long_lived: Path, tmp_path: Path
) -> None:
    b = make_bundle(
        gateway, tmp_path / "s.zip", "--long-lived-token-file", long_lived, port=free_port()
    )
    results = invoke(b, [directive("discover"), directive("turn-on", KITCHEN)])
    assert_error(results[0].response, "BRIDGE_UNREACHABLE")
    assert_error(results[1].response, "ENDPOINT_UNREACHABLE")
    assert all(r.ms < 1000 for r in results)


def test_a_gateway_that_accepts_tcp_and_never_answers_hits_the_deadline(
    gateway: Gateway, long_lived: Path, tmp_path: Path
) -> None:
    silent = socket.create_server(("127.0.0.1", 0))
    try:
        b = make_bundle(
            gateway,
            tmp_path / "h.zip",
            "--long-lived-token-file",
            long_lived,
            "--deadline",
            "2",
            port=silent.getsockname()[1],
        )
        (r,) = invoke(b, [directive("turn-on", KITCHEN)])
    finally:
        silent.close()
    assert_error(r.response, "ENDPOINT_UNREACHABLE")
    assert 1900 < r.ms < 2700


def test_a_connection_the_gateway_closed_while_idle_gives_a_normal_answer(
    gateway: Gateway, bundle: Path
) -> None:
    first, second = invoke(
        bundle, [directive("turn-on", KITCHEN), directive("turn-off", KITCHEN)], sleeps=[0, 6.5]
    )  # the gateway's idle_timeout here is 5 s
    assert name(first.response) == "Response" and name(second.response) == "Response"
    assert second.log[0]["reused"] is False and second.log[0]["connect_ms"] is not None


def test_credentials_from_the_environment(
    gateway: Gateway, long_lived: Path, tmp_path: Path
) -> None:
    r = run_hagate(
        "alexa",
        "bundle",
        "--out",
        tmp_path / "e.zip",
        "--url",
        f"https://ha.test:{gateway.port}",
        "--connect-address",
        "127.0.0.1",
        "--credentials",
        "env",
        "--long-lived-token-file",
        long_lived,
        state=gateway.state,
    )
    assert r.code == 0, r.err
    env = dict(
        line.strip().split("=", 1) for line in r.out.splitlines() if line.startswith("  HAGATE_")
    )
    (result,) = invoke(tmp_path / "e.zip", [directive("discover")], env=env)
    assert name(result.response) == "Discover.Response"


@pytest.fixture(scope="module")
def moto_ssm() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def test_credentials_from_ssm_parameter_store(
    gateway: Gateway, long_lived: Path, tmp_path: Path, moto_ssm: str
) -> None:
    import boto3

    r = run_hagate(
        "alexa",
        "bundle",
        "--out",
        tmp_path / "m.zip",
        "--url",
        f"https://ha.test:{gateway.port}",
        "--connect-address",
        "127.0.0.1",
        "--credentials",
        "ssm",
        "--ssm-prefix",
        "/test/alexa",
        "--long-lived-token-file",
        long_lived,
        state=gateway.state,
    )
    assert r.code == 0, r.err
    aws = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ENDPOINT_URL_SSM": moto_ssm,
    }
    ssm = boto3.client(
        "ssm",
        endpoint_url=moto_ssm,
        region_name="eu-west-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    for line in r.out.splitlines():
        if "put-parameter" in line:
            name_ = line.split("--name ")[1].split(" ")[0]
            value = line.split("--value '", 1)[1].rstrip("'")
            ssm.put_parameter(Name=name_, Value=value, Type="SecureString", Overwrite=True)
    boto_path = str(Path(boto3.__file__).resolve().parents[1])  # as Lambda's runtime has boto3
    (result,) = invoke(tmp_path / "m.zip", [directive("discover")], env=aws, sys_path=[boto_path])
    assert name(result.response) == "Discover.Response", result.response
    assert "long-lived" not in json.dumps(result.log)


def test_invoke_prints_each_answer_and_its_timings(gateway: Gateway, bundle: Path) -> None:
    r = run_hagate(
        "alexa",
        "invoke",
        "--bundle",
        bundle,
        "--directive",
        "report-state",
        KITCHEN,
        "--repeat",
        "2",
        state=gateway.state,
    )
    assert r.code == 0, r.err
    assert "#1 cold:" in r.out and "#2 warm:" in r.out and "StateReport" in r.out
    assert "TLS" in r.out.splitlines()[0]
    # The cold start is the import and the handler together: no part longer than the whole.
    cold = re.match(r"#1 cold: ([\d.]+) ms \(import ([\d.]+) ms, handler ([\d.]+) ms\)", r.out)
    assert cold, r.out
    whole, parts = float(cold[1]), float(cold[2]) + float(cold[3])
    assert abs(whole - parts) < 0.2 and float(cold[2]) <= whole and float(cold[3]) <= whole


def test_home_assistants_own_error_responses_pass_through_unchanged(
    gateway: Gateway, bundle: Path
) -> None:
    (r,) = invoke(bundle, [directive("turn-on", "input_boolean.no_such_thing")])
    event = r.response["event"]
    assert event["header"]["namespace"] == "Alexa" and event["header"]["name"] == "ErrorResponse"
    assert event["payload"]["type"] == "NO_SUCH_ENDPOINT"  # HA's type, not one of the handler's
    assert r.log[0]["status"] == 200 and r.log[0]["outcome"] == "ErrorResponse"
    assert "reason" not in r.log[0]
