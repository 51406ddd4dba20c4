"""The console in Chromium (Playwright, Debian's chromium): text written by strangers, sent
through the real gateway, is shown as text (no script runs, no handler fires, the layout
holds on a phone's width), the live tail and the rule check work under the CSP, and nothing of
ours is refused by that CSP."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Dialog, Page, sync_playwright

from tests.console.conftest import PASSWORD, ConsoleSite, start_console

MARK = "window.__xss"
USER_AGENTS = [
    f"<script>{MARK}=1</script>",
    f'"><img src=x onerror="{MARK}=2">',
    f"<svg onload={MARK}=3>",
    "javascript:alert(4)",
    f'<a href="javascript:{MARK}=5">click</a>',
    "\u202eevil\u202c Mozilla/5.0 \u2066isolated\u2069",
    "Mozilla/5.0 " + "A" * 6000,
    f"{{{{7*7}}}} ${{{MARK}=8}} <!-- -->",
    f"<style>body{{display:none}}</style><iframe src=javascript:{MARK}=9>",
]
PATHS = [
    f"/<script>{MARK}=10</script>",
    f'/"><img src=x onerror={MARK}=11>',
    "/javascript:alert(12)",
    "/%3Cscript%3Ewindow.__xss=13%3C/script%3E",
    "/" + "b" * 3000,
    "/%E2%80%AEevil%E2%80%AC/gpj.exe",
]


def send_raw(site: ConsoleSite, target: str, ua: str) -> None:
    g = site.gateway
    ctx = g.context("phone")
    head = (
        f"GET {target} HTTP/1.1\r\nHost: ha.test\r\nUser-Agent: {ua}\r\nConnection: close\r\n\r\n"
    )
    with (
        socket.create_connection(("127.0.0.1", g.port), timeout=10) as tcp,
        ctx.wrap_socket(tcp, server_hostname="ha.test") as s,
    ):
        s.sendall(head.encode("utf-8"))
        try:
            while s.recv(65536):
                pass
        except (ConnectionError, ssl.SSLError, TimeoutError):
            pass


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleSite]:
    s = start_console(tmp_path_factory.mktemp("hostile"))
    try:
        for ua in USER_AGENTS:
            send_raw(s, "/api/states", ua)
        for path in PATHS:
            send_raw(s, path, "curl/8")
        # Without a certificate too: blocked rows are what an owner reads most.
        for ua in USER_AGENTS[:3]:
            s.gateway.request("/", headers={"User-Agent": ua})
        deadline = time.monotonic() + 10
        while len(s.gateway.events()) < len(USER_AGENTS) + len(PATHS) + 3:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        yield s
    finally:
        s.gateway.stop()
        s.gateway.upstream.close()


class Watch:
    def __init__(self, page: Page) -> None:
        self.dialogs: list[str] = []
        self.console: list[str] = []

        def dialog(d: Dialog) -> None:
            self.dialogs.append(d.message)
            d.dismiss()

        page.on("dialog", dialog)
        page.on("console", lambda m: self.console.append(m.text))

    def assert_clean(self, page: Page) -> None:
        assert page.evaluate(f"typeof {MARK}") == "undefined"
        assert not self.dialogs
        refused = [m for m in self.console if "Content Security Policy" in m]
        assert not refused, refused


def _browser(p, width: int = 390, height: int = 844):
    browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
    context = browser.new_context(viewport={"width": width, "height": height})
    return browser, context


def sign_in(page: Page, site: ConsoleSite) -> None:
    page.goto(f"http://127.0.0.1:{site.port}/console/")
    assert page.url.endswith("/console/signin")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"http://127.0.0.1:{site.port}/console/")


def test_stored_hostile_text_is_shown_as_text(hostile: ConsoleSite, tmp_path: Path) -> None:
    base = f"http://127.0.0.1:{hostile.port}"
    with sync_playwright() as p:
        browser, context = _browser(p)
        page = context.new_page()
        watch = Watch(page)
        sign_in(page, hostile)
        page.goto(f"{base}/console/events?limit=100")
        page.wait_for_selector("table.events")
        text = page.inner_text("table.events")
        assert f"<script>{MARK}=1</script>" in text
        assert "<svg onload=" in text and "javascript:alert(4)" in text
        assert page.locator("table.events img, table.events svg, table.events iframe").count() == 0
        assert page.locator("table.events a[href^='javascript']").count() == 0
        # A phone's width: long agents and paths wrap inside their cells.
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, width
        # A direction override (from a percent-encoded path; header bytes are Latin-1, so
        # they arrive as mojibake) is shown, and stays inside its own element.
        paths = page.locator(".path").all_inner_texts()
        assert any("\u202e" in t for t in paths) or any("%E2%80%AE" in t for t in paths), paths
        assert (
            page.evaluate("getComputedStyle(document.querySelector('.path')).unicodeBidi")
            == "plaintext"
        )
        watch.assert_clean(page)
        # Every row's own page: the explanation and the facts, for each hostile row.
        ids = page.eval_on_selector_all(
            "table.events tr td:first-child a", "els => els.map(e => e.getAttribute('href'))"
        )
        assert len(ids) >= len(USER_AGENTS) + len(PATHS)
        for href in ids:
            page.goto(base + href)
            assert page.locator("dl.facts").count() == 1
            assert page.evaluate("document.documentElement.scrollWidth") <= 390, href
            watch.assert_clean(page)
        for where in ("/console/", "/console/devices", "/console/suggestions", "/console/audit"):
            page.goto(base + where)
            assert page.evaluate("document.documentElement.scrollWidth") <= 390, where
            watch.assert_clean(page)
        context.close()
        browser.close()


def test_the_live_tail_and_the_rule_check_work_under_the_csp(hostile: ConsoleSite) -> None:
    base = f"http://127.0.0.1:{hostile.port}"
    with sync_playwright() as p:
        browser, context = _browser(p, 1200, 900)
        page = context.new_page()
        watch = Watch(page)
        sign_in(page, hostile)
        page.goto(f"{base}/console/events")
        page.wait_for_selector("tr#tail")
        hostile.gateway.request(
            "/arrives/live", cert="phone", headers={"User-Agent": "<b>tail</b>"}
        )
        page.wait_for_selector('span.path:text-is("/arrives/live")', timeout=15000)
        assert "<b>tail</b>" in page.inner_text("table.events")
        page.goto(f"{base}/console/rules")
        box = page.locator("textarea[name=expression-0]")
        box.fill('http.host eq "x" and nonsense')
        box.press("End")
        page.wait_for_selector("#check-0 pre.rule-error", timeout=10000)
        assert "column 22" in page.inner_text("#check-0")
        box.fill("not cf.tls_client_auth.cert_verified")
        box.press("End")
        page.wait_for_selector("#check-0 span.ok", timeout=10000)
        watch.assert_clean(page)
        # Home Assistant on the same host (another port: cookies ignore ports) never gets the
        # session cookie: it is limited to /console/, a path Home Assistant does not serve.
        upstream = hostile.gateway.upstream
        seen = len(upstream.seen)
        for path in ("/", "/api/states", "/auth/authorize"):
            page.goto(f"http://127.0.0.1:{upstream.port}{path}")
        sent = upstream.seen[seen:]
        assert len(sent) >= 3
        assert not [s for s in sent if "hagate_console" in " ".join(s.header("cookie"))]
        assert any(c["name"] == "hagate_console" for c in context.cookies())
        context.close()
        browser.close()
