"""tls.acme in hagate.yaml: defaults, staging, and every mistake named by key and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from hagate.config import (
    LETSENCRYPT,
    LETSENCRYPT_STAGING,
    ConfigError,
    parse_config,
    render_template,
)

BASE = render_template("ha.example.com", "http://127.0.0.1:8123", "0.0.0.0:8443")


def parse(acme: str, name: str = "hagate.yaml") -> object:
    return parse_config(BASE + "tls:\n  acme:\n" + acme, name).acme


def error_of(acme: str) -> str:
    with pytest.raises(ConfigError) as e:
        parse(acme)
    return str(e.value)


def test_no_tls_section_keeps_hagates_own_certificate() -> None:
    assert parse_config(BASE, "hagate.yaml").acme is None
    assert parse_config(BASE + "tls:\n", "hagate.yaml").acme is None


def test_the_template_documents_acme_commented_out() -> None:
    assert "# tls:\n#   acme:\n#     email:" in BASE
    assert "docs/certificates.md" in BASE.split("\n\n")[0]


def test_defaults_to_lets_encrypt_production_and_staging_picks_staging() -> None:
    cfg = parse("    email: me@example.com\n")
    assert cfg.directory == LETSENCRYPT and cfg.email == "me@example.com"  # type: ignore[attr-defined]
    assert parse("    staging: true\n").directory == LETSENCRYPT_STAGING  # type: ignore[attr-defined]
    own = parse("    directory: https://acme.internal/dir\n    staging: true\n")
    assert own.directory == "https://acme.internal/dir"  # type: ignore[attr-defined]


def test_ca_bundle_is_resolved_beside_the_config_and_must_exist(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("x")
    cfg = parse("    ca_bundle: ca.pem\n", str(tmp_path / "hagate.yaml"))
    assert cfg.ca_bundle == str(tmp_path / "ca.pem")  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match=r"tls\.acme\.ca_bundle: no such file"):
        parse("    ca_bundle: missing.pem\n", str(tmp_path / "hagate.yaml"))


@pytest.mark.parametrize(
    ("acme", "message"),
    [
        (
            "    colour: red\n",
            "tls.acme.colour: unknown key (known: directory, email, ca_bundle, staging)",
        ),
        ("    staging: yes please\n", "tls.acme.staging: expected true or false"),
        ("    email: not-an-address\n", "tls.acme.email: bad email address"),
        ("    directory: http://acme.example/dir\n", "tls.acme.directory: bad ACME directory URL"),
        ("    directory: [1]\n", "tls.acme.directory: expected a URL"),
    ],
)
def test_mistakes_name_the_key_and_the_line(acme: str, message: str) -> None:
    text = BASE + "tls:\n  acme:\n" + acme
    line = text.count("\n")
    msg = error_of(acme)
    assert msg.startswith(f"hagate.yaml:{line}: {message}"), msg


def test_unknown_key_beside_acme() -> None:
    with pytest.raises(ConfigError, match=r"tls\.cert: unknown key \(known: acme\)"):
        parse_config(BASE + "tls:\n  cert: x\n", "hagate.yaml")
