"""A running `hagate serve` with its admin listener, a console password and an API token."""

from __future__ import annotations

import http.client
import json
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_hagate
from tests.gateway.harness import Gateway, make_gateway
from tests.net import free_port

PASSWORD = "correct horse battery"


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Browser:
    """Requests to the admin listener as a browser makes them: cookies kept (only those whose
    path covers the target), forms posted as urlencoded."""

    port: int
    cookies: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (value, path)
    set_cookies: list[str] = field(default_factory=list)

    def request(
        self,
        method: str,
        target: str,
        form: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> Answer:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        hdrs = {"Host": f"127.0.0.1:{self.port}", **(headers or {})}
        path = target.split("?", 1)[0]
        sent = [f"{k}={v}" for k, (v, p) in self.cookies.items() if path.startswith(p)]
        if sent:
            hdrs["Cookie"] = "; ".join(sent)
        if form is not None:
            body = urllib.parse.urlencode(form).encode()
            hdrs["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, target, body=body, headers=hdrs)
        r = conn.getresponse()
        data = r.read()
        for header in r.headers.get_all("Set-Cookie") or []:
            self.set_cookies.append(header)
            c: SimpleCookie = SimpleCookie()
            c.load(header)
            for name, morsel in c.items():
                if morsel["max-age"] == "0" or not morsel.value:
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = (morsel.value, morsel["path"] or "/")
        conn.close()
        return Answer(r.status, r.headers, data)

    def get(self, target: str, **kw: Any) -> Answer:
        return self.request("GET", target, **kw)

    def post(self, target: str, form: dict[str, str] | None = None, **kw: Any) -> Answer:
        return self.request("POST", target, form=form or {}, **kw)

    def sign_in(self, password: str = PASSWORD) -> None:
        r = self.post("/console/signin", {"password": password})
        assert r.status == 303, r.text
        assert "hagate_console" in self.cookies

    def csrf(self) -> str:
        import re

        page = self.get("/console/devices").text
        m = re.search(r'name="csrf" value="([^"]+)"', page)
        assert m, page[:500]
        return m.group(1)


@dataclass
class ConsoleSite:
    gateway: Gateway
    port: int
    token: str

    @property
    def state(self) -> Path:
        return self.gateway.state

    def browser(self) -> Browser:
        return Browser(self.port)

    def api(
        self,
        method: str,
        target: str,
        data: Any = None,
        token: str | None = None,
        raw: bytes | None = None,
    ) -> Answer:
        headers = {"Authorization": f"Bearer {self.token if token is None else token}"}
        body = raw
        if data is not None:
            body = json.dumps(data).encode()
            headers["Content-Type"] = "application/json"
        return Browser(self.port).request(method, target, headers=headers, body=body)


def suggestions(site: ConsoleSite, since: str | None = None, timeout: float = 30) -> Any:
    """GET /api/v1/suggestions, asking again while it answers 202 (being worked out)."""
    import time

    target = "/api/v1/suggestions" + (f"?since={since}" if since else "")
    deadline = time.monotonic() + timeout
    while True:
        r = site.api("GET", target)
        if r.status != 202:
            assert r.status == 200, r.text
            return r.json()
        assert r.headers["Retry-After"] == "2" and r.json() == {"working": True, "retry_after": 2}
        assert time.monotonic() < deadline, "the suggestions were never worked out"
        time.sleep(0.3)


def start_console(tmp: Path, prepare: Callable[[Gateway], None] | None = None) -> ConsoleSite:
    g = make_gateway(tmp)
    port = free_port()
    g.configure(extra=f'\nadmin:\n  listen: "127.0.0.1:{port}"\n')
    secret = tmp / "password"
    secret.write_text(PASSWORD + "\n")
    r = run_hagate("console", "password", "--password-file", secret, state=g.state)
    assert r.code == 0, r.err
    r = run_hagate("console", "token", "create", "tests", state=g.state)
    assert r.code == 0, r.err
    token = r.out.strip()
    g.issue("phone")
    if prepare is not None:
        prepare(g)
    g.start()
    return ConsoleSite(g, port, token)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleSite]:
    s = start_console(tmp_path_factory.mktemp("console"))
    try:
        yield s
    finally:
        s.gateway.stop()
        s.gateway.upstream.close()
