"""The console through the gateway, at /.hagate/console/, for admin certificates only: other
certificates and none get the gateway's own 404, no path trick reaches it or leaves it, a
client cannot claim another certificate, and its forms need their CSRF token."""

from __future__ import annotations

import re

import pytest

from tests.conftest import run_hagate
from tests.console.conftest import ConsoleSite, start_console
from tests.gateway.harness import Gateway


def _body(text: bytes) -> bytes:
    return re.sub(rb"[0-9a-f]{16}", b"ID", text)  # request ids differ


@pytest.fixture(scope="module")
def admin_site(tmp_path_factory: pytest.TempPathFactory):
    def prepare(g: Gateway) -> None:
        r = run_hagate(
            "cert", "issue", "laptop", "--admin", "--pem-dir", g.certs_dir, state=g.state
        )
        assert r.code == 0 and "admin" in r.out, r.err

    s = start_console(tmp_path_factory.mktemp("gwpath"), prepare)
    try:
        yield s
    finally:
        s.gateway.stop()
        s.gateway.upstream.close()


def test_an_admin_certificate_gets_the_console(admin_site: ConsoleSite) -> None:
    g = admin_site.gateway
    r = g.request("/.hagate/console/", cert="laptop")
    assert r.status == 200, r.body[:300]
    page = r.body.decode()
    assert "certificate laptop" in page and 'href="/.hagate/console/events"' in page
    assert "Sign out" not in page and r.header("Set-Cookie") is None
    assert r.header("Content-Security-Policy")
    r = g.request("/.hagate/console/events?action=block", cert="laptop")
    assert (r.status == 200 and b"/.hagate/console/events/" in r.body) or b"No events" in r.body
    r = g.request("/.hagate/console/static/console.css", cert="laptop")
    assert r.status == 200 and b"--fg" in r.body
    assert not [p for p in g.upstream.paths() if "hagate" in p or p.startswith("/console")]
    rows = [e for e in g.events() if e["action"] == "console"]
    assert rows and rows[0]["cert_name"] == "laptop"


def test_anyone_else_gets_the_gateways_own_404(admin_site: ConsoleSite) -> None:
    g = admin_site.gateway
    # Each from its own address: misses under /.hagate/ are limited per address (429).
    reference = g.request("/.hagate/nothing-here", cert="phone", source="127.0.0.50")
    assert reference.status == 404
    n = 51
    for cert in ("phone", None):
        for path in ("/.hagate/console/", "/.hagate/console/devices", "/.hagate/console"):
            n += 1
            r = g.request(path, cert=cert, source=f"127.0.0.{n}")
            assert r.status == 404, (cert, path)
            assert _body(r.body) == _body(reference.body), (cert, path)
    # The header only the gateway sets, sent by a client with another certificate.
    sha = next(
        d["sha256"]
        for d in admin_site.api("GET", "/api/v1/devices").json()
        if d["name"] == "laptop"
    )
    r = g.request(
        "/.hagate/console/",
        cert="phone",
        headers={"X-Hagate-Certificate": sha},
        source="127.0.0.60",
    )
    assert r.status == 404
    assert run_hagate("cert", "admin", "phone", "off", state=g.state).code == 0


@pytest.mark.parametrize(
    "target",
    [
        "/.hagate/console/../../console/",
        "/x/../.hagate/console/",
        "/%2Ehagate/console/",
        "/.hagate/%63onsole/",
        "/.hagate//console/",
        "/.hagate/console/%2e%2e/%2e%2e/api/states",
    ],
)
def test_no_path_trick_reaches_it_for_another_certificate(
    admin_site: ConsoleSite, target: str
) -> None:
    g = admin_site.gateway
    before = len(g.upstream.paths())
    r = g.request(target, cert="phone", source=f"127.0.1.{abs(hash(target)) % 250 + 1}")
    assert b"certificate laptop" not in r.body and b"hagate_console" not in r.body
    assert r.status in (400, 404) or (r.status == 200 and len(g.upstream.paths()) == before + 1)
    # Whatever reached Home Assistant was never a /.hagate/ path.
    assert not [p for p in g.upstream.paths() if ".hagate" in p]


def test_the_console_of_the_admin_listener_is_not_on_the_gateway(admin_site: ConsoleSite) -> None:
    """/console/ on the gateway is Home Assistant's path, forwarded like any other."""
    g = admin_site.gateway
    r = g.request("/console/", cert="laptop")
    assert g.upstream.paths()[-1] == "/console/" and b"certificate laptop" not in r.body


def test_forms_through_the_gateway_need_the_csrf_token(admin_site: ConsoleSite) -> None:
    g = admin_site.gateway
    g.issue("old-phone")
    page = g.request("/.hagate/console/devices/old-phone/revoke", cert="laptop").body.decode()
    token = re.search(r'name="csrf" value="([^"]+)"', page)
    assert token
    form = "csrf=wrong"
    hdr = {"Content-Type": "application/x-www-form-urlencoded"}
    r = g.request(
        "/.hagate/console/devices/old-phone/revoke",
        cert="laptop",
        method="POST",
        headers=hdr,
        body=form.encode(),
    )
    assert r.status == 403
    assert g.request("/", cert="old-phone").status == 200
    r = g.request(
        "/.hagate/console/devices/old-phone/revoke",
        cert="laptop",
        method="POST",
        headers={**hdr, "Origin": "https://ha.test"},
        body=f"csrf={token.group(1)}".encode(),
    )
    assert r.status == 303 and r.header("Location") == "/.hagate/console/devices"
    assert g.request("/", cert="old-phone").status == 403


def test_an_admin_mark_is_taken_away(admin_site: ConsoleSite) -> None:
    g = admin_site.gateway
    g.issue("tablet")
    here = "127.0.0.70"
    assert g.request("/.hagate/console/", cert="tablet", source=here).status == 404
    assert run_hagate("cert", "admin", "tablet", "on", state=g.state).code == 0
    assert g.request("/.hagate/console/", cert="tablet", source=here).status == 200
    assert run_hagate("cert", "admin", "tablet", "off", state=g.state).code == 0
    assert g.request("/.hagate/console/", cert="tablet", source=here).status == 404
    listed = {d["name"]: d["admin"] for d in admin_site.api("GET", "/api/v1/devices").json()}
    assert listed["laptop"] is True and listed["tablet"] is False
