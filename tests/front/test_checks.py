"""The pure parts around fronts: the audit's judgement of the event log's addresses, the
trusted list in hagate.yaml and on the relay's command line, and who is trusted."""

from __future__ import annotations

from pathlib import Path

import pytest

from hagate.config import ConfigError, parse_config
from hagate.front.accept import parse_networks, trusts
from hagate.watch.frontcheck import AT_LEAST, judge_sources, local_address
from tests.conftest import run_hagate

BASE = "hostname: ha.example.com\nupstream: http://127.0.0.1:8123\n"


@pytest.mark.parametrize("front", ["127.0.0.1", "192.168.1.20", "100.100.1.1", "fd7a:115c::1"])
def test_many_requests_from_one_local_address_are_a_front_without_proxy_protocol(
    front: str,
) -> None:
    [finding] = judge_sources([front] * AT_LEAST)
    assert finding.id == "front-without-proxy-protocol" and finding.severity.label == "high"
    assert front in finding.problem and f"trusted: [{front}/" in finding.fix


@pytest.mark.parametrize(
    "recent",
    [
        ["127.0.0.1"] * (AT_LEAST - 1),  # too few to say
        ["127.0.0.1"] * AT_LEAST + ["127.0.0.2"],  # two clients
        ["93.184.216.34"] * 500,  # one public address: one person, no front
        [],
    ],
)
def test_no_finding_without_the_sign(recent: list[str]) -> None:
    assert judge_sources(recent) == []


def test_local_addresses() -> None:
    assert local_address("10.1.2.3") and local_address("::1") and local_address("169.254.1.1")
    assert not local_address("8.8.8.8") and not local_address("not an address")


def test_trust_by_network_and_for_ipv4_mapped_peers() -> None:
    nets = parse_networks(["10.0.0.0/8", "2001:db8::/32", "127.0.0.9"])
    assert trusts(nets, "10.9.9.9") and trusts(nets, "2001:db8::5") and trusts(nets, "127.0.0.9")
    assert trusts(nets, "::ffff:10.1.1.1")  # a dual-stack socket's view of an IPv4 front
    assert not trusts(nets, "11.0.0.1") and not trusts(nets, "127.0.0.1")
    assert not trusts((), "10.9.9.9")


def test_hagate_yaml_proxy_protocol_errors_name_the_key_and_line() -> None:
    cfg = parse_config(
        BASE + "gateway:\n  proxy_protocol:\n    trusted: [127.0.0.1, 10.0.0.0/8]\n", "h.yaml"
    )
    assert [str(n) for n in cfg.gateway.proxy_trusted] == ["127.0.0.1/32", "10.0.0.0/8"]
    assert parse_config(BASE, "h.yaml").gateway.proxy_trusted == ()
    cases = {
        "  proxy_protocol:\n    trusted: [nope]\n": "h.yaml:5: gateway.proxy_protocol.trusted[0]",
        "  proxy_protocol:\n    trusted: []\n": "expected a list of addresses",
        "  proxy_protocol:\n    trusted: 10.0.0.1\n": "expected a list of addresses",
        "  proxy_protocol:\n    trusted: [8]\n": "expected an address or CIDR, got",
        "  proxy_protocol: {}\n": "missing key 'trusted'",
        "  proxy_protocol:\n    trusted: [127.0.0.1]\n    v2_only: true\n": "unknown key",
    }
    for text, words in cases.items():
        with pytest.raises(ConfigError, match=words.replace("[", r"\[")):
            parse_config(BASE + "gateway:\n" + text, "h.yaml")


def test_relay_run_refuses_a_bad_front_plainly(tmp_path: Path) -> None:
    state = tmp_path / "relay"
    assert run_hagate("relay", "init", "--hostname", "relay.test", state=state).code == 0
    r = run_hagate(
        "relay", "run", "--listen", "127.0.0.1:1", "--proxy-protocol-from", "10.0.0/8x",
        state=state,
    )  # fmt: skip
    assert r.code == 2 and "--proxy-protocol-from" in r.err and "10.0.0/8x" in r.err
    assert "Traceback" not in r.err
