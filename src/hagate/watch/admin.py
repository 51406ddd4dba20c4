"""What the admin listener (hagate.console.listener) serves as `/metrics`: the workers'
metric files added up, and what only the state directory knows (certificate expiry, audit
findings, the alert queue), computed when scraped; and its check of the Host header.
"""

from __future__ import annotations

import ipaddress
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hagate.state import StateDir

AUDIT_EVERY = 600.0


def host_allowed(host_header: str | None, listen_host: str) -> bool:
    """Whether a Host header names this listener by address (or localhost)."""
    if not host_header:
        return False
    host = host_header.strip().lower()
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else ""
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    if host in ("localhost", listen_host.lower(), socket.gethostname().lower()):
        return True  # the machine's own name (the app's, which Home Assistant calls it by)
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


def metrics_registry(state: StateDir, metrics_dir: Path) -> Any:
    """The workers' metrics (their files in `metrics_dir`) and the state directory's."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(metrics_dir))  # type: ignore[no-untyped-call]
    registry.register(StateCollector(state))
    return registry
