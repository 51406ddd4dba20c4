"""The console for Home Assistant's ingress (the app's sidebar panel): a listener that answers
only the Supervisor's proxy, takes the Home Assistant user it names as the sign-in, puts its
links under X-Ingress-Path, may be framed by Home Assistant's page only, and serves nothing
but the console."""

from __future__ import annotations

import http.client
import re
from collections.abc import Iterator

import pytest

from tests.console.conftest import ConsoleSite, start_console
from tests.gateway.harness import Gateway
from tests.net import free_port

SUPERVISOR = "127.0.0.9"  # stands in for 172.30.32.2
PREFIX = "/api/hassio_ingress/Ab3_x-9"
HA_HOST = "homeassistant.local:8123"


@pytest.fixture(scope="module")
def ingress(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ConsoleSite, int]]:
    port = free_port()

    def prepare(g: Gateway) -> None:
        text = (g.state / "hagate.yaml").read_text()
        text = text.replace(
            "\nadmin:\n",
            f'\nadmin:\n  ingress:\n    listen: "127.0.0.1:{port}"\n    trusted: ["{SUPERVISOR}"]\n',
        )
        (g.state / "hagate.yaml").write_text(text)

    s = start_console(tmp_path_factory.mktemp("ingress"), prepare)
    try:
        yield s, port
    finally:
        s.gateway.stop()
        s.gateway.upstream.close()


def call(
    port: int,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    source: str = SUPERVISOR,
) -> tuple[int, http.client.HTTPMessage, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20, source_address=(source, 0))
    sent = {
        "Host": HA_HOST,
        "X-Ingress-Path": PREFIX,
        "X-Remote-User-Id": "8d3f0c",
        "X-Remote-User-Name": "owner",
        "X-Remote-User-Display-Name": "The Owner",
        **(headers or {}),
    }
    conn.request(method, path, body=body, headers={k: v for k, v in sent.items() if v})
    r = conn.getresponse()
    text = r.read().decode("utf-8", "replace")
    conn.close()
    return r.status, r.headers, text


def test_the_panel_opens_on_the_console_with_links_under_the_ingress_path(ingress) -> None:
    _, port = ingress
    status, headers, _ = call(port, "GET", "/")
    assert status == 303 and headers["Location"] == f"{PREFIX}/console/"
    status, headers, page = call(port, "GET", "/console/")
    assert status == 200, page[:300]
    assert "Home Assistant user The Owner" in page
    assert f'href="{PREFIX}/console/events"' in page and 'href="/console/' not in page
    assert "frame-ancestors 'self'" in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "SAMEORIGIN"
    assert "Set-Cookie" not in headers
    status, _, page = call(port, "GET", "/console/events?action=block")
    assert status == 200


def test_only_the_supervisors_proxy_is_answered(ingress) -> None:
    _, port = ingress
    status, _, _ = call(port, "GET", "/console/", source="127.0.0.1")
    assert status == 403
    for missing in ("X-Ingress-Path", "X-Remote-User-Id"):
        status, _, _ = call(port, "GET", "/console/", headers={missing: ""})
        assert status == 400, missing
    status, _, _ = call(port, "GET", "/console/", headers={"X-Ingress-Path": "/evil/../x"})
    assert status == 400


def test_nothing_but_the_console_on_the_ingress_listener(ingress) -> None:
    site, port = ingress
    for path in ("/metrics", "/api/v1/devices", "/console/../metrics"):
        status, _, text = call(port, "GET", path, headers={"Authorization": f"Bearer {site.token}"})
        assert status == 404 and "hagate_" not in text, path


def test_forms_need_the_csrf_token_and_the_home_assistant_origin(ingress) -> None:
    site, port = ingress
    site.gateway.issue("spare")
    _, _, page = call(port, "GET", "/console/devices/spare/revoke")
    token = re.search(r'name="csrf" value="([^"]+)"', page)
    assert token
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    status, _, _ = call(port, "POST", "/console/devices/spare/revoke", form, b"csrf=nope")
    assert status == 403
    # Another user's token is not this user's.
    status, _, _ = call(
        port,
        "POST",
        "/console/devices/spare/revoke",
        {**form, "X-Remote-User-Id": "someone-else"},
        f"csrf={token.group(1)}".encode(),
    )
    assert status == 403
    status, _, _ = call(
        port,
        "POST",
        "/console/devices/spare/revoke",
        {**form, "Origin": "https://evil.example"},
        f"csrf={token.group(1)}".encode(),
    )
    assert status == 403
    assert site.gateway.request("/", cert="spare").status == 200
    status, headers, _ = call(
        port,
        "POST",
        "/console/devices/spare/revoke",
        {**form, "Origin": f"https://{HA_HOST}"},
        f"csrf={token.group(1)}".encode(),
    )
    assert status == 303 and headers["Location"] == f"{PREFIX}/console/devices"
    assert site.gateway.request("/", cert="spare").status == 403


def test_a_bad_ingress_section_is_a_clear_error(tmp_path) -> None:
    from hagate.config import parse_config
    from hagate.errors import HagateError

    base = "hostname: ha.test\nupstream: http://127.0.0.1:8123\n"
    for section, words in [
        ("admin:\n  ingress: {}\n", "missing key 'listen'"),
        ("admin:\n  ingress:\n    listen: nowhere\n", "listen"),
        ('admin:\n  ingress:\n    listen: "0.0.0.0:8099"\n    trusted: [bogus]\n', "not an IP"),
    ]:
        with pytest.raises(HagateError, match=words):
            parse_config(base + section, "hagate.yaml")
    cfg = parse_config(base + 'admin:\n  ingress:\n    listen: "0.0.0.0:8099"\n', "x")
    assert cfg.admin is not None and cfg.admin.ingress is not None
    assert cfg.admin.ingress.trusted == ("172.30.32.2",)


def test_the_pages_ingress_section_is_what_the_app_writes() -> None:
    from hagate.app.options import INGRESS_LISTEN
    from hagate.config import parse_config
    from tests.docs import code_blocks

    [block] = code_blocks("docs/console.md", "yaml", "In Home Assistant's sidebar")
    cfg = parse_config("hostname: ha.test\nupstream: http://127.0.0.1:8123\n" + block, "x")
    assert cfg.admin is not None and cfg.admin.ingress is not None
    assert cfg.admin.ingress.listen == INGRESS_LISTEN
    assert cfg.admin.ingress.trusted == ("172.30.32.2",)
