"""A real browser: headless Chromium with the client certificate in its NSS database."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.conftest import run_hagate
from tests.e2e.conftest import artifacts
from tests.gateway.harness import Gateway
from tests.nss import auto_select, nss_database

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,900",
    "--virtual-time-budget=20000",
]


def nss(home: Path, gateway: Gateway, p12: Path | None, password: str) -> None:
    nss_database(home, gateway.state / "ca.crt", p12, password)


@pytest.fixture
def auto_select_policy(gateway: Gateway) -> Iterator[None]:
    """Chromium's managed policy that picks the client certificate without asking."""
    with auto_select([f"https://ha.test:{gateway.port}"], "hagate-test"):
        yield


def chromium(home: Path, gateway: Gateway, url: str, *extra: str) -> str:
    env = {**os.environ, "HOME": str(home)}
    args = [
        "chromium",
        *FLAGS,
        f"--user-data-dir={home / 'profile'}",
        "--host-resolver-rules=MAP ha.test 127.0.0.1",
        *extra,
        url,
    ]
    out = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    return out.stdout


def test_chromium_with_the_certificate_loads_the_login_page(
    gateway: Gateway, auto_select_policy: None, tmp_path: Path
) -> None:
    password = tmp_path / "pw"
    password.write_text("browser-pass\n")
    p12 = tmp_path / "browser.p12"
    r = run_hagate(
        "cert", "issue", "browser", "--p12", p12, "--password-file", password, state=gateway.state
    )
    assert r.code == 0, r.err
    home = tmp_path / "home"
    nss(home, gateway, p12, "browser-pass")
    base = f"https://ha.test:{gateway.port}"
    url = (
        f"{base}/auth/authorize?response_type=code&client_id={quote(base + '/', safe='')}"
        f"&redirect_uri={quote(base + '/?auth_callback=1', safe='')}"
    )
    dom = chromium(home, gateway, url, "--dump-dom")
    assert "<ha-authorize" in dom and "<title>Home Assistant</title>" in dom
    shot = artifacts() / f"chromium-login-with-certificate-{gateway.net}.png"
    chromium(home, gateway, url, f"--screenshot={shot}")
    assert shot.exists() and shot.stat().st_size > 5000
    # The gateway saw the browser present its certificate and fetch the login page's code.
    events = [e for e in gateway.events() if e["cert_name"] == "browser"]
    paths = {e["path"] for e in events if e["status"] == 200}
    assert any(p.startswith("/auth/authorize") for p in paths)
    assert any(p.startswith("/frontend_latest/") and p.endswith(".js") for p in paths)


def test_chromium_without_a_certificate_sees_the_403_page(
    gateway: Gateway, auto_select_policy: None, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    nss(home, gateway, None, "")
    url = f"https://ha.test:{gateway.port}/"
    dom = chromium(home, gateway, url, "--dump-dom")
    assert "A client certificate is required" in dom
    assert "no client certificate was presented" in dom
    shot = artifacts() / f"chromium-without-certificate-{gateway.net}.png"
    chromium(home, gateway, url, f"--screenshot={shot}")
    assert shot.exists()
