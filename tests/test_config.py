"""hagate.yaml: every mistake names the key and the line."""

from __future__ import annotations

import pytest

from hagate.config import ConfigError, needs_restart, parse_config, render_template

GOOD = render_template("ha.example.com", "http://127.0.0.1:8123", "0.0.0.0:8443")


def test_template_parses_to_the_documented_defaults() -> None:
    cfg = parse_config(GOOD, "hagate.yaml")
    assert cfg.hostname == "ha.example.com"
    assert cfg.upstream == "http://127.0.0.1:8123"
    assert cfg.listen == "0.0.0.0:8443"
    assert cfg.asn_db is None and cfg.country_db is None
    assert cfg.retention_days == 30
    assert [r["action"] for r in cfg.rules] == ["block"]


def error_of(text: str) -> str:
    with pytest.raises(ConfigError) as e:
        parse_config(text, "hagate.yaml")
    return str(e.value)


def test_unknown_top_level_key_names_key_and_line() -> None:
    msg = error_of(GOOD + "colour: blue\n")
    line = GOOD.count("\n") + 1
    assert msg.startswith(f"hagate.yaml:{line}: colour: unknown key")


def test_unknown_nested_key() -> None:
    text = GOOD.replace("  retention_days: 30", "  retention_days: 30\n  keep: 3")
    line = text.splitlines().index("  keep: 3") + 1
    assert error_of(text).startswith(f"hagate.yaml:{line}: events.keep: unknown key")


def test_wrong_type_names_key_line_and_what_was_found() -> None:
    text = GOOD.replace("retention_days: 30", "retention_days: forever")
    line = text.splitlines().index("  retention_days: forever") + 1
    msg = error_of(text)
    assert msg.startswith(f"hagate.yaml:{line}: events.retention_days: expected a number")
    assert "'forever'" in msg


def test_bad_yaml_names_the_line() -> None:
    text = "hostname: ha.example.com\nupstream: [unclosed\n"
    assert error_of(text).startswith("hagate.yaml:3: invalid YAML") or error_of(text).startswith(
        "hagate.yaml:2: invalid YAML"
    )


def test_duplicate_key() -> None:
    text = "hostname: a.example.com\nhostname: b.example.com\nupstream: http://h:1\n"
    assert error_of(text) == "hagate.yaml:2: hostname: duplicate key"


def test_bad_hostname_in_config() -> None:
    text = GOOD.replace("hostname: ha.example.com", "hostname: not a host")
    line = text.splitlines().index("hostname: not a host") + 1
    assert error_of(text).startswith(f"hagate.yaml:{line}: hostname: bad hostname")


def test_rule_must_be_a_mapping() -> None:
    text = GOOD.replace("rules:\n  - description", "rules:\n  - just text\n  - description")
    line = text.splitlines().index("  - just text") + 1
    assert error_of(text).startswith(f"hagate.yaml:{line}: rules[0]: expected a rule")


def test_missing_required_key_and_empty_file() -> None:
    assert "missing required key 'upstream'" in error_of("hostname: a.example.com\n")
    assert error_of("") == "hagate.yaml: the file is empty"


def test_list_names_follow_cloudflare() -> None:
    assert "list names" in error_of(GOOD + "lists:\n  Bad-Name: [1]\n")


def test_a_reload_names_the_settings_it_cannot_apply() -> None:
    base = "hostname: ha.example.com\nupstream: http://127.0.0.1:8123\n"
    before = parse_config(base + "listen: 0.0.0.0:443\n", "a")
    moved = parse_config(
        "hostname: other.example.com\nupstream: http://127.0.0.1:9000\nlisten: 0.0.0.0:8443\n"
        "events:\n  retention_days: 7\nadmin:\n  listen: 127.0.0.1:9999\n",
        "b",
    )
    assert needs_restart(before, moved) == [
        "hostname",
        "listen",
        "events.retention_days",
        "admin",
    ]
    # Behind connectors nothing listens: the listen setting is not in use.
    assert needs_restart(before, moved, listening=False) == [
        "hostname",
        "events.retention_days",
        "admin",
    ]
    # The upstream, rules and gateway settings are applied by the reload itself.
    tuned = parse_config(base + "listen: 0.0.0.0:443\ngateway:\n  idle_timeout: 5\n", "c")
    assert needs_restart(before, tuned) == []


def test_the_alerts_url_may_carry_a_proxy_path_prefix() -> None:
    """The Supervisor's proxy to Home Assistant's API is http://supervisor/core (its /api/...
    is Home Assistant's): the alerts accept a path prefix of plain segments, nothing else."""
    from hagate.config import validate_api_url
    from hagate.errors import HagateError

    assert validate_api_url("http://supervisor/core") == "http://supervisor/core"
    assert validate_api_url("http://supervisor/core/") == "http://supervisor/core"
    assert validate_api_url("http://127.0.0.1:8123") == "http://127.0.0.1:8123"
    for bad in ("http://supervisor/core?x=1", "http://supervisor/co re", "ftp://x/core",
                "http://supervisor/core#f", "http://u@supervisor/core"):  # fmt: skip
        with pytest.raises(HagateError):
            validate_api_url(bad)
