"""The webhooks Home Assistant itself registered, let in without a certificate (issue 27):
a real Home Assistant with automations on webhook triggers, hagate with a home_assistant
connection and the ha-webhooks preset."""

from __future__ import annotations

import json
import os
import shlex
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from tests.conftest import run_hagate
from tests.docs import code_blocks, sh_blocks
from tests.e2e.homeassistant import HomeAssistant
from tests.gateway.harness import Gateway, make_gateway
from tests.net import free_port

OUTSIDE = "outside-" + os.urandom(8).hex()  # local_only: false, POST and PUT
LOCAL = "local-" + os.urandom(8).hex()  # local_only: true: must stay blocked
GONE = "gone-" + os.urandom(8).hex()  # removed while hagate runs
AUTOMATIONS = """\
- id: outside
  alias: Outside hook
  triggers:
    - trigger: webhook
      webhook_id: {outside}
      local_only: false
      allowed_methods: [POST, PUT]
  actions:
    - action: input_boolean.toggle
      target: {{entity_id: input_boolean.porch_light}}
- id: local
  alias: Local hook
  triggers:
    - trigger: webhook
      webhook_id: {local}
      local_only: true
  actions:
    - action: input_boolean.toggle
      target: {{entity_id: input_boolean.kitchen_light}}
"""
GONE_AUTOMATION = """\
- id: gone
  alias: Soon gone
  triggers:
    - trigger: webhook
      webhook_id: {gone}
      local_only: false
  actions: []
"""
AWAY = "127.0.0.9"
DOC = "docs/bound-apps.md"
SECTION = "Webhooks Home Assistant registered"


@dataclass
class Home:
    ha: HomeAssistant
    gateway: Gateway


def write_automations(ha: HomeAssistant, with_gone: bool) -> None:
    text = AUTOMATIONS.format(outside=OUTSIDE, local=LOCAL)
    if with_gone:
        text += GONE_AUTOMATION.format(gone=GONE)
    (ha.config_dir / "automations.yaml").write_text(text)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Home]:
    tmp = tmp_path_factory.mktemp("webhooks")
    ha = HomeAssistant(tmp / "ha", free_port(), extra="automation: !include automations.yaml\n")
    ha.config_dir.mkdir(parents=True)
    write_automations(ha, with_gone=True)
    ha.start()
    g = make_gateway(tmp)
    g.upstream.close()
    cfg = g.state / "hagate.yaml"
    cfg.write_text(cfg.read_text().replace(f"http://127.0.0.1:{g.upstream.port}", ha.url))
    try:
        ha.onboard(f"https://ha.test:{g.port}")
        token = g.state / "ha-token.txt"
        token.write_text(ha.long_lived_token("hagate webhooks") + "\n")
        token.chmod(0o600)
        # As docs/bound-apps.md says: the connection, then the preset.
        add, _show = sh_blocks(DOC, SECTION)[0]
        refused = run_hagate(*shlex.split(add)[1:], state=g.state)
        assert refused.code != 0 and "no home_assistant section" in refused.err
        [connection] = code_blocks(DOC, "yaml", SECTION)
        cfg.write_text(cfg.read_text() + "\n" + connection)
        added = run_hagate(*shlex.split(add)[1:], state=g.state)
        assert added.code == 0, added.err
        g.issue("phone")
        g.start()
        yield Home(ha, g)
    finally:
        if g.proc is not None:
            g.stop()
        ha.stop()


def hook(g: Gateway, webhook_id: str, method: str = "POST") -> int:
    body = b"{}" if method != "GET" else b""
    headers = {"Content-Type": "application/json"} if body else {}
    return g.request(f"/api/webhook/{webhook_id}", None, method, headers, body, AWAY).status


def until_status(check: Callable[[], int], want: int, timeout: float = 10) -> int:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got == want or time.monotonic() > deadline:
            return got
        time.sleep(0.2)


def test_registered_webhooks_get_in_without_a_certificate_and_nothing_else(home: Home) -> None:
    g, ha = home.gateway, home.ha
    before = ha.state("input_boolean.porch_light")
    # The list is fetched at start: the outside hook gets in (from anywhere, no certificate).
    assert until_status(lambda: hook(g, OUTSIDE), 200) == 200
    deadline = time.monotonic() + 10
    while ha.state("input_boolean.porch_light") == before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ha.state("input_boolean.porch_light") != before  # the automation ran
    assert hook(g, OUTSIDE, "PUT") == 200
    assert hook(g, OUTSIDE, "GET") == 403  # a method it does not allow
    assert hook(g, LOCAL) == 403  # local_only: Home Assistant keeps it for the LAN
    assert hook(g, "not-" + OUTSIDE) == 403
    assert g.request("/api/", None, "GET", source=AWAY).status == 403
    rows = [e for e in g.events() if e["client_ip"] == AWAY and e["path"] != "/api/"]
    let_in = [e for e in rows if e["status"] == 200]
    assert len(rows) >= 5 and all(e["path"] == "/api/webhook/…" for e in rows)  # never the id
    assert all("ha-webhooks" in e["rule"] for e in let_in)
    assert all("a webhook of automation registered" in e["reason"] for e in let_in)
    assert not any(OUTSIDE in json.dumps(e) or LOCAL in json.dumps(e) for e in g.events())
    assert OUTSIDE not in (g.log_path.read_text() if g.log_path else "")


def test_a_removed_webhook_stops_getting_in_after_the_next_refresh(home: Home) -> None:
    g, ha = home.gateway, home.ha
    assert until_status(lambda: hook(g, GONE), 200) == 200
    write_automations(ha, with_gone=False)
    ha.post("/api/services/automation/reload", {})
    assert g.proc is not None
    g.proc.send_signal(signal.SIGHUP)  # a reload fetches the list again
    assert until_status(lambda: hook(g, GONE), 403) == 403
    assert hook(g, OUTSIDE) == 200


def test_the_preset_limited_to_named_integrations(home: Home) -> None:
    _add, show = sh_blocks(DOC, SECTION)[0]
    r = run_hagate(*shlex.split(show)[1:])
    assert r.code == 0 and 'hagate.webhook.domain in {"telegram_bot"}' in r.out
    bad = run_hagate("rules", "preset", "show", "ha-webhooks", "--domain", "Telegram Bot")
    assert bad.code != 0 and "not an integration's domain" in bad.err
    assert "Traceback" not in bad.err


def test_with_home_assistant_unreachable_the_last_list_serves_and_the_audit_says_stale(
    home: Home,
) -> None:
    g, ha = home.gateway, home.ha
    ha.stop()
    assert g.proc is not None
    g.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 20
    status: dict[str, object] = {}
    while time.monotonic() < deadline:
        status = json.loads((g.state / "webhooks.json").read_text())
        if status.get("error"):
            break
        time.sleep(0.2)
    assert "cannot reach Home Assistant" in str(status.get("error")), status
    # The verdict still lets the known hook in (Home Assistant being down, the answer is 502).
    assert hook(g, OUTSIDE) == 502
    assert hook(g, "not-" + OUTSIDE) == 403
    audit = run_hagate("audit", "--json", state=g.state)
    findings = {f["id"]: f for f in json.loads(audit.out)["findings"]}
    assert "webhook-list-stale" in findings, findings.keys()
    assert "cannot reach Home Assistant" in findings["webhook-list-stale"]["problem"]
