"""`hagate audit` on a real state directory: exit status, text and JSON, audit.ignore, and
the facts it reads from the event log and the running gateway."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from hagate.config import parse_config
from hagate.errors import HagateError
from hagate.events.store import EVENTS_NAME, append
from hagate.pki.authority import read_inventory
from hagate.state import INVENTORY_NAME, StateDir
from hagate.watch.audit import run_audit
from hagate.watch.status import ProcessStatus, write_status
from tests.conftest import init_state, run_hagate

SKIP_ALL = """\
  - description: Let everyone in
    expression: ssl
    action: skip
  - description: Require a client certificate
    expression: (not cf.tls_client_auth.cert_verified)
    action: block
"""


@pytest.fixture
def state(tmp_path: Path) -> Path:
    path = init_state(tmp_path / "state")
    return path


def set_rules(state: Path, rules: str, extra: str = "") -> None:
    cfg = state / "hagate.yaml"
    cfg.write_text(cfg.read_text().split("\nrules:\n")[0] + "\nrules:\n" + rules + extra)


def audit_json(state: Path) -> tuple[int, dict[str, Any]]:
    r = run_hagate("audit", "--json", "--no-probe", state=state)
    return r.code, json.loads(r.out)


def test_a_fresh_setup_has_nothing_high(state: Path) -> None:
    r = run_hagate("audit", "--no-probe", state=state)
    assert r.code == 0, r.out
    assert r.out.startswith("hagate audit: 0 high, 0 medium, 0 low, 1 info")
    assert "ha-config-unknown" in r.out
    # hagate init wrote every key 0600 in a 0700 directory.
    assert "key-file-open" not in r.out and "state-dir-open" not in r.out


def test_a_high_finding_exits_1_with_the_fix(state: Path) -> None:
    set_rules(state, SKIP_ALL)
    r = run_hagate("audit", "--no-probe", state=state)
    assert r.code == 1
    assert "HIGH    rule-skips-everything:let-everyone-in" in r.out
    assert "HIGH    cert-rule-shadowed" in r.out
    assert "fix: Remove rule 1 ('Let everyone in') from hagate.yaml" in r.out
    code, data = audit_json(state)
    assert code == 1
    assert data["counts"] == {"info": 1, "low": 0, "medium": 0, "high": 2}
    assert [f["id"] for f in data["findings"]][:2] == [
        "cert-rule-shadowed",
        "rule-skips-everything:let-everyone-in",
    ]


def test_audit_ignore_silences_a_finding_by_its_id(state: Path) -> None:
    set_rules(
        state,
        SKIP_ALL,
        "\naudit:\n  ignore:\n    - rule-skips-everything:let-everyone-in\n"
        "    - cert-rule-shadowed\n    - ha-config-unknown\n",
    )
    r = run_hagate("audit", "--no-probe", state=state)
    assert r.code == 0, r.out
    assert "(3 silenced by audit.ignore)" in r.out and "Nothing needs you." in r.out
    _, data = audit_json(state)
    assert data["findings"] == [] and len(data["silenced"]) == 3


def test_a_broken_config_is_a_plain_error(state: Path) -> None:
    cfg = state / "hagate.yaml"
    cfg.write_text(cfg.read_text() + "\naudit:\n  ignore: yes\n")
    r = run_hagate("audit", state=state)
    assert r.code != 0 and "audit.ignore: expected a list of finding ids" in r.err
    assert "hagate.yaml:" in r.err


def row(t: float, **kw: object) -> dict[str, object]:
    return {"time": t, "request_id": "r", "action": "block", **kw}


def test_the_event_log_tells_unused_certificates_revoked_uses_and_quiet_rules(state: Path) -> None:
    assert run_hagate("cert", "issue", "phone", state=state).code == 0
    assert run_hagate("cert", "issue", "tablet", state=state).code == 0
    assert run_hagate("cert", "revoke", "tablet", state=state).code == 0
    records = {r.name: r for r in read_inventory(state / INVENTORY_NAME)}
    set_rules(
        state,
        '  - description: Old app\n    expression: (http.user_agent eq "x" and ip.src in {10.0.0.1})\n'
        "    action: skip\n" + SKIP_ALL.split("\n", 3)[3],
    )
    now = time.time()
    day = 86400.0
    events = state / EVENTS_NAME
    append(
        events, row(now - 40 * day, client_ip="198.51.100.1", rule="Require a client certificate")
    )
    tablet = records["tablet"].sha256
    for minutes in range(1, 138):  # the owner's own uses, before the revocation
        append(events, row(now - 60 * minutes, client_ip="192.0.2.5", cert_sha256=tablet))
    append(
        events,
        row(
            now + 60,  # one presentation since
            client_ip="198.51.100.9",
            cert_name="tablet",
            cert_sha256=tablet,
            rule="Require a client certificate",
        ),
    )
    s = StateDir(state)
    found = {f.id: f for f in run_audit(s, probe=False, now=now + 120).findings}
    revoked_on = time.strftime("%Y-%m-%d", time.gmtime(now))
    assert found["cert-revoked-presented:tablet"].problem.startswith(
        f"The certificate 'tablet', revoked on {revoked_on}, was presented once since "
        f"(last on {revoked_on}, from 198.51.100.9)."
    )
    assert "rule-never-matched:old-app" in found
    assert "rule-never-matched:require-a-client-certificate" not in found
    assert "cert-unused:phone" not in found  # issued today
    later = now + 100 * day  # nobody used the phone's certificate since
    later_ids = {f.id for f in run_audit(s, probe=False, now=later).findings}
    assert "cert-unused:phone" in later_ids
    assert "cert-revoked-presented:tablet" not in later_ids  # that was 100 days ago


def test_the_running_gateways_status_is_read(state: Path) -> None:
    s = StateDir(state)
    write_status(
        s,
        ProcessStatus(
            os.getpid(), "connect", 0.0, time.time(), 5, 2, {"r:443": (False, time.time() - 600)}
        ),
    )
    found = {f.id for f in run_audit(s, probe=False).findings}
    assert {"events-dropped", "relay-down:r:443"} <= found


def test_config_sections_name_their_mistakes() -> None:
    base = "hostname: ha.test\nupstream: http://127.0.0.1:8123\n"
    for text, message in (
        ("admin:\n  listen: nowhere\n", "admin.listen: bad listen address"),
        ("admin:\n  port: 1\n", "admin.port: unknown key"),
        ("alerts:\n  queue: 5\n", "alerts: no Home Assistant to send them to"),
        ("home_assistant:\n  url: http://x:1\n", "home_assistant: missing key 'token_file'"),
        ("home_assistant: {token_file: /nonexistent/t}\n", "no such file"),
        ("home_assistant: {token_file: t, port: 1}\n", "home_assistant.port: unknown key"),
        ("alerts:\n  home_assistant: {url: http://x:1}\n", "missing key 'token_file'"),
        ("alerts:\n  home_assistant: {token_file: /nonexistent/t}\n", "no such file"),
        ("audit:\n  home_assistant_config: /nonexistent.yaml\n", "no such file"),
        ("audit:\n  ignore: [1]\n", "audit.ignore[0]: expected a finding id"),
    ):
        with pytest.raises(HagateError, match=message.replace("[", r"\[").replace("]", r"\]")):
            parse_config(base + text, "/tmp/hagate.yaml")


def test_alert_settings_default_to_the_upstream(tmp_path: Path) -> None:
    token = tmp_path / "t"
    token.write_text("x")
    cfg = parse_config(
        "hostname: ha.test\nupstream: http://127.0.0.1:8123\nalerts:\n  home_assistant:\n"
        "    token_file: t\n  blocked_burst: {requests: 9}\n",
        str(tmp_path / "hagate.yaml"),
    )
    assert cfg.alerts is not None
    assert cfg.alerts.url == "http://127.0.0.1:8123" and cfg.alerts.token_file == str(token)
    assert cfg.alerts.burst_requests == 9 and cfg.alerts.burst_seconds == 60
    assert cfg.alerts.repeat_after == 3600 and cfg.alerts.queue == 100


def test_the_top_level_home_assistant_serves_the_alerts_unless_they_name_their_own(
    tmp_path: Path,
) -> None:
    (tmp_path / "t").write_text("x")
    (tmp_path / "own").write_text("y")
    base = "hostname: ha.test\nupstream: http://127.0.0.1:8123\n"
    top = "home_assistant:\n  url: http://supervisor/core\n  token_file: t\n"
    cfg = parse_config(base + top + "alerts: {}\n", str(tmp_path / "hagate.yaml"))
    assert cfg.home_assistant is not None and cfg.alerts is not None
    assert (cfg.alerts.url, cfg.alerts.token_file) == (
        "http://supervisor/core",
        str(tmp_path / "t"),
    )
    own = "alerts:\n  home_assistant: {token_file: own}\n"
    cfg = parse_config(base + top + own, str(tmp_path / "hagate.yaml"))
    assert cfg.alerts is not None and cfg.alerts.token_file == str(tmp_path / "own")
    assert cfg.alerts.url == "http://127.0.0.1:8123"
    cfg = parse_config(base + top, str(tmp_path / "hagate.yaml"))
    assert cfg.alerts is None and cfg.home_assistant is not None  # the list only, no alerts
