"""One real Home Assistant and one hagate gateway in front of it, for the e2e tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.homeassistant import HomeAssistant
from tests.gateway.harness import Gateway, make_gateway
from tests.geo import write_asn_db
from tests.net import free_port

# Client addresses: each test that cares has its own, since HA bans by address.
IOS_HOME = "127.0.0.4"  # ASN 3320, listed in the iOS rule
IOS_ELSEWHERE = "127.0.0.5"  # ASN 64500, not listed
RULES = """\
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


@pytest.fixture(scope="package")
def gateway(
    home_assistant: HomeAssistant, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("gateway")
    g = make_gateway(tmp)
    g.upstream.close()  # the recording upstream is not used: HA is the upstream here
    cfg = g.state / "hagate.yaml"
    cfg.write_text(
        cfg.read_text().replace(f"http://127.0.0.1:{g.upstream.port}", home_assistant.url)
    )
    asn_db = write_asn_db(tmp / "asn.mmdb", {f"{IOS_HOME}/32": 3320, f"{IOS_ELSEWHERE}/32": 64500})
    text = cfg.read_text().replace("  asn_db:\n", f"  asn_db: {asn_db}\n")
    cfg.write_text(text)
    g.configure(rules=RULES)
    g.issue("phone")
    g.start()
    home_assistant.onboard(f"https://ha.test:{g.port}")
    try:
        yield g
    finally:
        g.stop()


def artifacts() -> Path:
    path = Path(__file__).resolve().parents[2] / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path
