"""The audit's trust probe and the alerts, against a real Home Assistant of this module's own
(it is restarted here, so it is not the package's shared one).

The alerts are read as Home Assistant delivers them: a websocket subscription to
`hagate_alert`, and, across a restart, an automation that writes each alert into an
input_text, as a household's own automation would.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.conftest import run_hagate
from tests.e2e.homeassistant import HomeAssistant
from tests.gateway.harness import Gateway, make_gateway
from tests.geo import write_asn_db, write_country_db
from tests.net import free_port
from tests.tunnel.harness import Relay, start_connector, wait_connected

HOME = "127.0.0.10"  # AS3320 in DE: where the phone is first used
ROAMING = "127.0.0.11"  # AS64500 in NL: a new network and country for it
SCANNER = "127.0.0.12"  # AS64501 in US: sends blocked requests in a burst
AUTOMATION = """\
input_text:
  last_hagate_alert:
    name: Last hagate alert
    max: 255
automation:
  - alias: Remember hagate alerts
    triggers:
      - trigger: event
        event_type: hagate_alert
        event_data:
          kind: revoked_certificate
    actions:
      - action: input_text.set_value
        target:
          entity_id: input_text.last_hagate_alert
        data:
          value: "{{ trigger.event.data.kind }}:{{ trigger.event.data.subject }}"
"""


@dataclass
class Listener:
    """hagate_alert events as a websocket subscriber to Home Assistant receives them."""

    ha: HomeAssistant
    events: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        from websockets.sync.client import connect

        self._stack = contextlib.ExitStack()
        self.ws = self._stack.enter_context(
            connect(f"ws://127.0.0.1:{self.ha.port}/api/websocket", open_timeout=30)
        )
        json.loads(self.ws.recv())
        self.ws.send(json.dumps({"type": "auth", "access_token": self.ha.access_token}))
        assert json.loads(self.ws.recv())["type"] == "auth_ok"
        self.ws.send(
            json.dumps({"id": 1, "type": "subscribe_events", "event_type": "hagate_alert"})
        )
        assert json.loads(self.ws.recv())["success"]
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            for message in self.ws:
                data = json.loads(message)
                if data.get("type") == "event":
                    self.events.append(data["event"])
        except Exception:
            return

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e["data"] for e in self.events if e["data"].get("kind") == kind]

    def wait(self, kind: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.of(kind)
            if found:
                return found[0]
            time.sleep(0.1)
        raise AssertionError(f"no {kind} alert within {timeout}s; got {self.events}")

    def close(self) -> None:
        self._stack.close()


@dataclass
class Home:
    ha: HomeAssistant
    gateway: Gateway
    relay: Relay
    token: str


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Home]:
    tmp = tmp_path_factory.mktemp("watch")
    ha = HomeAssistant(tmp / "ha", free_port(), extra=AUTOMATION)
    ha.start()
    g = make_gateway(tmp)
    g.upstream.close()
    cfg = g.state / "hagate.yaml"
    cfg.write_text(cfg.read_text().replace(f"http://127.0.0.1:{g.upstream.port}", ha.url))
    asn = write_asn_db(
        tmp / "asn.mmdb", {f"{HOME}/32": 3320, f"{ROAMING}/32": 64500, f"{SCANNER}/32": 64501}
    )
    country = write_country_db(
        tmp / "country.mmdb",
        {f"{HOME}/32": ("DE", "EU"), f"{ROAMING}/32": ("NL", "EU"), f"{SCANNER}/32": ("US", "NA")},
    )
    text = cfg.read_text().replace("  asn_db:\n", f"  asn_db: {asn}\n")
    cfg.write_text(text.replace("  country_db:\n", f"  country_db: {country}\n"))
    relay = Relay.create(tmp)
    relay.start()
    try:
        ha.onboard("https://ha.test/")
        token = ha.long_lived_token("hagate alerts")
        token_file = tmp / "ha-token.txt"
        token_file.write_text(token + "\n")
        token_file.chmod(0o600)
        g.configure(
            extra=(
                "\nhome_assistant:\n"
                f"  url: {ha.url}\n"
                f"  token_file: {token_file}\n"
                "alerts:\n"
                "  blocked_burst: {requests: 5, seconds: 60}\n"
                "  cut_off_after: 2\n"
                "  checks_every: 2\n"
                "audit:\n"
                f"  home_assistant_config: {ha.config_dir / 'configuration.yaml'}\n"
            )
        )
        g.issue("phone")
        g.issue("old")
        run_hagate("cert", "revoke", "old", state=g.state)
        start_connector(g, [relay], relay.token())
        yield Home(ha, g, relay, token)
    finally:
        g.stop()
        relay.stop()
        ha.stop()


def audit(g: Gateway) -> tuple[int, dict[str, dict[str, str]]]:
    r = run_hagate("audit", "--json", state=g.state)
    return r.code, {f["id"]: f for f in json.loads(r.out)["findings"]}


def test_the_trust_probe_passes_when_home_assistant_trusts_the_gateway(home: Home) -> None:
    _, found = audit(home.gateway)
    assert "ha-untrusted-proxy" not in found
    assert "ha-unreachable" not in found
    assert "ha-ip-ban-off" not in found  # the test HA bans after 3 failed logins
    assert "ha-config-unknown" not in found
    assert "relay-down:relay.test:" + str(home.relay.port) not in found
    # The probe asked for a page that needs no login: nothing counts towards a ban.
    assert home.ha.banned() == ""
    assert "Login attempt or request with invalid authentication" not in home.ha.read_log()


def test_a_revoked_certificate_presented_twice_is_one_alert(home: Home) -> None:
    listener = Listener(home.ha)
    try:
        for _ in range(2):
            assert home.gateway.request("/api/", cert="old", source=HOME).status == 403
        alert = listener.wait("revoked_certificate")
        assert alert["subject"] == "old" and alert["certificate"] == "old"
        assert alert["ip"] == HOME and alert["asn"] == 3320 and alert["country"] == "DE"
        assert "revoked" in alert["message"] and alert["hostname"] == "ha.test"
        time.sleep(3)  # a second one would have arrived by now
        assert len(listener.of("revoked_certificate")) == 1
    finally:
        listener.close()


def test_a_certificate_used_from_a_new_country_and_network_is_an_alert(home: Home) -> None:
    listener = Listener(home.ha)
    try:
        assert home.gateway.request("/api/", cert="phone", source=HOME).status == 401
        time.sleep(2)
        assert listener.of("new_location") == []  # its first use is not news
        assert home.gateway.request("/api/", cert="phone", source=ROAMING).status == 401
        alert = listener.wait("new_location")
        assert alert["certificate"] == "phone" and alert["ip"] == ROAMING
        assert "country NL" in alert["message"] and "AS64500" in alert["message"]
    finally:
        listener.close()


def test_a_burst_of_blocked_requests_from_one_source_is_one_alert(home: Home) -> None:
    listener = Listener(home.ha)
    try:
        for _ in range(8):
            assert home.gateway.request("/", source=SCANNER).status == 403
        alert = listener.wait("blocked_burst")
        assert alert["ip"] == SCANNER and alert["asn"] == 64501 and alert["country"] == "US"
        assert alert["rule"] == "Require a client certificate"
        time.sleep(2)
        assert len(listener.of("blocked_burst")) == 1
    finally:
        listener.close()


def test_a_certificate_near_expiry_and_a_high_audit_finding_are_alerts(home: Home) -> None:
    listener = Listener(home.ha)
    try:
        r = run_hagate("cert", "issue", "tablet", "--days", "10", state=home.gateway.state)
        assert r.code == 0, r.err
        (home.gateway.state / "ca.key").chmod(0o644)  # a high finding: the CA's key is open
        expiring = listener.wait("certificate_expiring")
        assert expiring["certificate"] == "tablet" and expiring["subject"] == "client:tablet:14"
        finding = listener.wait("audit_finding")
        assert finding["finding"] == "key-file-open:ca.key" and finding["severity"] == "high"
        assert "chmod 600" in finding["message"]
    finally:
        (home.gateway.state / "ca.key").chmod(0o600)
        listener.close()


def test_the_tunnel_cut_off_and_back_are_alerts(home: Home) -> None:
    listener = Listener(home.ha)
    try:
        home.relay.stop()
        down = listener.wait("tunnel_down", timeout=40)
        assert down["subject"] == "ha.test" and "cut off" in down["message"]
        home.relay.start()
        wait_connected([home.relay], "ha.test", timeout=60)
        up = listener.wait("tunnel_up", timeout=40)
        assert "reachable again" in up["message"]
    finally:
        listener.close()


def test_an_alert_raised_while_home_assistant_is_down_arrives_after_its_restart(
    home: Home,
) -> None:
    home.gateway.issue("stolen")
    run_hagate("cert", "revoke", "stolen", state=home.gateway.state)
    home.ha.stop()
    # Refused by the gateway itself: Home Assistant being down changes nothing for it.
    assert home.gateway.request("/api/", cert="stolen", source=HOME).status == 403
    time.sleep(3)  # the gateway tries, and queues
    db = sqlite3.connect(home.gateway.state / "alerts.sqlite3")
    queued = [json.loads(r[0]) for r in db.execute("SELECT data FROM queue")]
    db.close()
    assert ("revoked_certificate", "stolen") in [(a["kind"], a["subject"]) for a in queued]
    assert home.gateway.err_path is not None
    assert "is unreachable" in home.gateway.err_path.read_text()
    home.ha.start()
    deadline = time.monotonic() + 60
    value = ""
    while time.monotonic() < deadline:
        value = home.ha.state("input_text.last_hagate_alert")
        if value == "revoked_certificate:stolen":
            break
        time.sleep(0.5)
    assert value == "revoked_certificate:stolen"


def test_the_token_never_appears_in_logs_or_events(home: Home) -> None:
    g = home.gateway
    assert g.err_path is not None and g.log_path is not None
    for path in (g.err_path, g.log_path, g.state / "events.sqlite3", g.state / "alerts.sqlite3"):
        assert home.token.encode() not in path.read_bytes(), path


def test_the_trust_probe_finds_a_home_assistant_that_does_not_trust_the_gateway(
    home: Home,
) -> None:
    home.ha.stop()
    home.ha.trusts_proxy = False
    home.ha.start()
    code, found = audit(home.gateway)
    assert code == 1
    assert found["ha-untrusted-proxy"]["severity"] == "high"
    assert "use_x_forwarded_for: true" in found["ha-untrusted-proxy"]["fix"]
    # And what it says is what the household sees: a request through hagate gets 400, with
    # what to change in Home Assistant (the address it sees the gateway at).
    r = home.gateway.request("/api/", cert="phone", source=HOME)
    assert r.status == 400 and r.header("x-hagate-page") == "upstream-untrusted"
    text = r.body.decode()
    assert text.startswith("Home Assistant does not trust the gateway as a proxy\n")
    assert "trusted_proxies: [127.0.0.1]" in text
    page = home.gateway.request("/", cert="phone", source=HOME, headers={"Accept": "text/html"})
    assert page.status == 400 and "<h1>Home Assistant does not trust" in page.body.decode()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        reasons = [e["reason"] for e in home.gateway.events() if e["status"] == 400]
        if len(reasons) >= 2:
            break
        time.sleep(0.2)
    assert reasons[-1] == (
        "Home Assistant does not trust the gateway as a proxy (http: trusted_proxies)"
    )
