"""The admin listener: `GET /metrics` for Prometheus, and nothing else.

Rules:
  1. Off unless `admin:` is configured; it binds loopback unless told otherwise.
  2. One path, two methods (GET, HEAD). Any other path is 404, any other method 405; no
     redirects, no index, no other file. Request heads are bounded in size and time.
  3. The Host header must be an address or `localhost` (or the configured listen host): a web
     page that rebinds its own DNS name to 127.0.0.1 cannot read the metrics through a
     browser.
  4. It runs in a thread of the supervising process, reading the workers' metric files; what
     only the state directory knows (certificate expiry, audit findings) is computed here.
"""

from __future__ import annotations

import ipaddress
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from hagate.config import parse_listen
from hagate.errors import HagateError
from hagate.state import StateDir

AUDIT_EVERY = 600.0
REQUEST_TIMEOUT = 10.0


def host_allowed(host_header: str | None, listen_host: str) -> bool:
    """Whether a Host header names this listener by address (or localhost)."""
    if not host_header:
        return False
    host = host_header.strip().lower()
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else ""
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    if host in ("localhost", listen_host.lower()):
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class StateCollector:
    """Certificate expiry times and the audit's findings by severity."""

    def __init__(self, state: StateDir) -> None:
        self.state = state
        self.findings: dict[str, int] | None = None
        self._audited_at = -AUDIT_EVERY
        self._lock = threading.Lock()

    def _audit(self) -> dict[str, int] | None:
        from hagate.watch.audit import run_audit
        from hagate.watch.findings import counts

        with self._lock:
            if time.monotonic() - self._audited_at >= AUDIT_EVERY:
                self._audited_at = time.monotonic()
                try:
                    self.findings = counts(run_audit(self.state).findings)
                except Exception:
                    self.findings = None  # a broken config is the gateway's to report
            return self.findings

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        from hagate.pki.authority import read_inventory
        from hagate.state import INVENTORY_NAME
        from hagate.watch.audit import server_certificate

        expiry = GaugeMetricFamily(
            "hagate_certificate_expiry_timestamp_seconds",
            "When each certificate in use expires (Unix time): kind client or server, name the"
            " certificate's (the hostname for the server's), issuer hagate-ca or acme.",
            labels=["kind", "name", "issuer"],
        )
        now = time.time()
        try:
            records = read_inventory(self.state / INVENTORY_NAME)
        except Exception:
            records = []
        for r in records:
            if not r.revoked and r.not_after.timestamp() > now:
                expiry.add_metric(["client", r.name, "hagate-ca"], r.not_after.timestamp())
        try:
            from hagate.config import load_config

            cfg = load_config(self.state.config_path)
            server = server_certificate(self.state, cfg)
        except Exception:
            server = None
        if server is not None:
            expiry.add_metric(["server", cfg.hostname, server.source], server.not_after)
        yield expiry
        yield from self._alerts()
        findings = self._audit()
        if findings is not None:
            family = GaugeMetricFamily(
                "hagate_audit_findings",
                "Findings of hagate audit (run every 10 minutes) by severity.",
                labels=["severity"],
            )
            for severity, n in findings.items():
                family.add_metric([severity], n)
            yield family

    def _alerts(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        from hagate.watch.ledger import LEDGER_NAME

        path = self.state / LEDGER_NAME
        if not path.exists():
            return
        try:
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
            try:
                queued = db.execute("SELECT count(*) FROM queue").fetchone()[0]
                row = db.execute("SELECT value FROM counters WHERE name = 'dropped'").fetchone()
            finally:
                db.close()
        except sqlite3.Error:
            return
        yield GaugeMetricFamily(
            "hagate_alerts_queued", "Alerts waiting for Home Assistant.", value=queued
        )
        yield CounterMetricFamily(
            "hagate_alerts_dropped",
            "Alerts dropped: the queue was full, or Home Assistant refused them.",
            value=row[0] if row else 0,
        )


class AdminServer:
    def __init__(self, listen: str, state: StateDir, metrics_dir: Path) -> None:
        from prometheus_client import CollectorRegistry
        from prometheus_client.multiprocess import MultiProcessCollector

        self.host, self.port = parse_listen(listen)
        self.registry = CollectorRegistry()
        MultiProcessCollector(self.registry, path=str(metrics_dir))  # type: ignore[no-untyped-call]
        self.registry.register(StateCollector(state))
        self._server = self._bind()
        self.port = self._server.server_address[1]
        self._running = False

    def _bind(self) -> ThreadingHTTPServer:
        registry, listen_host = self.registry, self.host

        class Handler(BaseHTTPRequestHandler):
            timeout = REQUEST_TIMEOUT

            def version_string(self) -> str:
                return "hagate-admin"

            def log_message(self, format: str, *args: Any) -> None:
                pass  # no access log: a scrape every 15 s would bury everything else

            def _answer(self, body: bool) -> None:
                from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

                if not host_allowed(self.headers.get("Host"), listen_host):
                    self._plain(421, b"misdirected request\n", body)
                    return
                # The target as sent: http.server folds a leading "//" into "/" in self.path.
                words = self.requestline.split()
                target = words[1] if len(words) >= 2 else ""
                if target.split("?", 1)[0] != "/metrics":
                    self._plain(404, b"not found: only /metrics is served here\n", body)
                    return
                data = generate_latest(registry)
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPE_LATEST)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if body:
                    self.wfile.write(data)

            def _plain(self, status: int, text: bytes, body: bool = True) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(text)))
                if status == 405:
                    self.send_header("Allow", "GET, HEAD")
                self.send_header("Connection", "close")
                self.end_headers()
                if body:
                    self.wfile.write(text)
                self.close_connection = True

            def do_GET(self) -> None:
                self._answer(True)

            def do_HEAD(self) -> None:
                self._answer(False)

            def _refuse(self) -> None:
                self._plain(405, b"method not allowed: GET /metrics only\n")

            do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = _refuse
            do_CONNECT = _refuse

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            address_family = socket.AF_INET6 if ":" in listen_host else socket.AF_INET

        try:
            return Server((self.host, self.port), Handler)
        except OSError as e:
            raise HagateError(
                f"admin listener: cannot listen on {self.host}:{self.port}: {e.strerror}"
            ) from None

    def start(self) -> AdminServer:
        threading.Thread(
            target=self._server.serve_forever, name="hagate-admin", daemon=True
        ).start()
        self._running = True
        return self

    def close(self) -> None:
        if self._running:
            self._server.shutdown()
        self._server.server_close()
