"""`hagate rules check|eval|explain` through the real command."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import Run, Setup
from tests.geo import write_asn_db, write_country_db

UA_IOS = "Home Assistant/2025.4.1 (io.robbie.HomeAssistant; build:2025.1234; iOS 17.5.1)"


# -- eval -----------------------------------------------------------------------------------


def test_eval_prints_true_or_false(hagate: Run) -> None:
    r = hagate("rules", "eval", "ip.src in {10.0.0.0/8}", "--fields", '{"ip.src": "10.1.2.3"}')
    assert (r.code, r.out) == (0, "true\n")
    r = hagate("rules", "eval", "ip.src in {10.0.0.0/8}", "--fields", '{"ip.src": "11.1.2.3"}')
    assert (r.code, r.out) == (0, "false\n")


def test_eval_absent_fields_take_defaults(hagate: Run) -> None:
    assert hagate("rules", "eval", "(not cf.tls_client_auth.cert_verified)").out == "true\n"
    assert hagate("rules", "eval", 'http.user_agent eq ""').out == "true\n"


def test_eval_headers_as_map_of_lists(hagate: Run) -> None:
    fields = json.dumps({"http.request.headers": {"user-agent": ["curl/8"]}})
    r = hagate(
        "rules", "eval", 'http.request.headers["user-agent"][0] contains "curl"', "--fields", fields
    )
    assert r.out == "true\n"


def test_eval_error_is_positioned_on_stderr_with_exit_2(hagate: Run) -> None:
    r = hagate("rules", "eval", 'ip.src contains "x"')
    assert r.code == 2 and r.out == ""
    lines = r.err.splitlines()
    assert lines[0].startswith("error: line 1, column 8:")
    assert lines[2].strip() == "^" * len("contains")


def test_eval_bad_fields_json(hagate: Run) -> None:
    r = hagate("rules", "eval", "ssl", "--fields", "{not json")
    assert r.code != 0 and "not valid JSON" in r.err
    r = hagate("rules", "eval", "ssl", "--fields", '{"ssl": "yes"}')
    assert r.code != 0 and "field ssl is Boolean" in r.err
    r = hagate("rules", "eval", "ssl", "--fields", '{"ip.sorc": "1.2.3.4"}')
    assert r.code != 0 and "did you mean 'ip.src'" in r.err


# -- check ----------------------------------------------------------------------------------


def test_check_config_rules(setup: Setup) -> None:
    r = setup.run("rules", "check")
    assert r.code == 0 and "1 rule(s), all valid" in r.out


def test_check_reports_every_error_with_exit_2(setup: Setup) -> None:
    cfg = setup.state / "hagate.yaml"
    text = cfg.read_text().replace(
        "    action: block\n",
        '    action: block\n  - description: typo\n    expression: ip.src contains "x"\n'
        '    action: log\n  - description: ua\n    expression: http.user_agnet eq "x"\n'
        "    action: log\n",
        1,
    )
    cfg.write_text(text)
    r = setup.run("rules", "check")
    assert r.code == 2
    assert r.err.count("hagate.yaml:") == 2
    assert "'contains' does not apply" in r.err and "did you mean 'http.user_agent'" in r.err


def test_check_yaml_file_and_txt_file(hagate: Run, tmp_path: Path) -> None:
    good = tmp_path / "rules.yaml"
    good.write_text("- {description: a, expression: ssl, action: log}\n")
    assert hagate("rules", "check", good).code == 0
    txt = tmp_path / "rules.txt"
    txt.write_text(
        "# one per line\n(not cf.tls_client_auth.cert_verified)\n\n"
        "ip.src in {10.0.0.0/8}\nhttp.host eq 5\n"
    )
    r = hagate("rules", "check", txt)
    assert r.code == 2
    assert f"{txt}:5: line 1, column 14: expected a string" in r.err
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("- description: a\n  expression: ssl and\n  action: log\n")
    r = hagate("rules", "check", bad_yaml)
    assert r.code == 2 and f"{bad_yaml}:2:" in r.err and "expected a field" in r.err


def test_check_broken_config_exits_2(setup: Setup) -> None:
    (setup.state / "hagate.yaml").write_text("hostname: [\n")
    r = setup.run("rules", "check")
    assert r.code == 2 and "invalid YAML" in r.err


# -- explain --------------------------------------------------------------------------------


def test_explain_default_rule_with_and_without_certificate(setup: Setup) -> None:
    assert setup.run("cert", "issue", "phone").code == 0
    r = setup.run("rules", "explain", "--ip", "203.0.113.7")
    assert r.code == 0
    assert (
        "MATCH" in r.out
        and 'Decision: BLOCK (403) by rule 1 "Require a client certificate"' in r.out
    )
    r = setup.run("rules", "explain", "--ip", "203.0.113.7", "--cert", "phone")
    assert "Decision: ALLOW" in r.out and "certificate phone (valid)" in r.out
    assert setup.run("cert", "revoke", "phone").code == 0
    r = setup.run("rules", "explain", "--ip", "203.0.113.7", "--cert", "phone")
    assert "Decision: BLOCK" in r.out and "(revoked)" in r.out


def test_explain_uses_geoip_for_the_ios_rule(setup: Setup) -> None:
    asn_db = write_asn_db(
        setup.tmp / "asn.mmdb", {"203.0.113.0/24": 3320, "198.51.100.0/24": 64500}
    )
    country_db = write_country_db(setup.tmp / "country.mmdb", {"203.0.113.0/24": ("DE", "EU")})
    cfg = setup.state / "hagate.yaml"
    text = (
        cfg.read_text()
        .replace("  asn_db:\n", f"  asn_db: {asn_db}\n")
        .replace("  country_db:\n", f"  country_db: {country_db}\n")
    )
    text = text.replace(
        "rules:\n",
        """rules:
  - description: iOS companion app from home
    expression: >-
      (http.user_agent contains "(io.robbie.HomeAssistant; build:"
       and http.user_agent contains "iOS" and ip.geoip.asnum in {3320 6805})
    action: skip
""",
        1,
    )
    cfg.write_text(text)
    assert setup.run("rules", "check").code == 0
    r = setup.run("rules", "explain", "--ip", "203.0.113.7", "--ua", UA_IOS)
    assert "(AS3320, DE)" in r.out
    assert 'Decision: ALLOW (skip rule 1 "iOS companion app from home")' in r.out
    assert "not reached" in r.out
    r = setup.run("rules", "explain", "--ip", "198.51.100.7", "--ua", UA_IOS)
    assert "(AS64500)" in r.out and "Decision: BLOCK (403) by rule 2" in r.out


def test_explain_mistakes(setup: Setup, hagate: Run, tmp_path: Path) -> None:
    r = setup.run("rules", "explain", "--ip", "not-an-ip")
    assert r.code != 0 and "is not an IP address" in r.err
    r = setup.run("rules", "explain", "--ip", "10.0.0.1", "--cert", "nobody")
    assert r.code != 0 and "no certificate named" in r.err
    r = setup.run("rules", "explain", "--ip", "10.0.0.1", "--header", "nocolon")
    assert r.code != 0 and "NAME:VALUE" in r.err
    r = hagate("rules", "explain", "--ip", "10.0.0.1", state=tmp_path / "none")
    assert r.code != 0 and "run hagate init first" in r.err
