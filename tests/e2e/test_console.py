"""The console end to end with the real Home Assistant, driven in Chromium (Playwright):
sign in, read the overview and the events, add a device (the QR code decodes to the link
shown, which enrols a second browser that then gets Home Assistant's login page, and the page
turns to "Enrolled"), revoke a device from the page (its open websocket to Home Assistant is
cut), edit a rule with a replay and save it, apply a suggestion, read the audit. Screenshots
of each page go to test-artifacts/console/ (docs/images/console/ holds copies)."""

from __future__ import annotations

import base64
import io
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import zxingcpp
from PIL import Image
from playwright.sync_api import Page, sync_playwright
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

from tests.conftest import run_hagate
from tests.console.conftest import PASSWORD
from tests.e2e.conftest import artifacts
from tests.e2e.homeassistant import HomeAssistant
from tests.e2e.test_browser import chromium, nss
from tests.gateway.harness import Gateway, make_gateway
from tests.geo import write_asn_db
from tests.net import free_port
from tests.nss import auto_select

OLD_ANDROID = (
    "Mozilla/5.0 (Linux; Android 10; Pixel 3) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0 Mobile Safari/537.36"
)
IPAD = "Home Assistant/2026.1 (io.robbie.HomeAssistant; build:2026.1; iPadOS 17.5)"
MOBILE = "127.0.0.41"
SCANNERS = ["127.0.0.20", "127.0.0.21", "127.0.0.22"]


class Site:
    def __init__(self, gateway: Gateway, admin: int) -> None:
        self.gateway = gateway
        self.admin = admin
        self.base = f"http://127.0.0.1:{admin}"


@pytest.fixture(scope="module")
def site(home_assistant: HomeAssistant, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("console-e2e")
    g = make_gateway(tmp)
    g.upstream.close()  # Home Assistant is the upstream here
    cfg = g.state / "hagate.yaml"
    cfg.write_text(
        cfg.read_text().replace(f"http://127.0.0.1:{g.upstream.port}", home_assistant.url)
    )
    asn_db = write_asn_db(
        tmp / "asn.mmdb", {f"{MOBILE}/32": 6805, **{f"{ip}/32": 64500 for ip in SCANNERS}}
    )
    cfg.write_text(cfg.read_text().replace("  asn_db:\n", f"  asn_db: {asn_db}\n"))
    admin = free_port()
    g.configure(extra=f'\nadmin:\n  listen: "127.0.0.1:{admin}"\n')
    secret = tmp / "pw"
    secret.write_text(PASSWORD + "\n")
    assert run_hagate("console", "password", "--password-file", secret, state=g.state).code == 0
    g.issue("phone")
    g.issue("wall-panel")
    g.start()
    if not home_assistant.access_token:
        home_assistant.onboard(f"https://ha.test:{g.port}")
    try:
        # A day of a home, in miniature: the household, the app from a mobile network,
        # scanners.
        for path in ("/", "/manifest.json", "/auth/providers"):
            assert g.request(path, cert="phone").status == 200
        for _ in range(3):
            assert (
                g.request("/api/websocket", source=MOBILE, headers={"User-Agent": IPAD}).status
                == 403
            )
        for ip in SCANNERS:
            for path in ("/wp-login.php", "/.env", "/cgi-bin/luci"):
                g.request(path, source=ip, headers={"User-Agent": "Mozilla/5.0 zgrab/0.x"})
        g.events()
        yield Site(g, admin)
    finally:
        g.stop()


def shots() -> Path:
    path = artifacts() / "console"
    path.mkdir(exist_ok=True)
    return path


def submit(page: Page, selector: str) -> None:
    """Click what sends a form or follows a link, and wait for the page it brings."""
    with page.expect_navigation():
        page.click(selector)


def sign_in(page: Page, site: Site) -> None:
    page.goto(f"{site.base}/console/")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{site.base}/console/")


def test_overview_events_rules_suggestions_audit(site: Site) -> None:
    g = site.gateway
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_context(viewport={"width": 1200, "height": 900}).new_page()
        sign_in(page, site)
        body = page.inner_text("main")
        assert "ha.test" in body and "hagate serve" in body
        assert "127.0.0.20" in body and "AS64500" in body  # top blocked, with its network
        assert page.locator("figure.chart svg rect.blocked").count() >= 24
        page.screenshot(path=shots() / "overview.png", full_page=True)
        page.goto(f"{site.base}/console/events")
        page.wait_for_selector("tr#tail")
        assert g.request("/api/", cert="phone").status in (200, 401)  # arrives while we look
        page.wait_for_selector('span.path:text-is("/api/")', timeout=15000)
        page.screenshot(path=shots() / "events.png", full_page=True)
        page.click("table.events tbody tr:nth-child(2) td:first-child a")
        assert "Decision: ALLOW" in page.inner_text("pre.explain")
        # Rules: a rule for the scanners' network, replayed, then saved.
        page.goto(f"{site.base}/console/rules")
        submit(page, "button[value=add]")
        assert page.locator("li.rule").count() >= 2, page.content()[:1500]
        last = page.locator("li.rule").count() - 1
        page.fill(f"input[name=description-{last}]", "No scanners")
        page.fill(f"textarea[name=expression-{last}]", "ip.src.asnum in {64500}")
        page.select_option(f"select[name=action-{last}]", "block")
        submit(page, f"button[value='up:{last}']")  # above the certificate rule
        submit(page, "button[value=replay]")
        replay = page.inner_text("section.replay")
        assert re.search(r"\b0 would now be blocked that are let in today", replay), replay
        page.screenshot(path=shots() / "rules.png", full_page=True)
        submit(page, "button[value=save]")
        assert "Saved" in page.inner_text("main")
        assert "No scanners" in (g.state / "hagate.yaml").read_text()
        # Suggestions: the iOS app from AS6805 (after bound-apps, which needs no network), its
        # diff, applied.
        page.goto(f"{site.base}/console/suggestions?fresh=1")
        page.wait_for_selector("text=review and apply", timeout=30000)  # the list looks again
        assert "bound-apps" in page.inner_text("main")
        submit(page, "text=review and apply >> nth=1")
        assert "preset ios-companion" in page.inner_text("pre.diff")
        submit(page, "button.primary")
        assert "Added the rule" in page.inner_text("main")
        deadline = time.monotonic() + 10
        while (
            g.request("/api/websocket", source=MOBILE, headers={"User-Agent": IPAD}).status == 403
        ):
            assert time.monotonic() < deadline
            time.sleep(0.3)
        page.goto(f"{site.base}/console/audit?fresh=1")
        assert page.locator("article.finding").count() >= 1
        page.screenshot(path=shots() / "audit.png", full_page=True)
        browser.close()


def test_add_a_device_that_enrols_and_revoke_one_with_a_websocket_open(
    site: Site, home_assistant: HomeAssistant, tmp_path: Path
) -> None:
    g = site.gateway
    base = f"https://ha.test:{g.port}"
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", "--host-resolver-rules=MAP ha.test 127.0.0.1"],
        )
        owner = browser.new_context(viewport={"width": 420, "height": 1000}).new_page()
        sign_in(owner, site)
        owner.goto(f"{site.base}/console/devices")
        owner.fill("input[name=name]", "tablet")
        submit(owner, "text=Add a device")
        link = owner.inner_text("p.link code")
        password = owner.inner_text("code.password")
        src = owner.get_attribute("img.qr", "src") or ""
        png = base64.b64decode(src.split(",", 1)[1])
        [decoded] = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
        assert decoded.text == link and link.startswith("https://ha.test/.hagate/enrol/")
        owner.screenshot(path=shots() / "device.png", full_page=True)
        # The second browser, the "tablet": opens the link (on the gateway's port here).
        tablet_link = link.replace("https://ha.test", base)
        device = browser.new_context(
            user_agent=OLD_ANDROID, ignore_https_errors=True, accept_downloads=True
        ).new_page()
        device.goto(tablet_link)
        with device.expect_download() as got:
            device.get_by_role("link", name="Download certificate").click()
        download = tmp_path / "tablet.p12"
        got.value.save_as(download)
        home = tmp_path / "home"
        nss(home, g, download, password)
        target = (
            f"{base}/auth/authorize?response_type=code&client_id={quote(base + '/', safe='')}"
            f"&redirect_uri={quote(base + '/?auth_callback=1', safe='')}"
        )
        with auto_select([base], "hagate-console-test"):
            dom = chromium(home, g, target, "--dump-dom")
        assert "<ha-authorize" in dom
        owner.wait_for_selector("p.enrolled", timeout=20000)
        assert "Enrolled: tablet" in owner.inner_text("p.enrolled")
        # Revoke the wall panel while its websocket to Home Assistant is open.
        sock = g.tcp()
        with ws_connect(
            f"wss://ha.test:{g.port}/api/websocket",
            sock=sock,
            ssl=g.context("wall-panel"),
            server_hostname="ha.test",
        ) as ws:
            assert json.loads(ws.recv(10))["type"] == "auth_required"
            ws.send(json.dumps({"type": "auth", "access_token": home_assistant.access_token}))
            assert json.loads(ws.recv(10))["type"] == "auth_ok"
            owner.goto(f"{site.base}/console/devices")
            submit(owner, "a[href='/console/devices/wall-panel/revoke']")
            assert "cut at once" in owner.inner_text("main")
            owner.click("button.danger")
            owner.wait_for_url(f"{site.base}/console/devices")
            cut_at = time.monotonic()
            with pytest.raises(ConnectionClosed):
                while True:
                    ws.recv(10)
            assert time.monotonic() - cut_at < 5
        assert g.request("/", cert="wall-panel").status == 403
        browser.close()
    listed = json.loads(run_hagate("cert", "list", "--json", state=g.state).out)
    assert {d["name"]: d["status"] for d in listed}["wall-panel"] == "revoked"
