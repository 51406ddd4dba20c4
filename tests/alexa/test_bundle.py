"""`hagate alexa bundle`, `rules` and `invoke` as a user runs them."""

from __future__ import annotations

import json
import stat
import zipfile
from pathlib import Path

import pytest

from tests.conftest import Setup

URL = "https://ha.test"


@pytest.fixture
def token_file(setup: Setup) -> Path:
    path = setup.tmp / "token"
    path.write_text("eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjE5MDAwMDAwMDB9.sig\n")
    return path


def bundle(setup: Setup, out: Path, *extra: str | Path) -> str:
    r = setup.run("alexa", "bundle", "--out", out, "--url", URL, *extra)
    assert r.code == 0, r.err
    return r.out


def test_a_bundle_holds_the_handler_its_settings_and_credentials(
    setup: Setup, token_file: Path
) -> None:
    out = setup.tmp / "alexa.zip"
    text = bundle(setup, out, "--long-lived-token-file", token_file)
    with zipfile.ZipFile(out) as z:
        names = sorted(z.namelist())
        settings = json.loads(z.read("hagate_alexa.json"))
        token = z.read("long_lived_token").decode().strip()
        handler = z.read("lambda_function.py")
    assert names == [
        "ca.crt",
        "client.crt",
        "client.key",
        "hagate_alexa.json",
        "lambda_function.py",
        "long_lived_token",
    ]
    assert settings == {
        "credentials": "bundle",
        "deadline": 6.5,
        "token_mode": "long_lived",
        "url": URL,
    }
    assert token == token_file.read_text().strip()
    assert handler == Path("src/hagate/alexa/lambda_function.py").read_bytes()
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    for line in (
        "python3.13",
        "lambda_function.lambda_handler",
        "10 seconds",
        "Environment:  none",
    ):
        assert line in text, text
    listed = setup.run("cert", "list", "--json")
    assert [c["name"] for c in json.loads(listed.out)] == ["alexa"]


def test_the_same_inputs_give_the_same_bytes_and_reuse_the_certificate(
    setup: Setup, token_file: Path
) -> None:
    a, b = setup.tmp / "a.zip", setup.tmp / "b.zip"
    first = bundle(setup, a, "--long-lived-token-file", token_file)
    second = bundle(setup, b, "--long-lived-token-file", token_file)
    assert "issued" in first and "reused" in second
    assert a.read_bytes() == b.read_bytes()


def test_a_revoked_alexa_certificate_is_replaced(setup: Setup, token_file: Path) -> None:
    out = setup.tmp / "alexa.zip"
    bundle(setup, out, "--long-lived-token-file", token_file)
    old = zipfile.ZipFile(out).read("client.crt")
    assert setup.run("cert", "revoke", "alexa").code == 0
    (setup.state / "clients" / "alexa.crt").unlink()
    text = bundle(setup, out, "--long-lived-token-file", token_file)
    assert "issued" in text and zipfile.ZipFile(out).read("client.crt") != old


def test_a_certificate_whose_key_hagate_does_not_hold_is_a_clear_error(
    setup: Setup, token_file: Path
) -> None:
    assert setup.run("cert", "issue", "alexa", "--pem-dir", setup.tmp / "elsewhere").code == 0
    r = setup.run(
        "alexa",
        "bundle",
        "--out",
        setup.tmp / "x.zip",
        "--url",
        URL,
        "--long-lived-token-file",
        token_file,
    )
    assert r.code != 0 and "does not hold its key" in r.err and not (setup.tmp / "x.zip").exists()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--url", "http://ha.test"], "--url must be https"),
        (["--url", "https://ha.test/path"], "--url must be https"),
        (["--url", URL], "needs --long-lived-token-file"),
        (["--url", URL, "--deadline", "9"], "--deadline"),
        (
            ["--url", URL, "--token-mode", "directive", "--long-lived-token-file", "t"],
            "long_lived only",
        ),
    ],
)
def test_bad_options_are_plain_errors(setup: Setup, args: list[str], needle: str) -> None:
    (setup.tmp / "t").write_text("tok\n")
    r = setup.run(
        "alexa",
        "bundle",
        "--out",
        setup.tmp / "x.zip",
        *[str(setup.tmp / a) if a == "t" else a for a in args],
    )
    assert r.code != 0 and needle in r.err, r.err


def test_env_credentials_leave_no_secret_in_the_zip_and_fit_lambdas_limit(
    setup: Setup, token_file: Path
) -> None:
    out = setup.tmp / "alexa.zip"
    text = bundle(setup, out, "--credentials", "env", "--long-lived-token-file", token_file)
    names = zipfile.ZipFile(out).namelist()
    assert sorted(names) == ["hagate_alexa.json", "lambda_function.py"]
    env = dict(
        line.strip().split("=", 1) for line in text.splitlines() if line.startswith("  HAGATE_")
    )
    assert set(env) == {
        "HAGATE_CLIENT_CERT",
        "HAGATE_CLIENT_KEY",
        "HAGATE_CA",
        "HAGATE_LONG_LIVED_TOKEN",
    }
    assert sum(len(k) + len(v) for k, v in env.items()) < 4096
    assert env["HAGATE_CLIENT_KEY"].startswith("-----BEGIN PRIVATE KEY-----\\n")


def test_ssm_credentials_print_the_parameters(setup: Setup) -> None:
    out = setup.tmp / "alexa.zip"
    text = bundle(
        setup,
        out,
        "--credentials",
        "ssm",
        "--token-mode",
        "directive",
        "--ssm-prefix",
        "/home/alexa",
    )
    settings = json.loads(zipfile.ZipFile(out).read("hagate_alexa.json"))
    assert settings["credentials"] == "ssm" and settings["ssm_prefix"] == "/home/alexa"
    for name in ("client_cert", "client_key", "ca"):
        assert f"--name /home/alexa/{name} " in text
    assert "long_lived_token" not in text and "ssm:GetParameters" in text


def test_the_rules_for_each_linking_mode_check_clean_and_stay_narrow(setup: Setup) -> None:
    none = setup.run("alexa", "rules")
    assert none.code == 0 and "No rule needed" in none.out and "expression" not in none.out
    r = setup.run("alexa", "rules", "--token-mode", "directive")
    rules = setup.tmp / "alexa-rules.yaml"
    rules.write_text(r.out)
    check = setup.run("rules", "check", rules)
    assert check.code == 0 and "1 rule(s)" in check.out, check.err
    # Narrow: the method, the exact path and Amazon's networks, never a whole cloud for all paths.
    assert 'http.request.method eq "POST"' in r.out and 'uri.path eq "/auth/token"' in r.out
    assert "{16509 14618}" in r.out


def test_invoke_without_a_bundle_or_request_is_a_plain_error(setup: Setup) -> None:
    r = setup.run("alexa", "invoke", "--bundle", setup.tmp / "none.zip", "--directive", "discover")
    assert r.code != 0 and "no bundle" in r.err
    r = setup.run("alexa", "invoke", "--directive", "turn-on")
    assert r.code != 0 and "entity" in r.err
    r = setup.run("alexa", "invoke")
    assert r.code != 0 and "REQUEST.json or --directive" in r.err
