"""Drive the corpus through hagate to Home Assistant's parser, and check what HA was asked.

`HaSide` runs ha_side.py in the Home Assistant virtualenv: aiohttp as HA runs it, recording
each connection's bytes. `run_cases` sends cases through the gateway (each followed by a
certificate holder's request, the victim a poisoned upstream connection would hit), and
`analyse` re-parses every recorded stream with aiohttp's C and pure-Python parsers and
returns each broken invariant as a sentence.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hagate.events.store import read_events
from hagate.http1.paths import WEBHOOK_PREFIX, redact_query
from tests.differential.corpus import HOST, SKIP_PATH, Case
from tests.e2e.homeassistant import CACHE, ensure_venv
from tests.gateway.harness import Gateway, Response, read_response
from tests.net import free_port, wait_listening

HA_SIDE = Path(__file__).with_name("ha_side.py")
ATTACKER, HOLDER, VICTIM = 66, 77, 88  # last octet of the client address, per kind of client
VICTIM_SECRET = "Bearer victim-token"


# The aiohttp releases the gateway is read against: the one Home Assistant 2025.4.4 pins (its
# own venv) and those current Home Assistant releases pin, each in a venv of its own.
AIOHTTP_SIDES = ("ha-2025.4.4", "aiohttp==3.13.3", "aiohttp==3.14.5")


def aiohttp_python(side: str) -> Path:
    """The python of a venv with `side`'s aiohttp (made once, then cached)."""
    if side.startswith("ha-"):
        return ensure_venv() / "bin" / "python"
    venv = CACHE / side.replace("==", "-")
    python = venv / "bin" / "python"
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (venv / "installed").exists():
            shutil.rmtree(venv, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            subprocess.run(
                [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                 side],
                check=True,
                timeout=900,
            )  # fmt: skip
            (venv / "installed").write_text(side + "\n")
    return python


class HaSide:
    """aiohttp as Home Assistant runs it, with a tap on its connections and a control port."""

    def __init__(self, tmp: Path, side: str = AIOHTTP_SIDES[0]) -> None:
        self.port = free_port()
        self.control_port = free_port()
        self.side = side
        python = aiohttp_python(side)
        self.log = (tmp / "ha_side.log").open("wb")
        self.proc = subprocess.Popen(
            [str(python), str(HA_SIDE), str(self.port), str(self.control_port)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        wait_listening(self.control_port, self.proc, timeout=30)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _call(self, path: str, job: dict[str, Any] | None = None) -> Any:
        data = json.dumps(job).encode() if job is not None else None
        url = f"http://127.0.0.1:{self.control_port}{path}"
        with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=60) as r:
            return json.loads(r.read())

    def state(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("/state")
        return result

    def reset(self) -> None:
        self._call("/reset", {})

    def parse(self, stream: bytes, parser: str, switched: bool) -> dict[str, Any]:
        job = {"stream": base64.b64encode(stream).decode(), "parser": parser, "switched": switched}
        result: dict[str, Any] = self._call("/parse", job)
        return result

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def point_at(g: Gateway, upstream_url: str, rules: str) -> None:
    """Make the test gateway's upstream `upstream_url` instead of its recording upstream."""
    g.upstream.close()
    cfg = g.state / "hagate.yaml"
    cfg.write_text(cfg.read_text().replace(f"http://127.0.0.1:{g.upstream.port}", upstream_url))
    g.configure(
        rules=rules,
        gateway={"header_timeout": 1, "idle_timeout": 0.5, "response_timeout": 5},
    )


# -- running cases -----------------------------------------------------------------------


@dataclass
class Outcome:
    case: Case
    responses: list[Response] = field(default_factory=list)
    error: str = ""
    victim: str = ""  # what was wrong with the victim's answer, if anything


def _methods(data: bytes) -> list[str]:
    """The method of each request head in a case's bytes, for reading the answers."""
    out = []
    for chunk in data.split(b"\r\n\r\n"):
        first = chunk.lstrip(b"\r\n").split(b" ", 1)[0]
        if first.isalpha() and first.isupper():
            out.append(first.decode())
    return out


def send(g: Gateway, case: Case, source: str) -> Outcome:
    outcome = Outcome(case)
    try:
        sock = g.connect("phone" if case.cert else None, source=source)
    except (OSError, ssl.SSLError) as e:
        outcome.error = f"connect: {e}"
        return outcome
    with sock:
        sock.settimeout(5)
        try:
            for i, part in enumerate(case.parts):
                if i:
                    time.sleep(0.03)
                sock.sendall(part)
        except (OSError, ssl.SSLError) as e:
            outcome.error = f"send: {e}"
        buf = bytearray()
        methods = _methods(b"".join(case.parts)) or ["GET"]
        while True:
            method = (
                methods[len(outcome.responses)] if len(outcome.responses) < len(methods) else "GET"
            )
            try:
                r = read_response(sock, buf, method)
            except (OSError, ssl.SSLError, ValueError, IndexError):
                break
            if 100 <= r.status < 200 and r.status != 101:
                continue  # 100 Continue comes before the answer
            outcome.responses.append(r)
            if r.status == 101:
                break
    return outcome


def victim(g: Gateway, n: int) -> str:
    """A certificate holder's ordinary request: empty string when it got its own answer."""
    target = f"/victim/{n}"
    try:
        r = g.request(
            target, cert="phone", headers={"Authorization": VICTIM_SECRET}, source=g.addr(VICTIM)
        )
    except (OSError, ssl.SSLError) as e:
        return f"victim {n}: {e}"
    if r.status != 200:
        return f"victim {n}: status {r.status}: {r.body[:200]!r}"
    got = json.loads(r.body)
    if got != {"path": target, "xff": g.addr(VICTIM)}:
        return f"victim {n} asked for {target} and got the answer to {got}"
    return ""


def run_cases(g: Gateway, cases: list[Case], threads: int = 6) -> list[Outcome]:
    def one(item: tuple[int, Case]) -> Outcome:
        n, case = item
        outcome = send(g, case, g.addr(HOLDER if case.cert else ATTACKER))
        outcome.victim = victim(g, n)
        return outcome

    with ThreadPoolExecutor(threads) as pool:
        outcomes = list(pool.map(one, enumerate(cases)))
    # Last, enough victims one after another to take every pooled upstream connection.
    for n in range(len(cases), len(cases) + 16):
        if problem := victim(g, n):
            outcomes.append(Outcome(Case("trailing victim", []), victim=problem))
    return outcomes


# -- checking --------------------------------------------------------------------------


@dataclass
class Parsed:
    """Every request aiohttp frames in the recorded streams, and what went wrong."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _fields(m: dict[str, Any], name: str) -> list[str]:
    return [v for k, v in m["headers"] if k.lower() == name]


def _comparable(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in m.items() if k != "should_close"} for m in messages]


def parse_streams(ha: HaSide, g: Gateway) -> Parsed:
    """Re-parse every stream HA received, with both parsers, and check each request in it."""
    state = ha.state()
    switched = set(state["switched"])
    out = Parsed()
    live: dict[str, list[tuple[str, str]]] = {}
    for record in state["records"]:
        live.setdefault(str(record["conn"]), []).append((record["method"], record["path"]))
    for conn, b64 in state["streams"].items():
        data = base64.b64decode(b64)
        shown = data[:1500]
        by_c = ha.parse(data, "c", conn in switched)
        by_py = ha.parse(data, "py", conn in switched)
        if by_c["error"] or by_py["error"]:
            out.problems.append(
                f"aiohttp cannot parse what the gateway forwarded "
                f"(C: {by_c['error']}; Python: {by_py['error']}): {shown!r}"
            )
        if _comparable(by_c["messages"]) != _comparable(by_py["messages"]):
            out.problems.append(f"aiohttp's C and Python parsers frame this differently: {shown!r}")
        messages = by_c["messages"]
        framed = [(m["method"], m["path"]) for m in messages]
        ran = live.get(conn, [])
        if any(r not in framed for r in ran):
            out.problems.append(f"HA ran {ran}, the offline parse frames {framed}: {shown!r}")
        for i, m in enumerate(messages):
            last = i == len(messages) - 1
            if m["upgrade"] and conn not in switched and (not last or m.get("tail")):
                out.problems.append(f"bytes followed an upgrade HA did not switch: {shown!r}")
            if not m["body_complete"] and not last:
                out.problems.append(f"a request followed a body cut short: {shown!r}")
            out.messages.append(m)
            out.problems += check_message(m, g)
    return out


def check_message(m: dict[str, Any], g: Gateway) -> list[str]:
    """What must hold for every request Home Assistant receives."""
    problems = []
    what = f"{m['method']} {m['path']}"
    hosts, xfh = _fields(m, "host"), _fields(m, "x-forwarded-host")
    xff, xfp = _fields(m, "x-forwarded-for"), _fields(m, "x-forwarded-proto")
    if len(hosts) != 1 or hosts != xfh:
        problems.append(f"{what}: Host {hosts} and X-Forwarded-Host {xfh} differ")
    if m["url_host"].lower().rstrip(".") != HOST:  # the same name as the rules saw
        problems.append(f"{what}: HA's request.url.host is {m['url_host']!r}")
    if len(xff) != 1 or xfp != ["https"]:
        problems.append(f"{what}: X-Forwarded-For {xff}, X-Forwarded-Proto {xfp}")
    for name in ("forwarded", "x-real-ip"):
        if _fields(m, name):
            problems.append(f"{what}: the client's {name} reached HA")
    if xff == [g.addr(ATTACKER)] and m["path"].partition("?")[0] != SKIP_PATH:
        problems.append(f"{what} reached HA from a client without a certificate")
    if xff == [g.addr(VICTIM)] and _fields(m, "authorization") != [VICTIM_SECRET]:
        problems.append(f"{what} carries the victim's address without its own headers")
    if _fields(m, "authorization") == [VICTIM_SECRET] and xff != [g.addr(VICTIM)]:
        problems.append(f"{what}: the victim's Authorization went out with address {xff}")
    if _fields(m, "authorization") == [VICTIM_SECRET] and not m["path"].startswith("/victim/"):
        problems.append(f"{what}: HA ran another request with the victim's Authorization")
    return problems


def _key(method: str | None, path: str | None, host: str | None, ip: str | None) -> tuple[str, ...]:
    return (method or "", path or "", host or "", ip or "")


def forwarded_key(m: dict[str, Any]) -> tuple[str, ...]:
    path, sep, query = m["path"].partition("?")
    if path.startswith(WEBHOOK_PREFIX) and len(path) > len(WEBHOOK_PREFIX):
        path = WEBHOOK_PREFIX + "…"  # a webhook id is a secret: events never show it
    loggable = f"{path}?{redact_query(query)}" if sep and query else path
    hosts, xff = _fields(m, "host"), _fields(m, "x-forwarded-for")
    return _key(m["method"], loggable, hosts[0] if hosts else "", xff[0] if xff else "")


def settled_events(g: Gateway, since: float = 0) -> list[dict[str, Any]]:
    """The event rows once they stop arriving (the writer sends them in batches)."""
    path = g.state / "events.sqlite3"
    rows: list[dict[str, Any]] = []
    for _ in range(40):
        time.sleep(0.5)
        with contextlib.suppress(Exception):
            now = [r for r in read_events(path) if r["time"] >= since]
            if now and len(now) == len(rows):
                return now
            rows = now
    return rows


def check_events(messages: list[dict[str, Any]], rows: list[dict[str, Any]]) -> list[str]:
    """The event log says exactly what HA was asked: each request HA received is a row that
    says it was forwarded, and each such row is a request HA received."""
    forwarded = Counter(
        _key(r["method"], r["path"], r["host"], r["client_ip"])
        for r in rows
        if r["action"] in ("allow", "skip")
    )
    maybe = Counter(  # an upstream error may come before or after HA had the request
        _key(r["method"], r["path"], r["host"], r["client_ip"])
        for r in rows
        if r["action"] == "upstream_error"
    )
    seen = Counter(forwarded_key(m) for m in messages)
    problems = [f"the event log says {k} was forwarded; HA never got it" for k in forwarded - seen]
    problems += [f"HA got {k}; the event log does not say so" for k in seen - forwarded - maybe]
    return problems


def check_outcomes(outcomes: list[Outcome]) -> list[str]:
    problems = []
    for o in outcomes:
        if o.victim:
            problems.append(f"after {o.case.name!r}: {o.victim}")
        if o.case.legal:
            statuses = [r.status for r in o.responses]
            if len(statuses) != o.case.requests or any(s not in (200, 101) for s in statuses):
                problems.append(
                    f"{o.case.name!r}: legal, answered {statuses} {o.error} "
                    f"{[r.body[:150] for r in o.responses if r.status >= 400]}"
                )
    return problems


def wait_idle(port: int) -> None:
    """Give connections that are still being torn down a moment to finish."""
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass
    time.sleep(0.3)
