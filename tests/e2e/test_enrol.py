"""Enrolment end to end with the real Home Assistant: headless Chromium with an Android user
agent opens the one-time link, sees the Android page and downloads the right file; once the
identity is in Chromium's NSS database, Chromium gets Home Assistant's login page through
the gateway, `hagate cert list` shows the first use and `enrol --wait` says "enrolled"."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
from playwright.sync_api import sync_playwright

from tests.conftest import run_hagate
from tests.e2e.test_browser import auto_select_policy, chromium, nss
from tests.gateway.harness import Gateway

__all__ = ["auto_select_policy"]  # the fixture, shared with test_browser

OLD_ANDROID = (
    "Mozilla/5.0 (Linux; Android 10; Pixel 3) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0 Mobile Safari/537.36"
)


def test_enrolment_ends_with_a_device_that_gets_in(
    gateway: Gateway, auto_select_policy: None, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    base = f"https://ha.test:{gateway.port}"
    waiting = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hagate",
            "--state-dir",
            str(gateway.state),
            "cert",
            "enrol",
            "tablet",
            "--url",
            base,
            "--wait",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    request.addfinalizer(lambda: waiting.kill() if waiting.poll() is None else None)
    assert waiting.stdout is not None
    printed = ""
    while "Waiting for the device" not in printed:
        line = waiting.stdout.readline()
        assert line, waiting.stderr.read() if waiting.stderr else ""
        printed += line
    url = re.search(r"^  (https://\S+)$", printed, re.M)
    password = re.search(r"Bundle password .*: (\S+)$", printed, re.M)
    fingerprint = re.search(r"^  ([0-9A-F:]{95})$", printed, re.M)
    assert url and password and fingerprint, printed
    download = tmp_path / "download.p12"
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", "--host-resolver-rules=MAP ha.test 127.0.0.1"],
        )
        context = browser.new_context(
            user_agent=OLD_ANDROID, ignore_https_errors=True, accept_downloads=True
        )
        page = context.new_page()
        page.goto(url.group(1))
        text = page.inner_text("body")
        assert "VPN & app user certificate" in text and "this Android device" in text
        assert "Home Assistant app cannot connect yet" in text  # the gateway's own CA
        assert fingerprint.group(1) in text  # the page shows what the terminal printed
        link = page.get_by_role("link", name="Download certificate")
        assert (link.get_attribute("href") or "").endswith("/legacy.p12")  # Android 10
        with page.expect_download() as got:
            link.click()
        assert got.value.suggested_filename == "tablet-legacy.p12"
        got.value.save_as(download)
        # The page looks again by itself and then shows the next steps.
        page.wait_for_function("document.title.endsWith(': downloaded')", timeout=15000)
        assert "Now install it on this Android device" in page.inner_text("body")
        context.close()
        browser.close()
    home = tmp_path / "home"
    nss(home, gateway, download, password.group(1))  # the device installs it
    target = (
        f"{base}/auth/authorize?response_type=code&client_id={quote(base + '/', safe='')}"
        f"&redirect_uri={quote(base + '/?auth_callback=1', safe='')}"
    )
    dom = chromium(home, gateway, target, "--dump-dom")
    assert "<ha-authorize" in dom and "<title>Home Assistant</title>" in dom
    out, err = waiting.communicate(timeout=30)
    assert waiting.returncode == 0, err
    assert "enrolled: tablet first used" in out
    listed = run_hagate("cert", "list", state=gateway.state)
    row = next(line for line in listed.out.splitlines() if line.strip().startswith("tablet"))
    assert re.search(r"valid\s+\d{4}-\d\d-\d\d \d\d:\d\d Mozilla/5\.0", row), row
    rows = json.loads(run_hagate("cert", "list", "--json", state=gateway.state).out)
    used = next(r["first_used"] for r in rows if r["name"] == "tablet" and r["status"] == "valid")
    assert used["ip"] == "127.0.0.1" and "Chrome" in used["user_agent"]  # Chromium, from here
    events = [e for e in gateway.events() if e["cert_name"] == "tablet"]
    assert any(
        (e["path"] or "").startswith("/auth/authorize") and e["status"] == 200 for e in events
    )
