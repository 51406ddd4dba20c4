"""Prometheus metrics, multi-process safe: every worker writes its own files under the state
directory's `metrics/` (prometheus_client's multi-process mode), the admin listener adds
them up when scraped.

Rules:
  1. `prepare()` runs once in the supervising process, before any worker starts and before
     prometheus_client is imported anywhere: the library picks its storage at import time,
     from PROMETHEUS_MULTIPROC_DIR. It empties the directory, so counts start at zero.
  2. Without an admin listener there is no `Metrics` object at all: the gateway checks for
     None, and pays nothing else.
  3. Labels are bounded: actions and statuses are few; a handshake failure's reason is put
     into one of a handful of kinds, never its free text.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from hagate.state import StateDir

METRICS_DIR = "metrics"
ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def prepare(state: StateDir) -> Path:
    """An empty metrics directory, named in the environment for this process and its
    workers."""
    directory = state / METRICS_DIR
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(mode=0o700)
    os.environ[ENV] = str(directory)
    return directory


def handshake_kind(reason: str | None) -> str:
    """A failed handshake's reason as a label value."""
    text = (reason or "").lower()
    if text.startswith("client certificate refused"):
        return "client_certificate"
    if text.startswith("not tls"):
        return "not_tls"
    if "timed out" in text:
        return "timeout"
    if "closed the connection" in text:
        return "closed"
    if text.startswith("no common tls"):
        return "no_common_parameters"
    return "other"


class Metrics:
    """The gateway's and connector's metrics in one process."""

    def __init__(self) -> None:
        if ENV not in os.environ:
            raise RuntimeError("metrics.prepare() must run before Metrics()")
        from prometheus_client import Counter, Gauge, Histogram

        self.requests = Counter(
            "hagate_requests",
            "Requests and connections by the gateway's action and the status sent.",
            ["action", "status"],
            registry=None,
        )
        self.handshake_failures = Counter(
            "hagate_handshake_failures",
            "TLS handshakes that failed, by kind of reason.",
            ["reason"],
            registry=None,
        )
        self.upstream_latency = Histogram(
            "hagate_upstream_latency_seconds",
            "Time from sending a request to Home Assistant to its response head.",
            buckets=LATENCY_BUCKETS,
            registry=None,
        )
        self.websockets = Gauge(
            "hagate_websockets",
            "Websocket connections open through the gateway.",
            multiprocess_mode="livesum",
            registry=None,
        )
        self.tunnel_connections = Gauge(
            "hagate_tunnel_connections",
            "Tunnel connections to relays that are up.",
            multiprocess_mode="livesum",
            registry=None,
        )
        self.tunnel_streams = Counter(
            "hagate_tunnel_streams", "Streams the relays opened to this home.", registry=None
        )
        self.tunnel_reconnects = Counter(
            "hagate_tunnel_reconnects",
            "Times the connector lost a relay and connected again.",
            registry=None,
        )
        self.event_rows_written = Counter(
            "hagate_event_rows_written", "Rows written to the event log.", registry=None
        )
        self.event_rows_dropped = Counter(
            "hagate_event_rows_dropped",
            "Rows the event log could not keep (a slow or full disk).",
            registry=None,
        )
        self._children: dict[tuple[str, int], Any] = {}
        self._written = self._dropped = 0

    def event(self, action: str, status: int, reason: str | None) -> None:
        key = (action, status)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.requests.labels(action, str(status or ""))
        child.inc()
        if action == "tls_error":
            self.handshake_failures.labels(handshake_kind(reason)).inc()

    def event_rows(self, written: int, dropped: int) -> None:
        """The event store's running totals; the counters take the difference."""
        if written > self._written:
            self.event_rows_written.inc(written - self._written)
        if dropped > self._dropped:
            self.event_rows_dropped.inc(dropped - self._dropped)
        self._written, self._dropped = max(written, self._written), max(dropped, self._dropped)


def process_gone(pid: int) -> None:
    """A worker ended: its live gauges (websockets, tunnel connections) no longer count."""
    if ENV in os.environ:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
