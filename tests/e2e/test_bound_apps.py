"""Credentials bound to certificates (issue 27), acted out against the real Home Assistant as
the companion app does it: log in and register with the certificate, then reach Home
Assistant without it (the watch, widgets, background refresh) from another address."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shlex
import ssl
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

from tests.conftest import run_hagate
from tests.docs import sh_blocks
from tests.e2e.conftest import MODES, gateway_for, running
from tests.e2e.homeassistant import PASSWORD, HomeAssistant
from tests.gateway.harness import Gateway, Response, read_response

CLIENT_ID = "https://home-assistant.io/iOS"  # what the iOS app logs in as
REDIRECT = "homeassistant://auth-callback"
DOC = "docs/bound-apps.md"
AWAY = 9  # 127.0.n.9: the watch, on another network, without the certificate
CLOSE_POLICY = b"\x88\x02\x03\xf0"


@pytest.fixture(scope="module", params=list(MODES))
def apps(
    request: pytest.FixtureRequest,
    home_assistant: HomeAssistant,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Gateway]:
    """hagate with the bound-apps preset above its certificate rule, as the docs add it."""
    mode: str = request.param
    tmp = tmp_path_factory.mktemp(f"bound-{mode}")
    g = gateway_for(home_assistant, tmp, mode)
    [[add]] = sh_blocks(DOC, "Turn it on")  # as docs/bound-apps.md prints it
    r = run_hagate(*shlex.split(add)[1:], state=g.state)
    assert r.code == 0, r.err
    g.issue("phone")
    g.issue("tablet")
    with running(g, home_assistant, tmp, mode):
        yield g


# -- the companion app's calls --------------------------------------------------------------


def call(
    g: Gateway,
    path: str,
    cert: str | None = None,
    token: str | None = None,
    data: Any = None,
    form: dict[str, str] | None = None,
    method: str | None = None,
) -> Response:
    headers = {}
    body = b""
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if form is not None:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        body = urllib.parse.urlencode(form).encode()
    elif data is not None:
        headers["Content-Type"] = "application/json"
        body = json.dumps(data).encode()
    source = None if cert is not None else g.addr(AWAY)
    return g.request(path, cert, method or ("POST" if body else "GET"), headers, body, source)


def login_flow(post: Any, user: str = "owner", password: str = PASSWORD) -> dict[str, Any]:
    """Home Assistant's login as the companion app does it: the flow, then the code for
    tokens. `post(path, json=..., form=...)` sends it somewhere."""
    flow = post(
        "/auth/login_flow",
        data={"client_id": CLIENT_ID, "handler": ["homeassistant", None], "redirect_uri": REDIRECT},
    )
    done = post(
        f"/auth/login_flow/{flow['flow_id']}",
        data={"username": user, "password": password, "client_id": CLIENT_ID},
    )
    assert done["type"] == "create_entry", done
    tokens: dict[str, Any] = post(
        "/auth/token",
        form={"grant_type": "authorization_code", "code": done["result"], "client_id": CLIENT_ID},
    )
    return tokens


def login_through(g: Gateway, cert: str) -> dict[str, Any]:
    def post(path: str, data: Any = None, form: dict[str, str] | None = None) -> Any:
        r = call(g, path, cert, data=data, form=form)
        assert r.status == 200, (path, r.status, r.body[:300])
        return json.loads(r.body)

    return login_flow(post)


def login_directly(
    ha: HomeAssistant, user: str = "owner", password: str = PASSWORD
) -> dict[str, Any]:
    """A login at Home Assistant itself, as on the home LAN: hagate sees none of it."""

    def post(path: str, data: Any = None, form: dict[str, str] | None = None) -> Any:
        body = urllib.parse.urlencode(form).encode() if form else json.dumps(data).encode()
        req = urllib.request.Request(ha.url + path, data=body, method="POST")
        req.add_header(
            "Content-Type", "application/x-www-form-urlencoded" if form else "application/json"
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    return login_flow(post, user, password)


def another_user(ha: HomeAssistant, name: str) -> tuple[str, str]:
    """A second person in Home Assistant (made by the owner, as its Settings page does)."""
    password = "another horse battery staple"
    made = ha.ws("config/auth/create", name=name, group_ids=["system-users"])
    ha.ws("config/auth_provider/homeassistant/create", user_id=made["user"]["id"],
          username=name, password=password)  # fmt: skip
    return name, password


def register(g: Gateway, token: str, name: str, cert: str = "phone") -> str:
    """The app's registration with the mobile_app integration: its webhook id."""
    r = call(
        g,
        "/api/mobile_app/registrations",
        cert,
        token,
        {
            "device_id": f"{name}-{os.urandom(4).hex()}",
            "app_id": "io.robbie.HomeAssistant",
            "app_name": "Home Assistant",
            "app_version": "2026.1",
            "device_name": name,
            "manufacturer": "Apple",
            "model": "iPhone",
            "os_name": "iOS",
            "os_version": "17.5",
            "supports_encryption": False,
            "app_data": {},
        },
    )
    assert r.status == 201, r.body
    webhook: str = json.loads(r.body)["webhook_id"]
    return webhook


def until(check: Any, timeout: float = 5.0) -> Any:
    """Bindings are written off the event loop: the first call after one may come early."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.1)


def refresh(g: Gateway, refresh_token: str, cert: str | None = None) -> Response:
    return call(
        g,
        "/auth/token",
        cert,
        form={
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": CLIENT_ID,
        },
    )


@dataclass
class Phone:
    access: str
    refresh: str
    webhook: str
    name: str


@pytest.fixture(scope="module")
def phone(apps: Gateway) -> Phone:
    """Onboarded and registered through hagate with the certificate."""
    tokens = login_through(apps, "phone")
    name = f"Watch {apps.net}"
    webhook = register(apps, tokens["access_token"], name)
    return Phone(tokens["access_token"], tokens["refresh_token"], webhook, name)


def ha_state(ha: HomeAssistant, entity_id: str) -> dict[str, Any]:
    state: dict[str, Any] = ha.get(f"/api/states/{entity_id}")
    return state


# -- without the certificate: what gets in ------------------------------------------------


def test_the_watch_reaches_home_assistant_with_what_the_phone_was_given(
    apps: Gateway, phone: Phone, home_assistant: HomeAssistant
) -> None:
    slug = phone.name.lower().replace(" ", "_")
    # A location update on the webhook.
    update = {"type": "update_location", "data": {"gps": [52.1, 5.1], "gps_accuracy": 12}}
    r = until(
        lambda: (x := call(apps, f"/api/webhook/{phone.webhook}", data=update)).status == 200 and x
    )
    assert r and r.status == 200
    tracker = ha_state(home_assistant, f"device_tracker.{slug}")
    assert tracker["attributes"]["latitude"] == 52.1
    # A sensor registered and updated.
    sensor = {
        "type": "register_sensor",
        "data": {"unique_id": "battery", "name": "Battery", "state": 40, "type": "sensor",
                 "device_class": "battery", "unit_of_measurement": "%"},
    }  # fmt: skip
    assert call(apps, f"/api/webhook/{phone.webhook}", data=sensor).status == 201
    states = {"type": "update_sensor_states",
              "data": [{"unique_id": "battery", "state": 55, "type": "sensor"}]}  # fmt: skip
    assert call(apps, f"/api/webhook/{phone.webhook}", data=states).status == 200
    assert until(lambda: ha_state(home_assistant, f"sensor.{slug}_battery")["state"] == "55")
    # A refresh without the certificate, and REST with the fresh access token.
    r = until(lambda: (x := refresh(apps, phone.refresh)).status == 200 and x)
    assert r and r.status == 200, r
    fresh = json.loads(r.body)["access_token"]
    r = call(apps, "/api/states/input_boolean.porch_light", token=fresh)
    assert r.status == 200 and json.loads(r.body)["entity_id"] == "input_boolean.porch_light"
    # A websocket that authenticates with it and follows state changes.
    with websocket(apps, fresh) as ws:
        ws.send(json.dumps({"id": 1, "type": "subscribe_events", "event_type": "state_changed"}))
        assert json.loads(ws.recv(10))["success"]
        # A signed path, as notification images and widgets fetch them (no token sent).
        ws.send(json.dumps({"id": 2, "type": "auth/sign_path", "expires": 60,
                            "path": "/api/states/input_boolean.porch_light"}))  # fmt: skip
        signed = json.loads(ws.recv(10))["result"]["path"]
        assert "authSig=" in signed
        r = call(apps, signed)
        assert r.status == 200 and json.loads(r.body)["entity_id"] == "input_boolean.porch_light"
        path = signed.split("?")[0]
        assert call(apps, f"{path}?authSig=not.a.signature").status == 403
        home_assistant.post("/api/services/input_boolean/toggle",
                            {"entity_id": "input_boolean.kitchen_light"})  # fmt: skip
        event = json.loads(ws.recv(10))
        assert event["event"]["data"]["entity_id"] == "input_boolean.kitchen_light"
    # What got in is what Home Assistant saw (its access log), from the watch's own address
    # (its record of the refresh token's last use).
    log = home_assistant.read_log()
    assert f'"POST /api/webhook/{phone.webhook} HTTP/1.1" 200' in log
    assert '"GET /api/states/input_boolean.porch_light HTTP/1.1" 200' in log
    logins = home_assistant.ws("auth/refresh_tokens")
    assert apps.addr(AWAY) in {t["last_used_ip"] for t in logins if t["client_id"] == CLIENT_ID}
    rows = [e for e in apps.events() if e["client_ip"] == apps.addr(AWAY) and e["status"] == 200]
    assert rows and all(
        "bound to the certificate 'phone'" in (e["reason"] or "") and "bound-apps" in e["rule"]
        for e in rows
    ), rows
    assert not any(phone.webhook in json.dumps(e) for e in apps.events())  # never in clear
    assert not any(fresh in json.dumps(e) for e in apps.events())


def test_a_login_made_on_the_lan_is_bound_by_its_first_use_with_the_certificate(
    apps: Gateway, home_assistant: HomeAssistant
) -> None:
    tokens = login_directly(home_assistant)
    assert call(apps, "/api/", token=tokens["access_token"]).status == 403  # not yet bound
    assert call(apps, "/api/", "tablet", tokens["access_token"]).status == 200
    assert until(lambda: call(apps, "/api/", token=tokens["access_token"]).status == 200)
    listed = run_hagate("cert", "list", "--json", state=apps.state)
    tablet = next(c for c in json.loads(listed.out) if c["name"] == "tablet")
    assert tablet["credentials"]["access_token"] >= 1
    assert tablet["credentials"]["last_used_ip"] == apps.addr(AWAY)
    (login,) = [c for c in tablet["credentials"]["each"] if c["used_ip"] == apps.addr(AWAY)]
    assert login["kind"] == "access_token" and len(login["digest"]) == 12
    assert tokens["access_token"] not in listed.out


# -- without the certificate: what stays out ----------------------------------------------


def test_what_no_certificate_earned_stays_out(
    apps: Gateway, phone: Phone, home_assistant: HomeAssistant
) -> None:
    unbound = home_assistant.long_lived_token(f"elsewhere-{apps.net}")  # made at HA directly
    assert call(apps, "/api/", token=unbound).status == 403
    other_login = login_directly(home_assistant)  # the owner's, at home
    assert call(apps, "/api/", token=other_login["access_token"]).status == 403
    assert refresh(apps, other_login["refresh_token"]).status == 403
    guest = login_directly(home_assistant, *another_user(home_assistant, f"guest{apps.net}"))
    assert call(apps, "/api/", token=guest["access_token"]).status == 403  # another user's
    assert refresh(apps, guest["refresh_token"]).status == 403
    made_up = os.urandom(32).hex()
    assert call(apps, f"/api/webhook/{made_up}", data={"type": "get_config"}).status == 403
    # A bound token on a path outside the apps' paths.
    for path in ("/", "/auth/authorize", "/local/x.png", "/auth/login_flow"):
        assert call(apps, path, token=phone.access).status == 403, path
    # None of it reached Home Assistant.
    assert made_up not in home_assistant.read_log()
    blocked = [e for e in apps.events() if e["action"] == "block" and e["path"] == "/api/"]
    assert any("is not bound to a valid certificate" in (e["reason"] or "") for e in blocked)


def test_a_forged_token_with_a_bound_issuer_is_refused_by_home_assistant(
    apps: Gateway, phone: Phone
) -> None:
    payload = phone.access.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    for alg in ("HS256", "none"):
        head = base64.urlsafe_b64encode(json.dumps({"alg": alg, "typ": "JWT"}).encode())
        body = base64.urlsafe_b64encode(json.dumps({**claims, "exp": 4102444800}).encode())
        forged = f"{head.decode().rstrip('=')}.{body.decode().rstrip('=')}.c2lnbmF0dXJl"
        r = until(lambda f=forged: (x := call(apps, "/api/", token=f)).status != 403 and x)
        assert r and r.status == 401  # let through by hagate, refused by Home Assistant
    rows = [e for e in apps.events() if e["status"] == 401 and e["client_ip"] == apps.addr(AWAY)]
    assert rows and "bound to the certificate 'phone'" in rows[-1]["reason"]


# -- websockets held for their first message ----------------------------------------------


@contextlib.contextmanager
def websocket(g: Gateway, token: str) -> Iterator[ClientConnection]:
    """A websocket client without a certificate, authenticated with `token`."""
    with ws_connect(
        f"wss://ha.test:{g.port}/api/websocket",
        sock=g.tcp(g.addr(AWAY)),
        ssl=g.context(None),
        server_hostname="ha.test",
    ) as ws:
        # Compressed, as Home Assistant agrees with clients that offer it: the first message
        # is read inflated.
        assert ws.response is not None
        assert "permessage-deflate" in ws.response.headers.get("Sec-WebSocket-Extensions", "")
        assert json.loads(ws.recv(10))["type"] == "auth_required"
        ws.send(json.dumps({"type": "auth", "access_token": token}))
        answer = json.loads(ws.recv(10))
        assert answer["type"] == "auth_ok", answer
        yield ws


def frame(payload: bytes, opcode: int = 1, fin: bool = True, mask: bool = True) -> bytes:
    first = (0x80 if fin else 0) | opcode
    n = len(payload)
    length = (
        bytes([n | (0x80 if mask else 0)])
        if n < 126
        else bytes([126 | (0x80 if mask else 0)]) + n.to_bytes(2, "big")
        if n < 65536
        else bytes([127 | (0x80 if mask else 0)]) + n.to_bytes(8, "big")
    )
    if not mask:
        return bytes([first]) + length + payload
    key = os.urandom(4)
    return bytes([first]) + length + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def raw_websocket(g: Gateway) -> ssl.SSLSocket:
    sock = g.connect(None, source=g.addr(AWAY))
    sock.sendall(
        b"GET /api/websocket HTTP/1.1\r\nHost: ha.test\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(4096)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def rest_of(sock: ssl.SSLSocket, timeout: float = 15) -> bytes:
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (TimeoutError, ConnectionError, ssl.SSLError):
        pass
    return data


def auth(token: str) -> bytes:
    return json.dumps({"type": "auth", "access_token": token}).encode()


def test_a_websocket_without_a_certificate_is_let_through_only_for_a_bound_token(
    apps: Gateway, phone: Phone, home_assistant: HomeAssistant
) -> None:
    # Bound, with a second frame in the same write: both reach Home Assistant, in order.
    sock = raw_websocket(apps)
    sock.sendall(frame(auth(phone.access)) + frame(b'{"id": 1, "type": "ping"}'))
    got = b""
    sock.settimeout(10)
    while b'"pong"' not in got:
        chunk = sock.recv(65536)
        assert chunk, got
        got += chunk
    assert b"auth_ok" in got
    sock.close()
    hostile = {
        "an unbound token": frame(auth(home_assistant.long_lived_token(f"ws-{apps.net}"))),
        "not a token": frame(auth(os.urandom(8).hex())),
        "a fragmented first message": frame(auth(phone.access), fin=False),
        "a binary first message": frame(auth(phone.access), opcode=2),
        "an unmasked first message": frame(auth(phone.access), mask=False),
        "an oversized first message": frame(b" " * 70000 + auth(phone.access)),
        "another type first": frame(b'{"type": "ping", "access_token": "x"}'),
        "an unbound token, then a frame": frame(auth("a.b.c")) + frame(b'{"id":1,"type":"ping"}'),
    }
    for case, data in hostile.items():
        sock = raw_websocket(apps)
        sock.sendall(data)
        rest = rest_of(sock)
        assert rest.endswith(CLOSE_POLICY), (case, rest[-200:])
        assert b"auth_ok" not in rest and b"auth_invalid" not in rest, case
        sock.close()
    rows = [e for e in apps.events() if e["path"] == "/api/websocket" and e["action"] == "block"]
    reasons = " | ".join(e["reason"] or "" for e in rows)
    for words in ("fragmented", "not text", "not masked", "longer than", "not an auth message",
                  "is not bound to a valid certificate"):  # fmt: skip
        assert words in reasons, (words, reasons)


def test_a_websocket_that_sends_nothing_is_closed_after_the_wait(apps: Gateway) -> None:
    sock = raw_websocket(apps)
    started = time.monotonic()
    rest = rest_of(sock, timeout=20)
    assert rest.endswith(CLOSE_POLICY) and 9 < time.monotonic() - started < 15
    rows = [e for e in apps.events() if e["path"] == "/api/websocket"]
    assert any("no first message" in (e["reason"] or "") for e in rows)


# -- revocation unbinds everything at once ------------------------------------------------


def test_revoking_the_certificate_unbinds_at_once_and_cuts_open_websockets(
    apps: Gateway, home_assistant: HomeAssistant, tmp_path_factory: pytest.TempPathFactory
) -> None:
    apps.issue("old-phone")
    tokens = login_through(apps, "old-phone")
    webhook = register(apps, tokens["access_token"], f"Old {apps.net}", "old-phone")
    assert until(lambda: call(apps, "/api/", token=tokens["access_token"]).status == 200)
    with websocket(apps, tokens["access_token"]) as ws:
        r = run_hagate("cert", "revoke", "old-phone", state=apps.state)
        assert r.code == 0, r.err
        assert "The 3 Home Assistant credentials bound to it no longer let anything in" in r.out
        revoked = time.monotonic()
        assert call(apps, "/api/", token=tokens["access_token"]).status == 403
        assert call(apps, f"/api/webhook/{webhook}", data={"type": "get_config"}).status == 403
        assert refresh(apps, tokens["refresh_token"]).status == 403
        with pytest.raises(ConnectionClosed):
            ws.recv(5)
        assert time.monotonic() - revoked < 3
    listed = json.loads(run_hagate("cert", "list", "--json", state=apps.state).out)
    assert next(c for c in listed if c["name"] == "old-phone")["credentials"]["total"] == 0


# -- /auth/token without the certificate: the form read before deciding -------------------


def test_a_token_form_that_trickles_in_is_read_and_one_that_lies_about_its_length_is_refused(
    apps: Gateway, phone: Phone, home_assistant: HomeAssistant
) -> None:
    form = urllib.parse.urlencode(
        {"grant_type": "refresh_token", "refresh_token": phone.refresh, "client_id": CLIENT_ID}
    ).encode()
    head = (
        "POST /auth/token HTTP/1.1\r\nHost: ha.test\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {n}\r\n\r\n"
    )
    with apps.connect(None, source=apps.addr(AWAY)) as sock:
        sock.sendall(head.format(n=len(form)).encode())
        for i in range(0, len(form), 60):  # in pieces, 0.3 s apart
            time.sleep(0.3)
            sock.sendall(form[i : i + 60])
        assert read_response(sock, bytearray(), "POST").status == 200
    with apps.connect(None, source=apps.addr(AWAY)) as sock:
        sock.sendall(head.format(n=len(form) + 100).encode() + form)
        started = time.monotonic()
        r = read_response(sock, bytearray(), "POST")
        assert r.status == 408 and 9 < time.monotonic() - started < 15
    rows = [e for e in apps.events() if e["status"] == 408 and e["path"] == "/auth/token"]
    assert rows and "form did not arrive" in rows[-1]["reason"]


def test_huge_or_malformed_authorization_headers_are_refused_quietly(apps: Gateway) -> None:
    for value in ("Bearer " + "a." * 3000 + "b", "Bearer", "bearer x.y.z", "Bearer a.b", "Basic x"):
        assert call(apps, "/api/", method="GET").status == 403
        r = apps.request("/api/", None, "GET", {"Authorization": value}, source=apps.addr(AWAY))
        assert r.status in (403, 431), (value[:20], r.status)
    assert apps.proc is None or apps.proc.poll() is None  # still serving


def test_what_you_see_and_unbind_as_the_page_prints_them(apps: Gateway, phone: Phone) -> None:
    listing, unbind = sh_blocks(DOC, "What you see")[0]
    hook = f"/api/webhook/{phone.webhook}"
    assert until(lambda: call(apps, hook, data={"type": "get_config"}).status == 200)
    listed = run_hagate(*shlex.split(listing)[1:], state=apps.state)
    assert listed.code == 0
    row = next(line for line in listed.out.splitlines() if line.lstrip().startswith("phone "))
    assert re.search(rf"\b\d+ \(\d{{4}}-\d\d-\d\d \d\d:\d\d from {apps.addr(AWAY)}\)", row), row
    dropped = run_hagate(*shlex.split(unbind)[1:], state=apps.state)
    assert (
        dropped.code == 0 and dropped.out.strip() == "Dropped 1 webhook credentials bound to phone."
    )
    assert call(apps, hook, data={"type": "get_config"}).status == 403
    # The phone calls it again with its certificate: bound again.
    assert call(apps, hook, "phone", data={"type": "get_config"}).status == 200
    assert until(lambda: call(apps, hook, data={"type": "get_config"}).status == 200)
    wrong = run_hagate("cert", "unbind", "phone", "--kind", "cookie", state=apps.state)
    assert wrong.code == 2 and "Traceback" not in wrong.err
    unknown = run_hagate("cert", "unbind", "nobody", state=apps.state)
    assert unknown.code != 0 and "nobody" in unknown.err and "Traceback" not in unknown.err
