"""The console's pages on a running gateway's admin listener: sign-in (password, one-time
link, rate limit), the session cookie, CSRF, and each page drawn from the real state."""

from __future__ import annotations

import re
import time

from tests.conftest import run_hagate
from tests.console.conftest import PASSWORD, ConsoleSite


def test_pages_need_a_session_and_the_sign_in_page_says_how(site: ConsoleSite) -> None:
    b = site.browser()
    for page in (
        "/console/",
        "/console/events",
        "/console/devices",
        "/console/rules",
        "/console/suggestions",
        "/console/audit",
        "/console/events/1",
    ):
        r = b.get(page)
        assert r.status == 303 and r.headers["Location"] == "/console/signin", page
    r = b.post("/console/rules", {"intent": "save"})
    assert r.status == 403
    r = b.get("/console/signin")
    assert r.status == 200 and 'type="password"' in r.text


def test_a_wrong_password_is_refused_and_a_right_one_opens_a_session(site: ConsoleSite) -> None:
    b = site.browser()
    r = b.post("/console/signin", {"password": "not it at all"})
    assert r.status == 401 and "Wrong password" in r.text
    assert not b.cookies
    b.sign_in()
    cookie = next(c for c in b.set_cookies if c.startswith("hagate_console="))
    attributes = {a.strip().split("=")[0].lower() for a in cookie.split(";")[1:]}
    assert {"httponly", "path", "samesite", "max-age"} <= attributes
    assert "Path=/console/" in cookie and "SameSite=Strict" in cookie
    # Served over plain HTTP on loopback: a Secure cookie would never come back.
    assert "secure" not in attributes
    r = b.get("/console/")
    assert r.status == 200 and "ha.test" in r.text


def test_signing_out_ends_the_session_on_the_server(site: ConsoleSite) -> None:
    b = site.browser()
    b.sign_in()
    stolen = dict(b.cookies)
    b.post("/console/signout", {"csrf": b.csrf()})
    assert b.get("/console/").status == 303
    thief = site.browser()
    thief.cookies = stolen  # the old cookie value, replayed
    assert thief.get("/console/").status == 303


def test_a_sign_in_link_works_once(site: ConsoleSite) -> None:
    r = run_hagate("console", "link", "--ttl", "2m", state=site.state)
    assert r.code == 0, r.err
    url = re.search(r"http://\S+/console/link/\S+", r.out)
    assert url, r.out
    path = url.group(0).split(str(site.port), 1)[1]
    b = site.browser()
    page = b.get(path)  # a link preview fetching it spends nothing
    assert page.status == 200 and "Sign in" in page.text
    assert b.post(path).status == 303
    assert b.get("/console/devices").status == 200
    other = site.browser()
    again = other.post(path)
    assert again.status == 410 and "used already" in again.text
    assert "hagate_console" not in other.cookies


def test_a_sign_in_link_expires(site: ConsoleSite) -> None:
    r = run_hagate("console", "link", "--ttl", "5s", state=site.state)
    path = "/console/" + r.out.split("/console/", 1)[1].split()[0]
    time.sleep(6)
    assert site.browser().post(path).status == 410


def test_guessing_the_password_is_slowed_to_a_stop(tmp_path_factory) -> None:
    from tests.console.conftest import start_console

    s = start_console(tmp_path_factory.mktemp("guess"))
    try:
        b = s.browser()
        codes = [b.post("/console/signin", {"password": f"guess {i}"}).status for i in range(7)]
        assert codes[:5] == [401] * 5 and codes[5:] == [429, 429], codes
        # Even the right password waits now: the window has to pass.
        r = b.post("/console/signin", {"password": PASSWORD})
        assert r.status == 429 and int(r.headers["Retry-After"]) > 800
    finally:
        s.gateway.stop()
        s.gateway.upstream.close()


def test_a_form_without_the_csrf_token_changes_nothing(site: ConsoleSite) -> None:
    b = site.browser()
    b.sign_in()
    before = (site.state / "hagate.yaml").read_text()
    form = {
        "description-0": "x",
        "expression-0": "true",
        "action-0": "skip",
        "enabled-0": "on",
        "intent": "save",
    }
    assert b.post("/console/rules", form).status == 403
    assert b.post("/console/rules", {**form, "csrf": "forged"}).status == 403
    # The right token from another site: the browser says so in Origin.
    r = b.post(
        "/console/rules", {**form, "csrf": b.csrf()}, headers={"Origin": "https://evil.example"}
    )
    assert r.status == 403
    assert b.post("/console/devices/phone/revoke", {}).status == 403
    assert (site.state / "hagate.yaml").read_text() == before
    devices = site.api("GET", "/api/v1/devices").json()
    assert next(d for d in devices if d["name"] == "phone")["status"] == "valid"


def test_every_answer_forbids_inline_script_and_framing(site: ConsoleSite) -> None:
    b = site.browser()
    for page in ("/console/signin", "/console/nowhere"):
        r = b.get(page)
        csp = r.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp
        assert r.headers["X-Frame-Options"] == "DENY"
        assert r.headers["Referrer-Policy"] == "same-origin"
    b.sign_in()
    for page in (
        "/console/",
        "/console/events",
        "/console/devices",
        "/console/rules",
        "/console/suggestions",
        "/console/audit",
    ):
        r = b.get(page)
        assert r.status == 200, (page, r.text[:300])
        assert "<script>" not in r.text and " on" + "click=" not in r.text
        assert r.headers["Cache-Control"] == "no-store"


def test_the_devices_page_shows_the_credentials_a_certificate_earned(site: ConsoleSite) -> None:
    from hagate.credentials.bindings import Bindings
    from hagate.credentials.extract import ACCESS_TOKEN, Credential, digest
    from hagate.pki.authority import Authority
    from hagate.state import StateDir

    state = StateDir(site.state)
    phone = Authority(state).find("phone")
    store = Bindings(state)
    login = Credential(ACCESS_TOKEN, digest("login", "b" * 32))
    assert store.bind(login, phone.sha256, "phone")
    store.note_use(login.digest, "198.51.100.7", 64500, "NL")
    try:
        b = site.browser()
        b.sign_in()
        page = b.get("/console/devices").text
        cell = re.search(r'<td class="credentials">([^<]*)</td>', page)
        assert cell and cell.group(1).startswith("1 credential, used "), page
        assert "from 198.51.100.7 AS64500" in cell.group(1)
        devices = site.api("GET", "/api/v1/devices").json()
        held = next(d for d in devices if d["name"] == "phone")["credentials"]
        assert held["total"] == 1 and held["last_used_country"] == "NL"
    finally:
        store.unbind(phone.sha256)
