"""The enrolment link through the real gateway, port-forwarded and through relay -> tunnel ->
gateway: once and never again, expiry, wrong tokens, path tricks, rate limiting, and nothing
under /.hagate/ ever reaching Home Assistant (here a recording upstream)."""

from __future__ import annotations

import json
import plistlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12

from tests.enrol.helpers import enrol
from tests.gateway.harness import Gateway, make_gateway
from tests.tunnel.harness import Relay, start_connector


@pytest.fixture(scope="module", params=["serve", "relay"])
def gateway(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp(f"enrol-{request.param}")
    g = make_gateway(tmp)
    relay = None
    if request.param == "serve":
        g.start(workers=2)
    else:
        relay = Relay.create(tmp)
        relay.start()
        start_connector(g, [relay], relay.token())
    try:
        yield g
    finally:
        g.stop()
        if relay is not None:
            relay.stop()
        g.upstream.close()


def get(
    g: Gateway, path: str, ua: str = "curl/8", method: str = "GET", source: str | None = None
) -> tuple[int, dict[str, str], bytes]:
    r = g.request(path, method=method, headers={"User-Agent": ua}, source=source)
    headers = {}
    for line in r.head.split("\r\n")[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return r.status, headers, r.body


ANDROID = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/125.0 Mobile Safari/537.36"
)
IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"


def test_the_link_works_once_then_never(gateway: Gateway) -> None:
    printed = enrol(gateway.state, "phone", gateway.port)
    path = f"/.hagate/enrol/{printed.token}"
    status, headers, body = get(gateway, path, ANDROID)
    assert status == 200 and b"VPN &amp; app user certificate" in body
    assert headers["cache-control"] == "no-store" and headers["x-hagate-page"] == "enrol"
    assert f'href="{path}/p12"'.encode() in body
    # The download is the first step, and the page loads again after it.
    assert b"<ol><li>Tap this button:<br><a class=button" in body
    assert b'onclick="setTimeout(function(){location.reload()},2000)"' in body
    assert b"on this Android device," in body
    assert get(gateway, path, ANDROID)[0] == 200  # looking again (a link preview, say) is fine
    status, headers, p12 = get(gateway, f"{path}/p12", ANDROID)
    assert status == 200 and headers["content-type"] == "application/x-pkcs12"
    assert headers["content-disposition"] == 'attachment; filename="phone.p12"'
    _, cert, _ = pkcs12.load_key_and_certificates(p12, printed.password.encode())
    assert cert is not None and cert.subject.rfc4514_string() == "CN=phone"
    # The page now says it was downloaded and what comes next; no file is given again.
    status, _, body = get(gateway, path, ANDROID)
    assert status == 200 and b"phone: downloaded" in body and b"Downloaded at " in body
    assert b"VPN &amp; app user certificate" in body and b"hagate cert revoke phone" in body
    assert b"onclick" not in body and b"/p12" not in body
    for again in (f"{path}/p12", f"{path}/legacy.p12", f"{path}/mobileconfig"):
        status, _, body = get(gateway, again, ANDROID)
        assert status == 410 and b"phone: downloaded" in body and b"BEGIN" not in body
    assert not list((gateway.state / "enrol").glob("*/p12"))  # the files are gone
    assert gateway.upstream.seen == []


def test_expired_wrong_and_other_names_tokens_get_nothing(gateway: Gateway) -> None:
    short = enrol(gateway.state, "short", gateway.port, "--ttl", "5s")
    other = enrol(gateway.state, "other", gateway.port)
    wrong = "B" * 32
    assert get(gateway, f"/.hagate/enrol/{wrong}")[0] == 404
    assert get(gateway, f"/.hagate/enrol/{wrong}/p12")[0] == 404
    # A token gives its own name's certificate only: the other link's token with this file
    # name gives the other certificate, never "short"'s.
    status, _, body = get(gateway, f"/.hagate/enrol/{other.token}/p12")
    _, cert, _ = pkcs12.load_key_and_certificates(body, other.password.encode())
    assert status == 200 and cert is not None and cert.subject.rfc4514_string() == "CN=other"
    time.sleep(5.5)
    assert get(gateway, f"/.hagate/enrol/{short.token}")[0] == 404
    assert get(gateway, f"/.hagate/enrol/{short.token}/p12")[0] == 404
    assert gateway.upstream.seen == []


TRICKS = [
    "/x/../.hagate/enrol/{t}",
    "/.hagate/./enrol/{t}",
    "//.hagate/enrol/{t}",
    "/.hagate//enrol/{t}",
    "/%2ehagate/enrol/{t}",
    "/%2Ehagate/enrol/{t}/p12",
    "/.hagate/%65nrol/{t}",
    "/.hagate/enrol/{t}/./p12",
    "/.hagate/enrol/{t}/x/../p12",
    "/.hagate/enrol/{t}//p12",
    "/.hagate/enrol/{t}/",
    "/.hagate/enrol/{t}/p12?x=1/../",
    "/.hagate/admin",
    "/.hagate/",
    "/.hagate",
]


def test_path_tricks_never_reach_the_link_nor_home_assistant(gateway: Gateway) -> None:
    printed = enrol(gateway.state, "tricky", gateway.port)
    for trick in TRICKS:
        status, _, body = get(gateway, trick.format(t=printed.token), source=gateway.addr(30))
        assert status in (400, 404, 429), (trick, status)  # 429: too many misses
        assert b"PKCS" not in body and b"<plist" not in body
    for method in ("POST", "PUT", "DELETE"):
        assert get(gateway, f"/.hagate/enrol/{printed.token}", method=method)[0] == 405
    # None of it used the link up (the misses came from another address).
    assert get(gateway, f"/.hagate/enrol/{printed.token}/p12")[0] == 200
    assert gateway.upstream.seen == []


def test_repeated_misses_from_one_source_are_rate_limited(gateway: Gateway) -> None:
    printed = enrol(gateway.state, "limited", gateway.port)
    source = gateway.addr(40)
    # Every worker counts the same misses: ten, then 429 whichever worker answers.
    statuses = [get(gateway, f"/.hagate/enrol/{'C' * 32}", source=source)[0] for _ in range(14)]
    assert statuses == [404] * 10 + [429] * 4
    assert get(gateway, f"/.hagate/enrol/{printed.token}", source=source)[0] == 429
    assert get(gateway, f"/.hagate/enrol/{printed.token}", source=gateway.addr(41))[0] == 200


def test_events_record_enrolment_without_the_token(gateway: Gateway) -> None:
    printed = enrol(gateway.state, "logged", gateway.port)
    get(gateway, f"/.hagate/enrol/{printed.token}", IPHONE)
    get(gateway, f"/.hagate/enrol/{printed.token}/mobileconfig", IPHONE)
    get(gateway, f"/x/../.hagate/enrol/{printed.token}")
    time.sleep(1)
    rows = [e for e in gateway.events() if e["action"] == "enrol"]
    reasons = [e["reason"] for e in rows]
    assert any("enrolment page for logged (ios)" in r for r in reasons)
    assert any("certificate logged delivered (mobileconfig)" in r for r in reasons)
    assert all(e["path"] == "/.hagate/enrol/…" for e in rows if "enrol" in e["path"])
    assert printed.token not in json.dumps(list(gateway.events()))
    assert gateway.log_path is not None and printed.token not in gateway.log_path.read_text()


def test_the_profile_parses_and_its_identity_opens_with_openssl_and_pk12util(
    gateway: Gateway, tmp_path: Path
) -> None:
    printed = enrol(gateway.state, "ipad", gateway.port, "--device", "ios")
    status, headers, body = get(gateway, f"/.hagate/enrol/{printed.token}/mobileconfig", ANDROID)
    assert status == 200 and headers["content-type"] == "application/x-apple-aspen-config"
    profile = plistlib.loads(body)
    assert set(profile) == {
        "PayloadType",
        "PayloadVersion",
        "PayloadIdentifier",
        "PayloadUUID",
        "PayloadDisplayName",
        "PayloadDescription",
        "PayloadOrganization",
        "PayloadRemovalDisallowed",
        "PayloadContent",
    }
    assert profile["PayloadType"] == "Configuration"
    assert profile["PayloadIdentifier"] == "net.hagate.test.ha.ipad"
    types = [p["PayloadType"] for p in profile["PayloadContent"]]
    assert types == ["com.apple.security.pkcs12", "com.apple.security.root"]  # hagate's CA serves
    for p in profile["PayloadContent"]:
        assert set(p) == {
            "PayloadType",
            "PayloadVersion",
            "PayloadIdentifier",
            "PayloadUUID",
            "PayloadDisplayName",
            "PayloadDescription",
            "PayloadCertificateFileName",
            "PayloadContent",
        }
        assert "Password" not in p
    identity, root = profile["PayloadContent"]
    ca = x509.load_pem_x509_certificate((gateway.state / "ca.crt").read_bytes())
    assert x509.load_der_x509_certificate(root["PayloadContent"]) == ca
    p12 = tmp_path / "ipad.p12"
    p12.write_bytes(identity["PayloadContent"])
    out = subprocess.run(
        [
            "openssl",
            "pkcs12",
            "-in",
            str(p12),
            "-passin",
            f"pass:{printed.password}",
            "-nodes",
            "-legacy",
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert "subject=CN = ipad" in out.stdout and "PRIVATE KEY" in out.stdout
    db = tmp_path / "nss"
    db.mkdir()
    subprocess.run(["certutil", "-N", "-d", f"sql:{db}", "--empty-password"], check=True)
    r = subprocess.run(
        ["pk12util", "-i", str(p12), "-d", f"sql:{db}", "-W", printed.password],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    listed = subprocess.run(
        ["certutil", "-L", "-d", f"sql:{db}"], capture_output=True, text=True
    ).stdout
    assert "ipad" in listed
    # Enrolling the same device again gives a profile that replaces this one.
    again = enrol(gateway.state, "ipad", gateway.port, "--device", "ios")
    assert "is revoked" in again.out
    body2 = get(gateway, f"/.hagate/enrol/{again.token}/mobileconfig")[2]
    second = plistlib.loads(body2)
    assert second["PayloadIdentifier"] == profile["PayloadIdentifier"]
    assert second["PayloadUUID"] == profile["PayloadUUID"]
    assert [p["PayloadIdentifier"] for p in second["PayloadContent"]] == [
        p["PayloadIdentifier"] for p in profile["PayloadContent"]
    ]


@pytest.mark.parametrize("kind", ["p12", "legacy.p12"])
def test_android_and_windows_downloads_import_with_pk12util(
    gateway: Gateway, tmp_path: Path, kind: str
) -> None:
    printed = enrol(gateway.state, f"win-{kind.split('.')[0]}", gateway.port)
    status, _, body = get(gateway, f"/.hagate/enrol/{printed.token}/{kind}")
    assert status == 200
    p12 = tmp_path / "x.p12"
    p12.write_bytes(body)
    db = tmp_path / "nss"
    db.mkdir()
    subprocess.run(["certutil", "-N", "-d", f"sql:{db}", "--empty-password"], check=True)
    r = subprocess.run(
        ["pk12util", "-i", str(p12), "-d", f"sql:{db}", "-W", printed.password],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr


def test_the_page_shows_the_fingerprint_the_terminal_printed(gateway: Gateway) -> None:
    printed = enrol(gateway.state, "fp", gateway.port)
    served = x509.load_der_x509_certificate(gateway.connect().getpeercert(True) or b"")
    from hagate.pki.certs import sha256_hex

    assert printed.fingerprint == sha256_hex(served)
    body = get(gateway, f"/.hagate/enrol/{printed.token}")[2].decode()
    shown = ":".join(printed.fingerprint[i : i + 2] for i in range(0, 64, 2)).upper()
    assert shown in body
