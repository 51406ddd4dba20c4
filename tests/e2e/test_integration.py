"""The Home Assistant integration (custom_components/hagate), loaded from a real Home
Assistant's config folder, against a real hagate (relay -> tunnel -> `hagate connect`):

- it is found as the hagate app announces itself (the Supervisor's part played by a stand-in
  component doing what HA's hassio integration does with a discovery message) and set up by
  confirming; the user step refuses a bad token and knows the gateway is set up already;
- its entities follow real traffic: requests let in and blocked, distinct blocked sources,
  a certificate's last use, the relay connected and then not;
- its services: `enrol_device` answers a working one-time link with its password and QR code,
  `revoke_certificate` really revokes (the next request is refused), and hagate's alert about
  it is in the logbook in plain words;
- a skip-everything rule is a repair issue, gone when the rule is removed.

The same tests run against the newest Home Assistant that installs here (2026.2.3, Python
3.13.5 in a Debian trixie container): see tests/e2e/homeassistant.py."""

from __future__ import annotations

import contextlib
import json
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, sync_playwright

from hagate.configedit import insert_rule
from tests.conftest import run_hagate
from tests.docs import code_blocks, sh_blocks
from tests.e2e.conftest import artifacts
from tests.e2e.homeassistant import NEWEST, PASSWORD, HomeAssistant, versions
from tests.gateway.harness import Gateway, make_gateway
from tests.net import free_port, wait_listening
from tests.tunnel.harness import Relay, start_connector

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
COMPONENT = ROOT / "custom_components" / "hagate"
STAND_IN = Path(__file__).resolve().parent / "stand_ins" / "supervisor_discovery"
RULES = """\
  - description: Require a client certificate
    expression: (not cf.tls_client_auth.cert_verified)
    action: block
"""


@dataclass
class Home:
    ha: HomeAssistant
    g: Gateway
    relay: Relay
    api: str
    token: str
    entry_id: str = ""

    def entity(self, key: str) -> str:
        """The entity id of the entity with unique id `ha.test_<key>`."""
        found = self.entities(lambda k: k == key)
        assert len(found) == 1, (key, found)
        return found[0]

    def entities(self, chosen: Callable[[str], bool]) -> list[str]:
        """The entity ids of the hagate entities whose unique ids (less `ha.test_`) are chosen."""
        return [
            str(e["entity_id"])
            for e in self.ha.ws("config/entity_registry/list")
            if e["platform"] == "hagate" and chosen(e["unique_id"].removeprefix("ha.test_"))
        ]

    def refresh(self, entity_id: str) -> dict[str, Any]:
        """Ask the integration to poll hagate now; the entity's state after it."""
        self.ha.post("/api/services/homeassistant/update_entity", {"entity_id": entity_id})
        state: dict[str, Any] = self.ha.get(f"/api/states/{entity_id}")
        return state

    def until(self, entity_id: str, ok: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        deadline = time.monotonic() + 30
        while True:
            state = self.refresh(entity_id)
            if ok(state):
                return state
            assert time.monotonic() < deadline, state
            time.sleep(0.5)

    def repairs(self) -> list[dict[str, Any]]:
        return [i for i in self.ha.ws("repairs/list_issues")["issues"] if i["domain"] == "hagate"]


@pytest.fixture(scope="module", params=versions())
def home(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Home]:
    tmp = tmp_path_factory.mktemp("integration")
    g = make_gateway(tmp)
    g.upstream.close()
    ha = HomeAssistant(tmp / "ha", free_port(), version=request.param)
    ha.debug = ["custom_components.hagate"]
    cfg = g.state / "hagate.yaml"
    cfg.write_text(cfg.read_text().replace(f"http://127.0.0.1:{g.upstream.port}", ha.url))
    admin = free_port()
    # docs/home-assistant.md, "by hand": the admin listener, a token, the folder copied in.
    doc = "docs/home-assistant.md"
    [listen] = code_blocks(doc, "yaml", "Without the app")
    g.configure(rules=RULES, extra="\n" + listen.replace("9464", str(admin)))
    [[create]] = sh_blocks(doc, "Without the app")
    made = run_hagate(*shlex.split(create.removeprefix("hagate ")), state=g.state)
    assert made.code == 0, made.err
    token = made.out.splitlines()[0].strip()
    [copy] = sh_blocks(doc, "Installing the integration")
    for line in copy:
        line = line.replace("/config", str(ha.config_dir))
        subprocess.run(["bash", "-c", line], cwd=ROOT, check=True)
    g.issue("phone")
    relay = Relay.create(tmp)
    relay.start()
    start_connector(g, [relay], relay.token())
    wait_listening(admin, timeout=30)  # before Home Assistant is told about it
    api = f"http://127.0.0.1:{admin}"
    # The stand-in for the Supervisor's discovery, announcing what the app announces
    # (hagate.app.discovery); and the docs' examples, a script and an automation.
    shutil.copytree(STAND_IN, ha.config_dir / "custom_components" / "supervisor_discovery")
    examples = "".join(code_blocks(doc, "yaml", "Examples"))
    ha.extra = (
        "logbook:\nrepairs:\n"
        "supervisor_discovery:\n  service: hagate\n"
        f"  config:\n    url: {api}\n    token: {token}\n" + examples
    )
    try:
        ha.start()
        ha.onboard(f"https://ha.test:{g.port}")
        # Home Assistant checks what was announced once it has started: wait for that before
        # the connector (and its API) restarts below.
        flow_of_discovery(ha)
        # hagate's alerts into this Home Assistant: the connector restarted with them.
        token_file = tmp / "ha-token"
        token_file.write_text(ha.long_lived_token("hagate alerts") + "\n")
        token_file.chmod(0o600)
        g.configure(
            extra=f"\nalerts:\n  home_assistant:\n    url: {ha.url}\n    token_file: {token_file}\n"
        )
        g.stop()
        start_connector(g, [relay], relay.token())
        wait_listening(admin, timeout=30)
        yield Home(ha, g, relay, api, token)
    finally:
        ha.stop()
        if g.proc is not None:
            g.stop()
        relay.stop()


def screenshots() -> Path:
    shots = artifacts() / "home-assistant"
    shots.mkdir(exist_ok=True)
    return shots


@contextlib.contextmanager
def signed_in(home: Home) -> Iterator[Page]:
    """Home Assistant's own frontend in Chromium, signed in as its owner."""
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        page.goto(home.ha.url + "/")
        page.fill("input[name=username]", "owner")
        page.fill("input[name=password]", PASSWORD)
        page.keyboard.press("Enter")
        page.wait_for_url(
            lambda url: "/auth/" not in url and "auth_callback" not in url, timeout=60_000
        )
        page.wait_for_function("() => localStorage.getItem('hassTokens') !== null")
        try:
            yield page
        finally:
            browser.close()


def let_everyone_in(home: Home) -> str:
    """Add a rule the audit finds high (skips the certificate rule for everyone); the file as
    it was, to put back."""
    config = home.g.state / "hagate.yaml"
    kept = config.read_text()
    rule = {"description": "Let everyone in", "expression": "ip.src in {0.0.0.0/0 ::/0}"}
    insert_rule(config, {**rule, "action": "skip"})
    return kept


def flow_of_discovery(ha: HomeAssistant) -> dict[str, Any]:
    """The flow Home Assistant started for the announced hagate, once it has."""
    deadline = time.monotonic() + 60
    while True:
        flows: list[dict[str, Any]] = [
            f for f in ha.ws("config_entries/flow/progress") if f["handler"] == "hagate"
        ]
        if flows:
            assert len(flows) == 1, flows
            return flows[0]
        assert time.monotonic() < deadline, "the announced hagate was not offered"
        time.sleep(0.5)


def test_found_as_the_app_announces_it_and_set_up_by_confirming(home: Home) -> None:
    flow = flow_of_discovery(home.ha)
    assert flow["context"]["source"] == "hassio"
    assert flow["step_id"] == "hassio_confirm"
    if home.ha.version == NEWEST:  # as the docs show it: discovered, waiting for "Add"
        with signed_in(home) as page:
            page.goto(f"{home.ha.url}/config/integrations/dashboard")
            page.get_by_text("Discovered").first.wait_for(timeout=60_000)
            page.wait_for_timeout(1500)
            page.screenshot(  # the Discovered row only: the rest is the test's own setup
                path=str(screenshots() / "discovered.png"),
                clip={"x": 0, "y": 0, "width": 1280, "height": 372},
            )
    done = home.ha.post(f"/api/config/config_entries/flow/{flow['flow_id']}", {})
    assert done["type"] == "create_entry", done
    assert done["title"] == "ha.test"
    home.entry_id = done["result"]["entry_id"]
    deadline = time.monotonic() + 60
    while (
        states := [
            e["state"] for e in home.ha.get("/api/config/config_entries/entry?domain=hagate")
        ]
    ) != ["loaded"]:
        assert time.monotonic() < deadline, states
        time.sleep(0.5)

    # By hand: a wrong token is refused in words, the right one finds it set up already.
    form = home.ha.post("/api/config/config_entries/flow", {"handler": "hagate"})
    assert form["type"] == "form" and form["step_id"] == "user"
    wrong = home.ha.post(
        f"/api/config/config_entries/flow/{form['flow_id']}",
        {"url": home.api, "token": "hgt_" + "x" * 43},
    )
    assert wrong["errors"] == {"base": "invalid_auth"}
    unreachable = home.ha.post(
        f"/api/config/config_entries/flow/{form['flow_id']}",
        {"url": f"http://127.0.0.1:{free_port()}", "token": home.token},
    )
    assert unreachable["errors"] == {"base": "cannot_connect"}
    again = home.ha.post(
        f"/api/config/config_entries/flow/{form['flow_id']}",
        {"url": home.api, "token": home.token},
    )
    assert again["type"] == "abort" and again["reason"] == "already_configured"


def test_entities_follow_real_traffic(home: Home) -> None:
    let_in = home.entity("let_in_last_hour")
    blocked = home.entity("blocked_last_hour")
    sources = home.entity("blocked_sources_today")
    before = {e: int(home.refresh(e)["state"]) for e in (let_in, blocked, sources)}
    g = home.g
    for _ in range(3):
        assert g.request("/manifest.json", cert="phone").status == 200
    for n in (31, 32):  # two strangers without a certificate
        assert g.request("/", source=g.addr(n)).status == 403
    assert g.request("/", source=g.addr(31)).status == 403
    home.until(let_in, lambda s: int(s["state"]) == before[let_in] + 3)
    assert int(home.refresh(blocked)["state"]) == before[blocked] + 3
    assert int(home.refresh(sources)["state"]) == before[sources] + 2
    assert home.refresh(blocked)["attributes"]["unit_of_measurement"] == "requests"

    last_use = home.until(
        home.entity("certificate_phone_last_use"),
        lambda s: s["state"] not in ("unknown", "unavailable"),
    )
    assert last_use["attributes"]["device_class"] == "timestamp"
    assert last_use["attributes"]["status"] == "valid"
    assert last_use["attributes"]["ip"] and last_use["attributes"]["ip"].startswith("127.")

    [relay] = home.entities(lambda key: key.startswith("relay_"))
    assert (
        home.until(relay, lambda s: s["state"] == "on")["attributes"]["device_class"]
        == "connectivity"
    )


def test_enrol_then_revoke_with_the_alert_in_the_logbook(home: Home) -> None:
    answer = home.ha.post(
        "/api/services/hagate/enrol_device?return_response", {"name": "tablet", "ttl": 600}
    )
    link = answer["service_response"]
    assert link["name"] == "tablet" and link["password"]
    assert link["url"].startswith("https://ha.test")
    assert link["qr"].startswith("data:image/svg+xml")
    path = link["url"].split("ha.test", 1)[1].split("/", 1)[1]
    page = home.g.request("/" + path)  # the link opens for a device without a certificate
    assert page.status == 200, page.status

    started = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(time.time() - 5))
    assert home.g.request("/manifest.json", cert="phone").status == 200
    home.ha.post("/api/services/hagate/revoke_certificate", {"name": "phone"})
    assert home.g.request("/manifest.json", cert="phone").status == 403  # the next one refused
    listed = run_hagate("cert", "list", "--json", state=home.g.state)
    assert "revoked" in listed.out
    state = home.until(
        home.entity("certificate_phone_last_use"), lambda s: s["attributes"]["status"] == "revoked"
    )
    assert state["attributes"]["status"] == "revoked"

    # hagate's alert (a revoked certificate presented) in the logbook, in its own words.
    deadline = time.monotonic() + 60
    while True:
        entries = home.ha.get(f"/api/logbook/{started}")
        said = [e for e in entries if e.get("domain") == "hagate"]
        if said:
            break
        assert time.monotonic() < deadline, entries[-5:]
        time.sleep(1)
    assert said[0]["name"] == "hagate (ha.test)"
    assert "the revoked certificate 'phone' was presented from" in said[0]["message"]

    # An unknown certificate: the service fails in hagate's words, nothing else changes.
    failed = home.ha.ws(
        "call_service",
        check=False,
        domain="hagate",
        service="revoke_certificate",
        service_data={"name": "no-such-device"},
    )
    assert not failed["success"]
    assert "hagate did not revoke no-such-device" in failed["error"]["message"]


def test_a_high_finding_is_a_repair_until_it_is_fixed(home: Home) -> None:
    findings = home.entity("high_findings")

    def skipping() -> list[dict[str, Any]]:
        home.refresh(findings)
        return [
            i
            for i in home.repairs()
            if "'Let everyone in'" in i["translation_placeholders"]["problem"]
            and "skips the remaining rules" in i["translation_placeholders"]["problem"]
        ]

    assert skipping() == []
    kept = let_everyone_in(home)
    deadline = time.monotonic() + 30
    while not (found := skipping()):
        assert time.monotonic() < deadline, home.repairs()
        time.sleep(0.5)
    [issue] = found
    assert issue["translation_key"] == "audit_finding"
    assert issue["severity"] == "error"
    assert issue["translation_placeholders"]["fix"].startswith("Remove rule")
    assert issue["translation_placeholders"]["hostname"] == "ha.test"
    # One issue per high finding: the sensor counts them too.
    assert int(home.refresh(findings)["state"]) == len(home.repairs())
    (home.g.state / "hagate.yaml").write_text(kept)  # fixed by hand
    deadline = time.monotonic() + 30
    while skipping():
        assert time.monotonic() < deadline, home.repairs()
        time.sleep(0.5)
    assert int(home.refresh(findings)["state"]) == len(home.repairs())


def test_the_docs_examples_run(home: Home) -> None:
    """docs/home-assistant.md's script shows a new device's link, password and QR code in a
    notification; its automation is loaded."""
    home.ha.post("/api/services/script/enrol_kitchen_tablet", {})
    deadline = time.monotonic() + 30
    while not (notes := home.ha.ws("persistent_notification/get")):
        assert time.monotonic() < deadline
        time.sleep(0.5)
    [note] = [n for n in notes if n["title"] == "Enrol the kitchen tablet"]
    assert "https://ha.test" in note["message"] and "/.hagate/enrol/" in note["message"]
    assert "(password " in note["message"] and "![QR](data:image/svg+xml" in note["message"]
    listed = run_hagate("cert", "list", "--json", state=home.g.state)
    [tablet] = [d for d in json.loads(listed.out) if d["name"] == "kitchen-tablet"]
    assert tablet["status"] == "valid"  # the link's certificate, waiting for its device
    automation = home.ha.get("/api/states/automation.hagate_alert_to_my_phone")
    assert automation["state"] == "on"


def test_screenshots_for_the_docs(home: Home) -> None:
    """The device page and Repairs, as the docs show them (test-artifacts/home-assistant)."""
    if home.ha.version != NEWEST:
        return  # the docs show the newest Home Assistant
    shots = screenshots()
    [device] = [
        d
        for d in home.ha.ws("config/device_registry/list")
        if ["hagate", "ha.test"] in d["identifiers"]
    ]
    kept = let_everyone_in(home)
    try:
        findings = home.entity("high_findings")
        home.until(findings, lambda s: int(s["state"]) > 0)
        with signed_in(home) as page:
            page.goto(f"{home.ha.url}/config/devices/device/{device['id']}")
            page.get_by_text("Let in in the last hour").first.wait_for(timeout=60_000)
            page.wait_for_timeout(1500)
            page.screenshot(path=str(shots / "device.png"))
            page.goto(f"{home.ha.url}/config/repairs")
            page.get_by_text("skips the remaining rules").first.wait_for(timeout=60_000)
            page.wait_for_timeout(1500)
            page.screenshot(path=str(shots / "repairs.png"))
    finally:
        (home.g.state / "hagate.yaml").write_text(kept)


def test_the_relay_gone_reads_as_not_connected(home: Home) -> None:
    [relay] = home.entities(lambda key: key.startswith("relay_"))
    home.relay.stop()
    home.until(relay, lambda s: s["state"] == "off")
