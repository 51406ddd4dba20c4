"""Issue 11 against the real Home Assistant: what the differential found, tried as an attacker
would, through `hagate serve` and through relay -> tunnel -> gateway. The rule set has a skip
rule for `POST /auth/token`; the attacker holds no certificate.
"""

from __future__ import annotations

import json
import secrets
import time

from tests.e2e.homeassistant import HomeAssistant
from tests.e2e.test_home_assistant import bearer
from tests.gateway.harness import Gateway, read_response

ATTACKER = 30


def in_ha_log(ha: HomeAssistant, needle: str, wait: float = 2) -> bool:
    deadline = time.monotonic() + wait
    while True:
        if needle in ha.read_log():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)


def api_answers_its_owner(gateway: Gateway, ha: HomeAssistant) -> None:
    """A certificate holder's next request gets its own answer."""
    r = gateway.request("/api/", cert="phone", headers=bearer(ha))
    assert r.status == 200 and json.loads(r.body) == {"message": "API running."}


def test_home_assistant_logs_each_request_it_serves(
    gateway: Gateway, home_assistant: HomeAssistant
) -> None:
    """The log checks below can fail: a request HA serves shows in its access log."""
    marker = secrets.token_hex(6)
    assert gateway.request(f"/manifest.json?seen={marker}", cert="phone").status == 200
    assert in_ha_log(home_assistant, f"seen={marker}")


def test_the_reported_upgrade_smuggle_is_refused(
    gateway: Gateway, home_assistant: HomeAssistant
) -> None:
    marker = secrets.token_hex(6)
    smuggled = f"GET /manifest.json?smuggled={marker} HTTP/1.1\r\nX-Ignore: ".encode()
    with gateway.connect(source=gateway.addr(ATTACKER)) as sock:
        sock.sendall(
            b"POST /auth/token HTTP/1.1\r\nHost: ha.test\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nContent-Length: %d\r\n\r\n%b" % (len(smuggled), smuggled)
        )
        first = read_response(sock, bytearray())
    assert first.status == 400 and "Upgrade" in first.body.decode()
    # The follow-up that used to complete the smuggled head gets HA's own /auth/token answer.
    second = gateway.request(
        "/auth/token", method="POST", headers={"Content-Length": "0"}, source=gateway.addr(ATTACKER)
    )
    assert second.status == 400 and "error" in json.loads(second.body), second
    api_answers_its_owner(gateway, home_assistant)
    assert not in_ha_log(home_assistant, f"smuggled={marker}")


def test_an_upgrade_home_assistant_does_not_switch_ends_its_connection(
    gateway: Gateway, home_assistant: HomeAssistant
) -> None:
    marker = secrets.token_hex(6)
    with gateway.connect(source=gateway.addr(ATTACKER)) as sock:
        sock.sendall(
            b"POST /auth/token HTTP/1.1\r\nHost: ha.test\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nContent-Length: 0\r\n\r\n"
            + f"GET /manifest.json?after={marker} HTTP/1.1\r\nHost: ha.test\r\n\r\n".encode()
        )
        buf = bytearray()
        answers = [read_response(sock, buf).status, read_response(sock, buf).status]
    assert answers[0] not in (101, 200) and answers[1] == 403
    for _ in range(3):  # whichever pooled connection comes next is clean
        api_answers_its_owner(gateway, home_assistant)
    assert not in_ha_log(home_assistant, f"after={marker}")


def test_a_host_with_userinfo_or_a_bad_port_never_reaches_home_assistant(
    gateway: Gateway, home_assistant: HomeAssistant
) -> None:
    for host in ("ha.test:@evil.test", "ha.test:443@evil.test", "ha.test:99999", "ha.test:443/x"):
        r = gateway.request(
            "/auth/token",
            method="POST",
            headers={"Host": host, "Content-Length": "0"},
            source=gateway.addr(ATTACKER),
        )
        assert r.status == 400, host
    r = gateway.request(
        "/api/", cert="phone", headers={"Host": "ha.test:@evil.test", **bearer(home_assistant)}
    )
    assert r.status == 400


def test_connection_cannot_strip_a_field_the_rules_saw(
    gateway: Gateway, home_assistant: HomeAssistant
) -> None:
    for name in ("Host", "User-Agent", "Authorization", "Cookie"):
        r = gateway.request(
            "/api/",
            cert="phone",
            headers={**bearer(home_assistant), "Connection": f"keep-alive, {name}"},
        )
        assert r.status == 400, name
    api_answers_its_owner(gateway, home_assistant)


def test_a_body_that_goes_bad_after_the_head_leaves_the_next_user_alone(
    gateway: Gateway, home_assistant: HomeAssistant
) -> None:
    marker = secrets.token_hex(6)
    with gateway.connect(source=gateway.addr(ATTACKER)) as sock:
        sock.sendall(
            b"POST /auth/token HTTP/1.1\r\nHost: ha.test\r\nTransfer-Encoding: chunked\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n\r\n5\r\nhello\r\n"
        )
        time.sleep(0.3)
        sock.sendall(f"zz\r\nGET /manifest.json?bad={marker} HTTP/1.1\r\nX-Ignore: ".encode())
        assert read_response(sock, bytearray()).status == 400
    for _ in range(3):
        api_answers_its_owner(gateway, home_assistant)
    assert not in_ha_log(home_assistant, f"bad={marker}")
    rows = [e for e in gateway.events() if e["method"] == "POST" and e["status"] == 400]
    assert rows and rows[-1]["action"] == "skip"
    assert "Home Assistant had the head" in rows[-1]["reason"]


def test_a_head_request_with_a_body_is_refused(
    gateway: Gateway, home_assistant: HomeAssistant
) -> None:
    marker = secrets.token_hex(6)
    smuggled = f"GET /manifest.json?head={marker} HTTP/1.1\r\nHost: ha.test\r\n\r\n".encode()
    with gateway.connect("phone") as sock:
        sock.sendall(
            b"HEAD /api/ HTTP/1.1\r\nHost: ha.test\r\nContent-Length: %d\r\n\r\n%b"
            % (len(smuggled), smuggled)
        )
        assert read_response(sock, bytearray(), "HEAD").status == 400
    api_answers_its_owner(gateway, home_assistant)
    assert not in_ha_log(home_assistant, f"head={marker}")
