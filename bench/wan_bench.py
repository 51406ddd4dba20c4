"""Home Assistant's frontend over a mobile link, through each way of reaching it from outside.

A real headless Chromium (Playwright driving Debian's chromium; the client certificate in its
NSS database, picked by the AutoSelectCertificateForUrls policy) opens the real Home
Assistant, waits for the login page, logs in, and waits until the dashboard's websocket is
connected and the states are in. Every run is cold: a new browser, profile and cache.

The browser reaches each chain through bench/delay_proxy.py, a slow link in user space (this
machine's kernel has no netem): one-way delay each direction, a rate cap shared by all
connections, one round trip charged per new connection. Chains, side by side in one run:
  hagate relay         relay -> tunnel -> `hagate connect` (TLS ends at home) -> HA
  hagate port-forward  `hagate serve` -> HA
  nginx HTTP/2         nginx with ssl_verify_client on and HTTP/2 -> HA (what users run)
  SniTun + HA TLS      SniTun's relay and client peer -> HA's own TLS (Nabu Casa's way; no
                       client certificate)
  HA TLS               HA's own TLS, nothing in between (the one-hop reference)
Reported per chain and link: the median of RUNS cold runs of the login page's time, the time
from submitting the login to the live dashboard, requests, TCP connections, TLS handshakes and
bytes. Runs are interleaved (run 1 of every chain, then run 2, ...) so drift in the machine's
speed falls on all chains alike.

A phone waking up: a client that already has a TLS session ticket reconnects, resumes the
session and gets its websocket back (authenticated by HA: `auth_ok`). The full and the
resumed handshake are timed separately, each the median of WAKES reconnects.

Usage: python -m bench.wan_bench [RUNS]   (RUNS defaults to 3)
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import ssl
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.conftest import run_hagate
from tests.e2e.homeassistant import PASSWORD, HomeAssistant
from tests.gateway.harness import Gateway, make_gateway
from tests.net import free_port, wait_listening
from tests.nginx import Nginx
from tests.nss import auto_select, nss_database
from tests.tunnel.harness import Relay, start_connector

from bench.delay_proxy import LINKS, ProxyProcess
from bench.report import machine, write_section
from bench.tunnel_bench import SniTun

POLICY = "hagate-wan-bench"  # Chromium managed policy file, while the run lasts
P12_PASSWORD = "wan-bench"
WAKES = 5
TIMEOUT_MS = 60_000
# True once the frontend has its websocket up and the states in.
DASHBOARD_LIVE = """() => {
    const h = document.querySelector("home-assistant");
    return !!(h && h.hass && h.hass.connected && h.hass.states
              && Object.keys(h.hass.states).length > 0);
}"""
BROWSER_FLAGS = [
    "--host-resolver-rules=MAP ha.test 127.0.0.1",
    "--disable-quic",
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@dataclass
class Chain:
    name: str
    port: int  # the chain's first hop
    certificate: bool  # the browser presents the client certificate
    token: str  # a long-lived access token of the chain's Home Assistant
    proxies: dict[str, ProxyProcess] = field(default_factory=dict)  # link name -> proxy


@dataclass(frozen=True)
class Browse:
    login_page: float  # seconds from navigation to the login form
    first_connect: float  # seconds from navigation to the start of the connection that served it
    dashboard: float  # seconds from submitting the login to the live dashboard
    requests: int
    connections: int
    tls_handshakes: int
    bytes_down: int
    bytes_up: int
    revisit: float  # seconds to the live dashboard again, cache warm, connections dropped
    revisit_connections: int


@dataclass(frozen=True)
class Wake:
    handshake: float  # seconds from connect to the TLS handshake done
    websocket: float  # seconds from connect to HA's auth_ok
    resumed: bool


def median(values: list[float]) -> float:
    return statistics.median(values)


# -- the browser ------------------------------------------------------------------------------


def browse(playwright: Any, base: str, nss_home: Path, work: Path, proxy: ProxyProcess) -> Browse:
    """One cold run: a new browser with an empty profile loads `base`, logs in and waits for
    the live dashboard."""
    shutil.rmtree(work, ignore_errors=True)
    home = work / "home"
    shutil.copytree(nss_home, home)
    context = playwright.chromium.launch_persistent_context(
        str(work / "profile"),
        executable_path="/usr/bin/chromium",
        headless=True,
        args=BROWSER_FLAGS,
        env={**os.environ, "HOME": str(home)},
        viewport={"width": 1280, "height": 900},
    )
    try:
        page = context.pages[0] if context.pages else context.new_page()
        requests: list[Any] = []  # completed ones: a page left behind aborts some
        page.on("requestfinished", lambda r: requests.append(r))
        proxy.reset()
        start = time.perf_counter()
        page.goto(base + "/", timeout=TIMEOUT_MS)
        page.wait_for_selector("input[name=username]", timeout=TIMEOUT_MS)
        login_page = time.perf_counter() - start
        if "/auth/authorize" not in page.url:
            raise RuntimeError(f"expected HA's login page, got {page.url}")
        page.fill("input[name=username]", "owner")
        page.fill("input[name=password]", PASSWORD)
        start = time.perf_counter()
        page.keyboard.press("Enter")
        page.wait_for_function(DASHBOARD_LIVE, timeout=TIMEOUT_MS, polling=10)
        dashboard = time.perf_counter() - start
        stats = proxy.stats()
        # A household's usual visit: the frontend is cached and the certificate chosen, but
        # the connections are gone (the phone slept or changed networks).
        page.close()
        proxy.drop()
        proxy.reset()
        page = context.new_page()
        start = time.perf_counter()
        page.goto(base + "/", timeout=TIMEOUT_MS)
        page.wait_for_function(DASHBOARD_LIVE, timeout=TIMEOUT_MS, polling=10)
        revisit = time.perf_counter() - start
        again = proxy.stats()
        # Chromium's Resource Timing, in ms from the request's start: a browser that has not
        # yet chosen a certificate for this server drops the first connection when asked for
        # one, chooses, and connects again; connectStart shows what that cost.
        document = next(r for r in requests if r.resource_type == "document")
        first = max(0.0, document.timing["connectStart"] / 1000)
    finally:
        context.close()
    return Browse(
        login_page,
        first,
        dashboard,
        len(requests),
        stats["connections"],
        stats["tls_handshakes"],
        stats["bytes_down"],
        stats["bytes_up"],
        revisit,
        again["connections"],
    )


# -- a phone waking up ------------------------------------------------------------------------


def wake(
    port: int, ctx: ssl.SSLContext, token: str, session: ssl.SSLSession | None
) -> tuple[Wake, ssl.SSLSession | None]:
    """Reconnect (resuming `session` if given), open HA's websocket and authenticate."""
    from websockets.sync.client import connect

    start = time.perf_counter()
    raw = socket.create_connection(("127.0.0.1", port), timeout=30)
    tls = ctx.wrap_socket(raw, server_hostname="ha.test", session=session)
    handshake = time.perf_counter() - start
    resumed = bool(tls.session_reused)
    with connect("ws://ha.test/api/websocket", sock=tls, open_timeout=30) as ws:
        if json.loads(ws.recv())["type"] != "auth_required":
            raise RuntimeError("HA did not ask the websocket to authenticate")
        ws.send(json.dumps({"type": "auth", "access_token": token}))
        answer = json.loads(ws.recv())
        websocket = time.perf_counter() - start
        if answer["type"] != "auth_ok":
            raise RuntimeError(f"HA refused the websocket: {answer}")
        ticket = tls.session
    return Wake(handshake, websocket, resumed), ticket


def wakes(port: int, ctx: ssl.SSLContext, token: str) -> dict[str, list[Wake]]:
    out: dict[str, list[Wake]] = {"full": [], "resumed": []}
    _, ticket = wake(port, ctx, token, None)  # the phone's last session before it slept
    for _ in range(WAKES):
        full, _ = wake(port, ctx, token, None)
        resumed, newer = wake(port, ctx, token, ticket)
        ticket = newer or ticket
        out["full"].append(full)
        out["resumed"].append(resumed)
    return out


# -- the chains -------------------------------------------------------------------------------


def nginx_in_front(prefix: Path, port: int, state: Path, ha: HomeAssistant) -> Nginx:
    """nginx as users set it up in front of HA: client certificates required, HTTP/2, the
    websocket upgraded, X-Forwarded-For for HA's trusted proxy."""
    n = Nginx(prefix, port)
    n.start(f"""
    map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
    server {{
        listen 127.0.0.1:{port} ssl http2;
        ssl_protocols TLSv1.2 TLSv1.3;  # nginx 1.22 leaves TLS 1.3 out unless told
        ssl_certificate {state}/server.crt; ssl_certificate_key {state}/server.key;
        ssl_client_certificate {state}/ca.crt; ssl_verify_client on;
        ssl_session_cache shared:SSL:1m;
        access_log {prefix}/access.log;
        location / {{
            proxy_pass http://127.0.0.1:{ha.port}; proxy_http_version 1.1;
            proxy_set_header Host $host; proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_read_timeout 1h; proxy_buffering off;
        }}
    }}""")
    return n


class Chains:
    """Everything the run starts, stopped in reverse order."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.stops: list[Callable[[], object]] = []
        self.chains: list[Chain] = []

    def close(self) -> None:
        for f in reversed(self.stops):
            with contextlib.suppress(Exception):
                f()

    def start(self) -> Gateway:
        tmp = self.tmp
        # Two Home Assistants with the same configuration: one plain behind the proxies, one
        # serving its own TLS with the same server certificate (SniTun's way, and direct).
        serve = make_gateway(tmp / "serve")
        serve.upstream.close()
        state = serve.state
        plain = HomeAssistant(tmp / "ha-plain", free_port())
        tls = HomeAssistant(
            tmp / "ha-tls",
            free_port(),
            tls=(state / "server.crt", state / "server.key", state / "ca.crt"),
        )
        for ha in (plain, tls):
            self.stops.append(ha.stop)
        # Both start at once; HA takes most of a minute.
        threads = [threading.Thread(target=ha.start) for ha in (plain, tls)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        tokens = {}
        for ha in (plain, tls):
            if not ha.proc or ha.proc.poll() is not None:
                raise RuntimeError(f"Home Assistant did not start: {ha.read_log()[-2000:]}")
            ha.onboard("https://ha.test/")
            tokens[ha.port] = ha.long_lived_token("wan-bench")

        cfg = state / "hagate.yaml"
        cfg.write_text(
            cfg.read_text().replace(f"http://127.0.0.1:{serve.upstream.port}", plain.url)
        )
        r = run_hagate(
            "cert",
            "issue",
            "browser",
            "--p12",
            tmp / "browser.p12",
            "--password-file",
            self._password(),
            state=state,
        )
        assert r.code == 0, r.err
        assert run_hagate("cert", "issue", "phone", "--pem-dir", tmp, state=state).code == 0
        # The connector's home is the same home: a copy of the state (same CA, same
        # certificates), with its own event log.
        home = Gateway(tmp / "connect-state", tmp / "connect", 0, serve.upstream)
        home.tmp.mkdir()
        shutil.copytree(state, home.state)

        serve.start()
        self.stops.append(serve.stop)
        self.chains.append(Chain("hagate port-forward", serve.port, True, tokens[plain.port]))

        relay = Relay.create(tmp)
        relay.start("--max-per-ip", "1000")
        self.stops.append(relay.stop)
        start_connector(home, [relay], relay.token())
        self.stops.append(home.stop)
        self.chains.insert(0, Chain("hagate relay", relay.port, True, tokens[plain.port]))

        nginx = nginx_in_front(tmp / "nginx", free_port(), state, plain)
        self.stops.append(nginx.stop)
        self.chains.append(Chain("nginx HTTP/2", nginx.port, True, tokens[plain.port]))

        snitun = SniTun.start(tls.port)
        self.stops.append(snitun.stop)
        self.chains.append(Chain("SniTun + HA TLS", snitun.port, False, tokens[tls.port]))
        self.chains.append(Chain("HA TLS", tls.port, False, tokens[tls.port]))

        for c in self.chains:
            for link in LINKS:
                proxy = ProxyProcess(free_port(), c.port, link)
                self.stops.append(proxy.stop)
                c.proxies[link.name] = proxy
        for c in self.chains:
            wait_listening(c.port)
        return serve

    def _password(self) -> Path:
        path = self.tmp / "p12-password"
        path.write_text(P12_PASSWORD + "\n")
        return path


# -- the report -------------------------------------------------------------------------------


def report(
    browses: dict[tuple[str, str], list[Browse]],
    woken: dict[tuple[str, str], dict[str, list[Wake]]],
    chains: list[Chain],
    runs: int,
) -> str:
    def m(chain: str, link: str, what: str) -> float:
        return median([float(getattr(x, what)) for x in browses[(chain, link)]])

    lines = [
        "## Home Assistant's frontend over a mobile link",
        "",
        f"`bench/wan_bench.py` on {machine()}. Headless Chromium (cold: new browser, profile "
        "and cache each run) opens HA 2025.4 at `/`, waits for the login form, logs in, and "
        "waits until the frontend's websocket is connected and the states are in. The link is "
        "bench/delay_proxy.py (a one-way delay each direction, the rate shared by all "
        "connections, one round trip charged per new connection; no loss, no slow start). "
        f"Median of {runs} cold runs per chain and link, interleaved. hagate and nginx ask "
        "for the client certificate; SniTun and HA's own TLS do not. *First connect* is when "
        "the connection that served the first page started (Chromium's Resource Timing): a "
        "browser asked for a certificate it has not chosen yet for that server drops the "
        "connection, chooses, and connects again. *Revisit* is a household's usual visit "
        "afterwards, in the same browser: a new tab at `/` with the frontend cached and the "
        "certificate chosen, after the link dropped every connection (a phone that slept or "
        "changed networks), to the live dashboard.",
    ]
    for link in LINKS:
        lines += [
            "",
            f"### {link.name}",
            "",
            "| chain | login page | first connect | login → dashboard | requests "
            "| TCP connections | TLS handshakes | bytes down / up | revisit | its connections |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for c in chains:
            n = c.name, link.name
            lines.append(
                f"| {c.name} | {m(*n, 'login_page'):.2f} s "
                f"| {m(*n, 'first_connect') * 1000:.0f} ms "
                f"| {m(*n, 'dashboard'):.2f} s "
                f"| {m(*n, 'requests'):.0f} "
                f"| {m(*n, 'connections'):.0f} "
                f"| {m(*n, 'tls_handshakes'):.0f} "
                f"| {m(*n, 'bytes_down') / 1e6:.2f} MB / {m(*n, 'bytes_up') / 1e3:.0f} kB "
                f"| {m(*n, 'revisit'):.2f} s | {m(*n, 'revisit_connections'):.0f} |"
            )
    relay, nginx, snitun = "hagate relay", "nginx HTTP/2", "SniTun + HA TLS"
    lines += [
        "",
        "Ratios of the medians (targets: the relay chain within 1.15 of nginx, and faster "
        "than SniTun):",
        "",
        "| link | relay : nginx, login page | relay : nginx, dashboard "
        "| relay : SniTun, login page | relay : SniTun, dashboard | relay : SniTun, revisit "
        "| port-forward : nginx, dashboard |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    verdicts = []
    for link in LINKS:
        ratio = {
            (peer, what): m(relay, link.name, what) / m(peer, link.name, what)
            for peer in (nginx, snitun)
            for what in ("login_page", "dashboard", "revisit")
        }
        forward = m("hagate port-forward", link.name, "dashboard") / m(
            nginx, link.name, "dashboard"
        )
        lines.append(
            f"| {link.name} | {ratio[(nginx, 'login_page')]:.2f} "
            f"| {ratio[(nginx, 'dashboard')]:.2f} | {ratio[(snitun, 'login_page')]:.2f} "
            f"| {ratio[(snitun, 'dashboard')]:.2f} | {ratio[(snitun, 'revisit')]:.2f} "
            f"| {forward:.2f} |"
        )
        within = all(ratio[(nginx, w)] <= 1.15 for w in ("login_page", "dashboard"))
        faster = {w: ratio[(snitun, w)] < 1 for w in ("login_page", "dashboard")}
        restart = m(relay, link.name, "first_connect") - m(snitun, link.name, "first_connect")
        verdicts.append(
            f"on {link.name}, the relay chain is {'within' if within else 'not within'} 1.15 "
            f"of nginx (target {'met' if within else 'missed'}); against SniTun it is "
            f"{'faster' if faster['login_page'] else 'slower'} to the login page and "
            f"{'faster' if faster['dashboard'] else 'slower'} to the dashboard (target "
            f"{'met' if all(faster.values()) else 'missed'}), with its first connection "
            f"starting {restart * 1000:.0f} ms later for the certificate; on a revisit it "
            f"takes {ratio[(snitun, 'revisit')]:.2f} of SniTun's time"
        )
    lines += ["", "Reading: " + "; ".join(verdicts) + "."]
    lines += [
        "",
        f"### A phone waking up (median of {WAKES} reconnects)",
        "",
        "A client that holds a TLS session ticket from its last connection reconnects over "
        "the link and gets HA's websocket back, authenticated (`auth_ok`). Times from "
        "`connect()`, which includes the round trip the link charges for TCP's handshake.",
        "",
        "| chain | link | full handshake | resumed handshake | websocket back, full "
        "| websocket back, resumed | resumed |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for c in chains:
        for link in LINKS:
            w = woken[(c.name, link.name)]
            full, res = w["full"], w["resumed"]
            lines.append(
                f"| {c.name} | {link.name} "
                f"| {median([x.handshake for x in full]) * 1000:.0f} ms "
                f"| {median([x.handshake for x in res]) * 1000:.0f} ms "
                f"| {median([x.websocket for x in full]) * 1000:.0f} ms "
                f"| {median([x.websocket for x in res]) * 1000:.0f} ms "
                f"| {sum(x.resumed for x in res)}/{len(res)} |"
            )
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    from playwright.sync_api import sync_playwright

    runs = int(argv[0]) if argv else 3
    tmp = Path(tempfile.mkdtemp(prefix="hagate-wan-bench-"))
    chains = Chains(tmp)
    browses: dict[tuple[str, str], list[Browse]] = {}
    woken: dict[tuple[str, str], dict[str, list[Wake]]] = {}
    try:
        serve = chains.start()
        nss_home = tmp / "nss-home"
        nss_database(nss_home, serve.state / "ca.crt", tmp / "browser.p12", P12_PASSWORD)
        urls = [
            f"https://ha.test:{p.port}"
            for c in chains.chains
            if c.certificate
            for p in c.proxies.values()
        ]
        with auto_select(urls, POLICY), sync_playwright() as playwright:
            for run in range(runs):
                for link in LINKS:
                    for c in chains.chains:
                        proxy = c.proxies[link.name]
                        b = browse(
                            playwright, f"https://ha.test:{proxy.port}", nss_home, tmp / "b", proxy
                        )
                        browses.setdefault((c.name, link.name), []).append(b)
                        print(f"run {run + 1}: {link.name}: {c.name}: {b}", flush=True)
        for c in chains.chains:
            ctx = ssl.create_default_context(cafile=str(serve.state / "ca.crt"))
            if c.certificate:
                ctx.load_cert_chain(tmp / "phone.crt", tmp / "phone.key")
            for link in LINKS:
                woken[(c.name, link.name)] = wakes(c.proxies[link.name].port, ctx, c.token)
                print(f"wake: {link.name}: {c.name}: {woken[(c.name, link.name)]}", flush=True)
    finally:
        chains.close()
        shutil.rmtree(tmp, ignore_errors=True)
    body = report(browses, woken, chains.chains, runs)
    print(body)
    write_section("wan", body)


if __name__ == "__main__":
    main(sys.argv[1:])
