"""One real Home Assistant, and hagate in front of it twice: `hagate serve` (port-forward
mode) and relay -> tunnel -> `hagate connect`. Every e2e test runs through both."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.homeassistant import HomeAssistant
from tests.gateway.harness import Gateway, make_gateway
from tests.geo import write_asn_db
from tests.net import free_port
from tests.tunnel.harness import Relay, start_connector

MODES = {"serve": 0, "relay": 1}  # mode -> the 127.0.<n>.x network its test clients use
IOS_HOME = 4  # 127.0.n.4: ASN 3320, listed in the iOS rule
IOS_ELSEWHERE = 5  # 127.0.n.5: ASN 64500, not listed
RULES = """\
  - description: Amazon refreshes tokens (wider than it should be, as a worst case)
    expression: (http.request.method eq "POST" and http.request.uri.path eq "/auth/token")
    action: skip
  - description: iOS companion app from home
    expression: >-
      (http.user_agent contains "(io.robbie.HomeAssistant; build:"
       and http.user_agent contains "iOS" and ip.geoip.asnum in {3320 6805})
    action: skip
  - description: Require a client certificate
    expression: (not cf.tls_client_auth.cert_verified)
    action: block
"""


@pytest.fixture(scope="package")
def home_assistant(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HomeAssistant]:
    ha = HomeAssistant(tmp_path_factory.mktemp("ha") / "config", free_port())
    ha.start()
    try:
        yield ha
    finally:
        ha.stop()


def gateway_for(home_assistant: HomeAssistant, tmp: Path, mode: str) -> Gateway:
    """A gateway's state in `tmp`, in front of `home_assistant`, its clients on `mode`'s
    network (not started)."""
    g = make_gateway(tmp)
    g.net = MODES[mode]
    g.upstream.close()  # the recording upstream is not used: HA is the upstream here
    cfg = g.state / "hagate.yaml"
    cfg.write_text(
        cfg.read_text().replace(f"http://127.0.0.1:{g.upstream.port}", home_assistant.url)
    )
    return g


@contextlib.contextmanager
def running(g: Gateway, home_assistant: HomeAssistant, tmp: Path, mode: str) -> Iterator[Gateway]:
    """`g` as `hagate serve`, or behind a relay with `hagate connect`, with Home Assistant
    onboarded; stopped after."""
    relay: Relay | None = None
    if mode == "serve":
        g.start()
    else:
        relay = Relay.create(tmp)
        relay.start()
        start_connector(g, [relay], relay.token())
    if not home_assistant.access_token:
        home_assistant.onboard(f"https://ha.test:{g.port}")
    try:
        yield g
    finally:
        g.stop()
        if relay is not None:
            relay.stop()


@pytest.fixture(scope="package", params=list(MODES))
def gateway(
    request: pytest.FixtureRequest,
    home_assistant: HomeAssistant,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Gateway]:
    mode: str = request.param
    tmp = tmp_path_factory.mktemp(f"gateway-{mode}")
    g = gateway_for(home_assistant, tmp, mode)
    cfg = g.state / "hagate.yaml"
    networks = {f"127.0.{n}.{IOS_HOME}/32": 3320 for n in MODES.values()}
    networks |= {f"127.0.{n}.{IOS_ELSEWHERE}/32": 64500 for n in MODES.values()}
    asn_db = write_asn_db(tmp / "asn.mmdb", networks)
    cfg.write_text(cfg.read_text().replace("  asn_db:\n", f"  asn_db: {asn_db}\n"))
    g.configure(rules=RULES, gateway={"idle_timeout": 5})  # short, for the Alexa idle test
    g.issue("phone")
    with running(g, home_assistant, tmp, mode):
        yield g


def artifacts() -> Path:
    path = Path(__file__).resolve().parents[2] / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path
