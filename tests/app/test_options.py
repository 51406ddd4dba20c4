"""The app's options: checked as a whole with the option named, applied to hagate.yaml keeping
everything else (rules, comments), and the start that makes the state on first run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from hagate.app.options import (
    API_LISTEN,
    SUPERVISOR_CORE,
    UPSTREAM,
    apply_options,
    parse_options,
)
from hagate.app.start import prepare, read_options
from hagate.config import load_config, parse_config
from hagate.configedit import insert_rule
from hagate.errors import HagateError
from hagate.state import StateDir
from tests.conftest import run_hagate

RELAY: dict[str, Any] = {
    "hostname": "ha.example.com",
    "mode": "relay",
    "relay": "relay.example.com",
    "connector_token": "hg1.token",
    "relay_fingerprint": "ab" * 32,
    "listen_port": 8443,
    "log_level": "info",
}


def test_relay_options_parse_and_the_relay_gets_its_port() -> None:
    o = parse_options(RELAY)
    assert o.hostname == "ha.example.com" and o.relay is not None
    assert (o.relay.name, o.relay.port) == ("relay.example.com", 443)
    assert parse_options({**RELAY, "relay": "relay.example.com:8443"}).relay.port == 8443  # type: ignore[union-attr]
    o = parse_options({"hostname": "ha.example.com", "mode": "port_forward", "listen_port": 9443})
    assert o.relay is None and o.listen == "0.0.0.0:9443" and o.log_level == "info"


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"hostname": ""}, "option hostname: the public name"),
        ({"hostname": "10.0.0.1"}, "option hostname:"),
        ({"mode": "tunnel"}, "option mode"),
        ({"listen_port": 0}, "option listen_port"),
        ({"listen_port": "8443"}, "option listen_port"),
        ({"log_level": "loud"}, "option log_level"),
        ({"connector_token": ""}, "needs the option(s) connector_token"),
        ({"relay": "", "relay_fingerprint": None}, "relay, relay_fingerprint"),
        ({"relay": "relay.example.com:99999"}, "option relay"),
        ({"hostname": 5}, "option hostname: expected text"),
    ],
)
def test_bad_options_name_the_option(change: dict[str, Any], words: str) -> None:
    with pytest.raises(HagateError, match=words.replace("(", r"\(").replace(")", r"\)")):
        parse_options({**RELAY, **change})


def test_applying_changes_only_the_owned_keys_and_keeps_comments_and_rules(tmp_path: Path) -> None:
    state = tmp_path / "state"
    assert run_hagate("init", "--hostname", "old.example.com", "--upstream",
                      "http://127.0.0.1:8123", state=state).code == 0  # fmt: skip
    text = (state / "hagate.yaml").read_text()
    text = text.replace("rules:\n", "rules:\n  # my own note about the rules\n", 1)
    text += "\naudit:\n  ignore: [some-finding]  # silenced on purpose\n"
    new = apply_options(text, parse_options(RELAY), SUPERVISOR_CORE)
    (state / "supervisor-token").write_text("t")  # what the start writes beside it
    cfg = parse_config(new, str(state / "hagate.yaml"))
    assert (cfg.hostname, cfg.upstream, cfg.listen) == ("ha.example.com", UPSTREAM, "0.0.0.0:8443")
    assert cfg.alerts is not None and cfg.alerts.url == SUPERVISOR_CORE
    assert cfg.home_assistant is not None and cfg.home_assistant.url == SUPERVISOR_CORE
    assert cfg.audit.ignore == ("some-finding",)
    assert "# my own note about the rules" in new and "# silenced on purpose" in new
    assert "# The public name clients use" in new  # the template's comments
    assert "hg1.token" not in new and "ab" * 32 not in new  # secrets stay in the options
    # The same options again: nothing to change.
    assert apply_options(new, parse_options(RELAY), SUPERVISOR_CORE) == new
    # The console in the sidebar: an ingress listener that trusts only the Supervisor.
    assert cfg.admin is not None and cfg.admin.ingress is not None
    assert cfg.admin.ingress.listen == "0.0.0.0:8099"
    assert cfg.admin.ingress.trusted == ("172.30.32.2",)
    # The API for Home Assistant's integration, on the Supervisor's network (set once) ...
    assert cfg.admin.listen == API_LISTEN == "0.0.0.0:8100"
    # ... and an admin listener the owner moved stays where they put it.
    assert new.count(API_LISTEN) == 1
    moved = new.replace(API_LISTEN, '127.0.0.1:9555"  # mine', 1).replace(
        "listen: 127.0.0.1:9555", 'listen: "127.0.0.1:9555', 1
    )
    moved_cfg = parse_config(moved, str(state / "hagate.yaml")).admin
    assert moved_cfg is not None and moved_cfg.listen == "127.0.0.1:9555"
    again = apply_options(moved, parse_options(RELAY), SUPERVISOR_CORE)
    assert '"127.0.0.1:9555"  # mine' in again and API_LISTEN not in again


def test_first_start_makes_the_state_and_later_starts_keep_edits(tmp_path: Path) -> None:
    state = StateDir(tmp_path / "data")
    state.create()
    said = prepare(state, parse_options(RELAY), "supervisor-secret").said
    assert said and "first start" in said[0]
    token = tmp_path / "data" / "supervisor-token"
    assert token.read_text() == "supervisor-secret" and token.stat().st_mode & 0o777 == 0o600
    cfg = load_config(state.config_path)
    assert cfg.hostname == "ha.example.com" and cfg.alerts is not None
    # The person (or the console) adds a rule with the editor; the next start keeps it.
    insert_rule(state.config_path, {"description": "Office", "expression":
                "ip.src in {192.0.2.0/24}", "action": "skip"})  # fmt: skip
    edited = state.config_path.read_text()
    assert "Office" in edited
    assert prepare(state, parse_options(RELAY), "supervisor-secret").said == []
    assert state.config_path.read_text() == edited
    # A new hostname: the keys follow, with a server certificate for it.
    said = prepare(state, parse_options({**RELAY, "hostname": "home.example.org"}), None).said
    assert any("new server certificate" in s for s in said)
    served = x509.load_pem_x509_certificate((state.path / "server.crt").read_bytes())
    names = served.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["home.example.org"]
    assert load_config(state.config_path).hostname == "home.example.org"
    assert "Office" in state.config_path.read_text()


def test_options_file_errors_are_plain(tmp_path: Path) -> None:
    with pytest.raises(HagateError, match="no app options"):
        read_options(tmp_path / "options.json")
    (tmp_path / "options.json").write_text("{not json")
    with pytest.raises(HagateError, match="cannot read the app's options"):
        read_options(tmp_path / "options.json")
    (tmp_path / "options.json").write_text(json.dumps(RELAY))
    assert read_options(tmp_path / "options.json").hostname == "ha.example.com"


def test_the_connection_earlier_versions_wrote_under_alerts_moves_to_the_top_level(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    assert run_hagate("init", "--hostname", "ha.example.com", "--upstream",
                      "http://127.0.0.1:8123", state=state).code == 0  # fmt: skip
    text = (state / "hagate.yaml").read_text() + (
        "\nalerts:\n  home_assistant:\n    url: http://supervisor/core\n"
        "    token_file: supervisor-token\n  repeat_after: 600  # mine\n"
    )
    new = apply_options(text, parse_options(RELAY), SUPERVISOR_CORE)
    (state / "supervisor-token").write_text("t")
    cfg = parse_config(new, str(state / "hagate.yaml"))
    assert cfg.home_assistant is not None and cfg.home_assistant.url == SUPERVISOR_CORE
    assert cfg.alerts is not None and cfg.alerts.url == SUPERVISOR_CORE
    assert cfg.alerts.repeat_after == 600 and "# mine" in new
    assert new.count("token_file: supervisor-token") == 1
