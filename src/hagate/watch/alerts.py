"""Alerts into Home Assistant: events on its bus, type `hagate_alert`, for what needs a person.

Rules:
  1. `offer()` and `observe()` run on the gateway's event loop and never block: they put the
     alert on an in-memory queue and return. A thread does everything else (the ledger, the
     requests to Home Assistant, the periodic checks), so an alert never slows a request.
  2. Deduplication is by kind and subject, once per `repeat_after` (an hour by default),
     across processes and restarts: the ledger decides (hagate.watch.ledger).
  3. While Home Assistant is unreachable alerts wait in the ledger's queue (at most
     `alerts.queue`, oldest dropped and counted) and go out, in order, once it answers.
  4. One process sends: the one holding `alerts.lock`. It also runs the periodic checks
     (certificates near expiry, the audit), so workers never say the same thing twice.
  5. The token is sent only in the Authorization header. No message, log line or error
     contains it.
"""

from __future__ import annotations

import contextlib
import fcntl
import http.client
import json
import queue
import ssl
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any
from urllib.parse import urlsplit

from hagate.config import AlertSettings
from hagate.config import read_token as read_access_token
from hagate.state import StateDir
from hagate.watch.ledger import LEDGER_NAME, Ledger

EVENT_TYPE = "hagate_alert"
LOCK_NAME = "alerts.lock"
EXPIRY_WARN_DAYS = (14, 7, 3, 1)  # an alert as each of these is crossed
FIRST_CHECKS_AFTER = 30.0
RETRY_MIN, RETRY_MAX = 1.0, 60.0
BURST_TABLE_LIMIT = 10_000
DAY = 86400.0


@dataclass(frozen=True)
class Alert:
    kind: str  # revoked_certificate, new_location, blocked_burst, tunnel_down, tunnel_up,
    # certificate_expiring, audit_finding
    subject: str  # what it is about: a certificate, an address, a finding id
    message: str  # plain words, for a notification
    fields: dict[str, Any] = field(default_factory=dict)  # ip, asn, country, certificate, rule
    repeat_after: float | None = None  # None: alerts.repeat_after

    def data(self, hostname: str, now: float) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "subject": self.subject,
            "message": self.message,
            "hostname": hostname,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
            **self.fields,
        }


def read_token(path: str) -> str:
    return read_access_token(path, "alerts")


@dataclass(frozen=True)
class Delivery:
    ok: bool
    retry: bool  # worth trying again later (HA down, restarting, token refused)
    error: str | None = None


def _connection(url: str, timeout: float) -> http.client.HTTPConnection:
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    if parts.scheme == "https":
        return http.client.HTTPSConnection(
            host, parts.port, timeout=timeout, context=ssl.create_default_context()
        )
    return http.client.HTTPConnection(host, parts.port, timeout=timeout)


def _prefix(url: str) -> str:
    """The path Home Assistant's /api/ is under: none, or a proxy's (the Supervisor's /core)."""
    return urlsplit(url).path.rstrip("/")


def home_assistant_running(url: str, token: str, timeout: float = 10.0) -> Delivery:
    """Whether Home Assistant has finished starting (its core state is RUNNING): an event
    fired while it starts may find the household's automations not loaded yet, and be lost."""
    conn = _connection(url, timeout)
    try:
        conn.request(
            "GET", _prefix(url) + "/api/config", headers={"Authorization": f"Bearer {token}"}
        )
        response = conn.getresponse()
        body = response.read(1 << 20)
    except (OSError, http.client.HTTPException) as e:
        return Delivery(False, True, f"Home Assistant at {url} is unreachable ({e})")
    finally:
        conn.close()
    if response.status in (401, 403):
        return Delivery(False, True, _refused(response.status))
    if response.status != 200:
        return Delivery(False, True, f"Home Assistant answered {response.status}")
    try:
        state = json.loads(body).get("state")
    except (ValueError, AttributeError):
        state = None
    if state != "RUNNING":
        return Delivery(False, True, "Home Assistant is still starting")
    return Delivery(True, False)


def _refused(status: int) -> str:
    return (
        f"Home Assistant refused the token ({status}): check "
        "alerts.home_assistant.token_file (a long-lived access token of an admin user)"
    )


def post_event(url: str, token: str, data: dict[str, Any], timeout: float = 10.0) -> Delivery:
    """POST one event to Home Assistant's REST API."""
    conn = _connection(url, timeout)
    body = json.dumps(data).encode()
    try:
        conn.request(
            "POST",
            f"{_prefix(url)}/api/events/{EVENT_TYPE}",
            body,
            {
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/json",
                "User-Agent": "hagate-alerts",
            },
        )
        response = conn.getresponse()
        response.read(65536)
    except (OSError, http.client.HTTPException) as e:
        return Delivery(False, True, f"Home Assistant at {url} is unreachable ({e})")
    finally:
        conn.close()
    if 200 <= response.status < 300:
        return Delivery(True, False)
    if response.status in (401, 403):
        return Delivery(False, True, _refused(response.status))
    if response.status >= 500 or response.status == 404:
        return Delivery(False, True, f"Home Assistant answered {response.status}")
    return Delivery(False, False, f"Home Assistant answered {response.status}; alert dropped")


class Alerter:
    """One process's alerts: offered on the event loop, handled in a thread."""

    def __init__(
        self,
        state: StateDir,
        settings: AlertSettings,
        hostname: str,
        warn: IO[str] = sys.stderr,
        periodic: Callable[[Alerter], None] | None = None,
    ) -> None:
        self.state = state
        self.settings = settings
        self.hostname = hostname
        self.token = read_token(settings.token_file)
        self.warn = warn
        self.periodic = periodic  # the sender's checks (expiry, audit), in its thread
        self._queue: queue.SimpleQueue[Alert | tuple[str, Any] | None] = queue.SimpleQueue()
        self._bursts: dict[str, list[float]] = {}  # ip -> [window start, count, told]
        self._recent: dict[tuple[str, str], float] = {}  # this process's own first filter
        self._places: set[tuple[str, int | None, str | None]] = set()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock_file: IO[bytes] | None = None
        self._told: str | None = None
        self._running = False  # Home Assistant said it runs, and nothing failed since
        self.sender = False

    # -- on the event loop ----------------------------------------------------------------

    def offer(self, alert: Alert, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        key = (alert.kind, alert.subject)
        last = self._recent.get(key)
        repeat = alert.repeat_after or self.settings.repeat_after
        if last is not None and now - last < min(repeat, 60.0):
            return  # the ledger would say no: spare the thread the question
        if len(self._recent) > BURST_TABLE_LIMIT:
            self._recent.clear()
        self._recent[key] = now
        self._queue.put(alert)

    def observe(
        self,
        action: str,
        client_ip: str,
        asn: int | None,
        country: str | None,
        cert_name: str | None,
        cert_sha256: str | None,
        verified: bool,
        revoked: bool,
        rule: str | None,
        now: float | None = None,
        bound_to: tuple[str, str] | None = None,
    ) -> None:
        """One event row's worth of facts: what may become an alert. `bound_to`: the
        certificate whose bound credential let the request in without it."""
        now = time.monotonic() if now is None else now
        where = {"ip": client_ip or None, "asn": asn, "country": country}
        if revoked and cert_name:
            self.offer(
                Alert(
                    "revoked_certificate",
                    cert_name,
                    f"The revoked certificate '{cert_name}' was presented from {client_ip}"
                    f"{_network(asn, country)}; the request was refused.",
                    {**where, "certificate": cert_name},
                ),
                now,
            )
        holder = (cert_name, cert_sha256) if verified and cert_sha256 else bound_to
        if holder is not None and holder[1] and (asn or country):
            name, sha256 = holder
            key = (sha256, asn, country)
            if key not in self._places:
                if len(self._places) > BURST_TABLE_LIMIT:
                    self._places.clear()
                self._places.add(key)
                place = (name, sha256, client_ip, asn, country, bound_to is not None)
                self._queue.put(("place", place))
        if action == "block" and client_ip:
            self._burst(client_ip, asn, country, rule, now)

    def _burst(
        self, ip: str, asn: int | None, country: str | None, rule: str | None, now: float
    ) -> None:
        s = self.settings
        entry = self._bursts.get(ip)
        if entry is None or now - entry[0] > s.burst_seconds:
            if len(self._bursts) > BURST_TABLE_LIMIT:
                self._bursts = {
                    k: v for k, v in self._bursts.items() if now - v[0] <= s.burst_seconds
                }
            entry = self._bursts[ip] = [now, 0, 0]
        entry[1] += 1
        if entry[1] >= s.burst_requests and not entry[2]:
            entry[2] = 1
            self.offer(
                Alert(
                    "blocked_burst",
                    ip,
                    f"{int(entry[1])} requests from {ip}{_network(asn, country)} were blocked "
                    f"within {s.burst_seconds:g} seconds"
                    + (f" (last by the rule '{rule}')" if rule else "")
                    + ".",
                    {"ip": ip, "asn": asn, "country": country, "rule": rule},
                ),
                now,
            )

    # -- the thread ---------------------------------------------------------------------------

    def start(self) -> Alerter:
        self._thread = threading.Thread(target=self._run, name="hagate-alerts", daemon=True)
        self._thread.start()
        return self

    def close(self, timeout: float = 5.0) -> None:
        """Stop; what is admitted stays queued in the ledger for the next start."""
        self._stop.set()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout)
        if self._lock_file is not None:
            self._lock_file.close()

    def say(self, text: str) -> None:
        with contextlib.suppress(OSError, ValueError):
            print(f"hagate: alerts: {text}", file=self.warn, flush=True)

    def _take_lock(self) -> None:
        if self.sender:
            return
        f = open(self.state / LOCK_NAME, "ab")  # noqa: SIM115
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            return
        self._lock_file, self.sender = f, True

    def _run(self) -> None:
        ledger = Ledger(self.state / LEDGER_NAME)
        retry_at, delay = 0.0, RETRY_MIN
        checks_at = time.monotonic() + min(FIRST_CHECKS_AFTER, self.settings.checks_every)
        try:
            while not self._stop.is_set():
                self._take_lock()
                now = time.monotonic()
                wait = 1.0
                if self.sender and ledger.queued():
                    wait = max(0.05, min(wait, retry_at - now))
                try:
                    item = self._queue.get(timeout=wait)
                except queue.Empty:
                    item = None
                while item is not None:
                    self._handle(ledger, item)
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        item = None
                if not self.sender:
                    continue
                now = time.monotonic()
                if self.periodic is not None and now >= checks_at:
                    checks_at = now + self.settings.checks_every
                    try:
                        self.periodic(self)
                    except Exception as e:  # a check's bug must not end the alerts
                        self.say(f"a periodic check failed: {type(e).__name__}: {e}")
                if now >= retry_at and ledger.queued():
                    if self._send(ledger):
                        delay = RETRY_MIN
                    else:
                        retry_at, delay = now + delay, min(delay * 2, RETRY_MAX)
        finally:
            ledger.close()

    def _handle(self, ledger: Ledger, item: Alert | tuple[str, Any]) -> None:
        if isinstance(item, Alert):
            self.admit(ledger, item)
            return
        _, (name, sha, ip, asn, country, bound) = item
        new = ledger.place(sha, asn, country)
        if not new:
            return
        what = " and ".join(
            part
            for part, flag in (
                (f"country {country}", "country" in new),
                (f"network AS{asn}", "asn" in new),
            )
            if flag
        )
        self.admit(
            ledger,
            Alert(
                "new_location",
                f"{name}:{asn}:{country}",
                (
                    f"A Home Assistant login or webhook bound to the certificate '{name}' was"
                    f" used without it from a new {what} for the first time"
                    if bound
                    else f"The certificate '{name}' was used from a new {what} for the first time"
                )
                + f" ({ip}{_network(asn, country)}).",
                {"ip": ip, "asn": asn, "country": country, "certificate": name},
            ),
        )

    def admit(self, ledger: Ledger, alert: Alert) -> bool:
        s = self.settings
        before = ledger.dropped()
        admitted = ledger.admit(
            alert.kind,
            alert.subject,
            alert.data(self.hostname, time.time()),
            alert.repeat_after or s.repeat_after,
            s.queue,
        )
        if ledger.dropped() > before:
            self.say(
                f"the queue is full ({s.queue} alerts wait for Home Assistant): the oldest was "
                f"dropped ({ledger.dropped()} dropped in all)"
            )
        return admitted

    def _send(self, ledger: Ledger) -> bool:
        """Send what is queued, oldest first; False when Home Assistant did not take one.
        After a failure, sending waits until Home Assistant says it is running."""
        if not self._running:
            result = home_assistant_running(self.settings.url, self.token)
            if not result.ok:
                self._tell(result.error)
                return False
            self._running = True
        for alert_id, data in ledger.pending():
            result = post_event(self.settings.url, self.token, data)
            if result.ok:
                ledger.delivered(alert_id)
                if self._told is not None:
                    self.say("Home Assistant takes alerts again")
                    self._told = None
                continue
            self._tell(result.error)
            if not result.retry:
                ledger.discard(alert_id)
                continue
            self._running = False
            return False
        return True

    def _tell(self, error: str | None) -> None:
        """Say a delivery problem once (not on every retry)."""
        if error != self._told:
            self.say(error or "an alert was not delivered")
            self._told = error


def _network(asn: int | None, country: str | None) -> str:
    parts = [p for p in (f"AS{asn}" if asn else "", country or "") if p]
    return f" ({', '.join(parts)})" if parts else ""
