"""The CA through the real `hagate` command, checked with real openssl, pk12util and curl."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from tests.conftest import Run, Setup
from tests.net import free_port, wait_listening


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def openssl(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["openssl", *map(str, args)], capture_output=True, text=True, check=check, timeout=60
    )


def issue(s: Setup, name: str, *extra: str) -> Path:
    p12 = s.tmp / f"{name}.p12"
    r = s.run(
        "cert",
        "issue",
        name,
        "--p12",
        p12,
        "--password-file",
        s.password_file,
        "--pem-dir",
        s.tmp / "pem",
        *extra,
    )
    assert r.code == 0, r.err
    return p12


# -- init ---------------------------------------------------------------------------------


def test_init_creates_ca_server_cert_and_config(setup: Setup) -> None:
    s = setup.state
    assert mode(s) == 0o700
    assert mode(s / "ca.key") == 0o600 and mode(s / "server.key") == 0o600
    ca = x509.load_pem_x509_certificate((s / "ca.crt").read_bytes())
    public = ca.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert public.curve.name == "secp256r1"
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    years = (ca.not_valid_after_utc - ca.not_valid_before_utc).days
    assert 3649 <= years <= 3651
    server = x509.load_pem_x509_certificate((s / "server.crt").read_bytes())
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["ha.test"]
    eku = server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku
    assert (server.not_valid_after_utc - server.not_valid_before_utc).days == 397
    assert openssl("verify", "-CAfile", s / "ca.crt", s / "server.crt").returncode == 0
    text = (s / "hagate.yaml").read_text()
    assert "# " in text  # commented for humans
    for key in (
        "hostname:",
        "upstream:",
        "listen:",
        "geoip:",
        "asn_db:",
        "country_db:",
        "events:",
        "retention_days:",
        "rules:",
    ):
        assert key in text
    assert "(not cf.tls_client_auth.cert_verified)" in text
    from hagate.config import load_config

    cfg = load_config(s / "hagate.yaml")
    assert cfg.hostname == "ha.test" and cfg.listen == "0.0.0.0:8443"
    assert cfg.rules == [
        {
            "description": "Require a client certificate",
            "expression": "(not cf.tls_client_auth.cert_verified)",
            "action": "block",
        }
    ]


def test_init_again_refuses_and_keeps_the_ca(setup: Setup) -> None:
    before = (setup.state / "ca.key").read_bytes()
    r = setup.run("init", "--hostname", "other.test", "--upstream", "http://127.0.0.1:8123")
    assert r.code != 0
    assert "already" in r.err and r.err.count("\n") == 1
    assert (setup.state / "ca.key").read_bytes() == before


def test_state_dir_from_environment_and_xdg_default(tmp_path: Path) -> None:
    import sys

    env = {**os.environ, "HAGATE_STATE_DIR": str(tmp_path / "env-state")}
    args = ["init", "--hostname", "ha.test", "--upstream", "http://127.0.0.1:8123"]
    subprocess.run(
        [sys.executable, "-m", "hagate", *args], env=env, check=True, capture_output=True
    )
    assert (tmp_path / "env-state" / "ca.crt").exists()
    env = {k: v for k, v in os.environ.items() if k != "HAGATE_STATE_DIR"}
    env["XDG_DATA_HOME"] = str(tmp_path / "xdg")
    subprocess.run(
        [sys.executable, "-m", "hagate", *args], env=env, check=True, capture_output=True
    )
    assert (tmp_path / "xdg" / "hagate" / "ca.crt").exists()


# -- issuing and bundles ------------------------------------------------------------------


def test_issued_certificate_has_the_extensions_clients_require(setup: Setup) -> None:
    issue(setup, "phone")
    cert = x509.load_pem_x509_certificate((setup.tmp / "pem" / "phone.crt").read_bytes())
    ca = x509.load_pem_x509_certificate((setup.state / "ca.crt").read_bytes())
    assert cert.subject.rfc4514_string().startswith("CN=phone")
    assert cert.issuer == ca.subject  # signed directly by the root
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and not bc.value.ca
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.digital_signature and not ku.key_cert_sign
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ca_ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ca_ski.digest and ski.digest
    assert 0 < cert.serial_number < 2**159
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days == 825


@pytest.mark.parametrize("legacy", [False, True], ids=["modern", "legacy"])
def test_openssl_reads_bundle_and_verifies_certificate(setup: Setup, legacy: bool) -> None:
    p12 = issue(setup, "laptop", *(["--legacy"] if legacy else []))
    assert mode(p12) == 0o600
    info = openssl(
        "pkcs12", "-in", p12, "-passin", f"file:{setup.password_file}", "-info", "-noout"
    )
    algo = "pbeWithSHA1And3-KeyTripleDES-CBC" if legacy else "AES-256-CBC"
    assert algo in info.stderr + info.stdout
    assert ("sha1" if legacy else "sha256") in (info.stderr + info.stdout).lower()
    dump = openssl("pkcs12", "-in", p12, "-passin", f"file:{setup.password_file}", "-nodes")
    assert "friendlyName: laptop" in dump.stdout
    assert "PRIVATE KEY" in dump.stdout
    leaf = dump.stdout.split("-----BEGIN CERTIFICATE-----")[1].split("-----END CERTIFICATE-----")[0]
    leaf_pem = setup.tmp / "leaf.pem"
    leaf_pem.write_text(f"-----BEGIN CERTIFICATE-----{leaf}-----END CERTIFICATE-----\n")
    subject = openssl("x509", "-in", leaf_pem, "-noout", "-subject").stdout
    assert "CN=laptop" in subject.replace(" ", "")
    assert openssl("verify", "-CAfile", setup.state / "ca.crt", leaf_pem).returncode == 0
    # The wrong password fails.
    bad = setup.tmp / "bad"
    bad.write_text("wrong\n")
    assert (
        openssl("pkcs12", "-in", p12, "-passin", f"file:{bad}", "-nodes", check=False).returncode
        != 0
    )


@pytest.mark.parametrize("legacy", [False, True], ids=["modern", "legacy"])
def test_pk12util_imports_bundle_into_fresh_nss_db(setup: Setup, legacy: bool) -> None:
    p12 = issue(setup, "chromium", *(["--legacy"] if legacy else []))
    db = setup.tmp / "nssdb"
    db.mkdir()
    subprocess.run(
        ["certutil", "-N", "-d", f"sql:{db}", "--empty-password"], check=True, capture_output=True
    )
    r = subprocess.run(
        ["pk12util", "-i", str(p12), "-d", f"sql:{db}", "-W", "correct horse"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    listing = subprocess.run(
        ["certutil", "-L", "-d", f"sql:{db}"], capture_output=True, text=True, check=True
    ).stdout
    assert "chromium" in listing
    keys = subprocess.run(
        ["certutil", "-K", "-d", f"sql:{db}"], capture_output=True, text=True
    ).stdout
    assert "chromium" in keys


@pytest.fixture
def s_server(setup: Setup) -> Iterator[int]:
    """openssl s_server requiring a client certificate from hagate's CA."""
    port = free_port()
    s = setup.state
    proc = subprocess.Popen(
        [
            "openssl",
            "s_server",
            "-accept",
            f"127.0.0.1:{port}",
            "-cert",
            str(s / "server.crt"),
            "-key",
            str(s / "server.key"),
            "-CAfile",
            str(s / "ca.crt"),
            "-Verify",
            "1",
            "-verify_return_error",
            "-www",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_listening(port, proc)
        yield port
    finally:
        proc.kill()
        proc.wait()


def curl(setup: Setup, port: int, cert: Path, key: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "curl",
            "-sS",
            "--max-time",
            "10",
            "--cacert",
            str(setup.state / "ca.crt"),
            "--resolve",
            f"ha.test:{port}:127.0.0.1",
            "--cert",
            str(cert),
            "--key",
            str(key),
            f"https://ha.test:{port}/",
        ],
        capture_output=True,
        text=True,
        check=False,
    )


def test_mutual_tls_handshake_with_issued_cert(setup: Setup, s_server: int) -> None:
    issue(setup, "phone")
    pem = setup.tmp / "pem"
    r = curl(setup, s_server, pem / "phone.crt", pem / "phone.key")
    assert r.returncode == 0, r.stderr
    assert "CN=phone" in r.stdout.replace(" ", "") or "phone" in r.stdout


def test_mutual_tls_refuses_certificate_from_another_ca(
    setup: Setup, s_server: int, hagate: Run, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    assert (
        hagate(
            "init", "--hostname", "ha.test", "--upstream", "http://127.0.0.1:1", state=other
        ).code
        == 0
    )
    out = tmp_path / "otherpem"
    assert hagate("cert", "issue", "intruder", "--pem-dir", out, state=other).code == 0
    r = curl(setup, s_server, out / "intruder.crt", out / "intruder.key")
    assert r.returncode != 0
    assert "CN=intruder" not in r.stdout


# -- list and revoke ----------------------------------------------------------------------


def test_list_json_has_exactly_the_documented_keys(setup: Setup) -> None:
    issue(setup, "phone")
    issue(setup, "tablet", "--days", "10")
    r = setup.run("cert", "list", "--json")
    assert r.code == 0
    rows = json.loads(r.out)
    keys = {"name", "serial", "sha256", "not_after", "status", "first_used", "last_used", "admin",
            "credentials"}  # fmt: skip
    assert [set(row) for row in rows] == [keys] * 2
    assert rows[0]["first_used"] is None and rows[0]["last_used"] is None  # not used yet
    assert rows[0]["admin"] is False
    assert rows[0]["credentials"] == {
        "total": 0, "access_token": 0, "refresh_token": 0, "webhook": 0, "websocket": 0,
        "last_used": None, "last_used_ip": None, "last_used_asn": None, "last_used_country": None,
        "each": [],
    }  # fmt: skip
    by_name = {row["name"]: row for row in rows}
    assert by_name["phone"]["status"] == "valid"
    assert by_name["tablet"]["status"] == "expiring"
    cert = x509.load_pem_x509_certificate((setup.tmp / "pem" / "phone.crt").read_bytes())
    assert by_name["phone"]["serial"] == f"{cert.serial_number:x}"
    assert by_name["phone"]["sha256"] == cert.fingerprint(cert.signature_hash_algorithm).hex()  # type: ignore[arg-type]
    assert by_name["phone"]["not_after"] == cert.not_valid_after_utc.isoformat()
    human = setup.run("cert", "list")
    assert "phone" in human.out and "expiring" in human.out


@pytest.mark.parametrize("how", ["name", "serial", "sha256"])
def test_revoke_shows_in_list_and_crl(setup: Setup, how: str) -> None:
    issue(setup, "phone")
    issue(setup, "tablet")
    row = {r["name"]: r for r in json.loads(setup.run("cert", "list", "--json").out)}["phone"]
    selector = {"name": "phone", "serial": row["serial"].upper(), "sha256": row["sha256"]}[how]
    r = setup.run("cert", "revoke", selector, "--reason", "lost")
    assert r.code == 0, r.err
    statuses = {r["name"]: r["status"] for r in json.loads(setup.run("cert", "list", "--json").out)}
    assert statuses == {"phone": "revoked", "tablet": "valid"}
    crl = openssl("crl", "-in", setup.state / "crl.pem", "-noout", "-text").stdout
    assert row["serial"].upper() in crl.replace(":", "").upper()
    tablet_serial = {r["name"]: r for r in json.loads(setup.run("cert", "list", "--json").out)}[
        "tablet"
    ]["serial"]
    assert tablet_serial.upper() not in crl.replace(":", "").upper()
    ok = openssl("crl", "-in", setup.state / "crl.pem", "-CAfile", setup.state / "ca.crt", "-noout")
    assert "verify OK" in ok.stderr + ok.stdout
    # The name is free again once revoked.
    issue(setup, "phone")


# -- files, atomicity, concurrency --------------------------------------------------------


def test_key_files_are_0600(setup: Setup) -> None:
    issue(setup, "phone")
    assert mode(setup.tmp / "pem" / "phone.key") == 0o600
    assert mode(setup.tmp / "phone.p12") == 0o600
    assert mode(setup.state / "issued.json") == 0o600


def test_default_output_is_pem_in_state_dir(setup: Setup) -> None:
    r = setup.run("cert", "issue", "watch")
    assert r.code == 0, r.err
    assert mode(setup.state / "clients" / "watch.key") == 0o600
    assert (setup.state / "clients" / "watch.crt").exists()


def test_atomic_write_keeps_old_file_when_write_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hagate import state

    target = tmp_path / "issued.json"
    state.atomic_write(target, b"good", mode=0o600)

    def boom(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("hagate.state.os.replace", boom)
    with pytest.raises(OSError):
        state.atomic_write(target, b"half", mode=0o600)
    assert target.read_bytes() == b"good"
    assert [p.name for p in tmp_path.iterdir()] == ["issued.json"]  # no temp file left


def test_concurrent_issue_gives_distinct_serials_and_intact_inventory(setup: Setup) -> None:
    import sys

    names = [f"dev{i}" for i in range(6)]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hagate",
                "--state-dir",
                str(setup.state),
                "cert",
                "issue",
                n,
                "--pem-dir",
                str(setup.tmp / "pem"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for n in names
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    rows = json.loads(setup.run("cert", "list", "--json").out)
    assert sorted(r["name"] for r in rows) == names
    assert len({r["serial"] for r in rows}) == len(names)
    data = json.loads((setup.state / "issued.json").read_text())
    assert len(data["certificates"]) == len(names)


# -- user mistakes: one line, non-zero, no traceback ----------------------------------------


def one_line_error(r: object, *needles: str) -> None:
    from tests.conftest import Result

    assert isinstance(r, Result)
    assert r.code != 0
    assert r.err.startswith("error: ") and r.err.count("\n") == 1, r.err
    for n in needles:
        assert n in r.err, r.err


def test_no_state_directory(hagate: Run, tmp_path: Path) -> None:
    for args in (
        ["cert", "list"],
        ["cert", "issue", "x"],
        ["cert", "revoke", "x"],
        ["ca", "export"],
    ):
        one_line_error(hagate(*args, state=tmp_path / "missing"), "run hagate init first")


def test_duplicate_name(setup: Setup) -> None:
    issue(setup, "phone")
    one_line_error(setup.run("cert", "issue", "phone"), "already exists")


def test_unknown_certificate(setup: Setup) -> None:
    one_line_error(setup.run("cert", "revoke", "nobody"), "no certificate named")


def test_revoke_twice(setup: Setup) -> None:
    issue(setup, "phone")
    assert setup.run("cert", "revoke", "phone").code == 0
    one_line_error(setup.run("cert", "revoke", "phone"), "already revoked")


def test_unreadable_and_empty_password_file(setup: Setup) -> None:
    one_line_error(
        setup.run(
            "cert",
            "issue",
            "a",
            "--p12",
            setup.tmp / "a.p12",
            "--password-file",
            setup.tmp / "nope",
        ),
        "cannot read password file",
    )
    empty = setup.tmp / "empty"
    empty.write_text("\n")
    one_line_error(
        setup.run("cert", "issue", "a", "--p12", setup.tmp / "a.p12", "--password-file", empty),
        "empty",
    )
    # Nothing was issued by the failed attempts.
    assert json.loads(setup.run("cert", "list", "--json").out) == []


def test_p12_without_terminal_needs_password_file(setup: Setup) -> None:
    one_line_error(
        setup.run("cert", "issue", "a", "--p12", setup.tmp / "a.p12", input=""), "--password-file"
    )


@pytest.mark.parametrize(
    "hostname,upstream,needle",
    [
        ("bad host!", "http://127.0.0.1:8123", "bad hostname"),
        ("-x.example.com", "http://127.0.0.1:8123", "bad hostname"),
        ("192.0.2.1", "http://127.0.0.1:8123", "bad hostname"),
        ("ha.example.com", "ftp://127.0.0.1", "bad upstream URL"),
        ("ha.example.com", "127.0.0.1:8123", "bad upstream URL"),
        ("ha.example.com", "http://127.0.0.1:99999", "bad upstream URL"),
    ],
)
def test_bad_hostname_or_url(
    hagate: Run, tmp_path: Path, hostname: str, upstream: str, needle: str
) -> None:
    r = hagate("init", "--hostname", hostname, "--upstream", upstream, state=tmp_path / "s")
    one_line_error(r, needle)
    assert not (tmp_path / "s" / "ca.key").exists()


def test_bad_certificate_name(setup: Setup) -> None:
    one_line_error(setup.run("cert", "issue", "../evil"), "bad certificate name")


def test_ca_export(setup: Setup) -> None:
    r = setup.run("ca", "export")
    assert r.out == (setup.state / "ca.crt").read_text()
    out = setup.tmp / "ca.pem"
    assert setup.run("ca", "export", "--out", out).code == 0
    assert out.read_text() == r.out
