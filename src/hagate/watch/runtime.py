"""One gateway process's watching: its status file, its event-row counters for the metrics,
and the tunnel's cut-off alerts. A task on the event loop, ticking every second."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time

from hagate.events.store import EventStore
from hagate.state import StateDir
from hagate.watch.alerts import Alert, Alerter
from hagate.watch.metrics import Metrics
from hagate.watch.status import WRITE_EVERY, Links, ProcessStatus, remove_status, write_status

TICK = 1.0


class Watch:
    def __init__(
        self,
        state: StateDir,
        role: str,
        hostname: str,
        links: Links,
        events: EventStore | None,
        metrics: Metrics | None,
        alerts: Alerter | None,
        cut_off_after: float = 300.0,
    ) -> None:
        self.state = state
        self.role = role
        self.hostname = hostname
        self.links = links
        self.events = events
        self.metrics = metrics
        self.alerts = alerts
        self.cut_off_after = cut_off_after
        self.pid = os.getpid()
        self.started = time.time()
        self._written_at = -WRITE_EVERY
        self._cut_off_told = False

    def status(self, now: float) -> ProcessStatus:
        events = self.events
        return ProcessStatus(
            pid=self.pid,
            role=self.role,
            started=self.started,
            updated=now,
            events_written=events.written if events else 0,
            events_dropped=events.dropped if events else 0,
            relays=dict(self.links.relays),
        )

    def tick(self, now: float) -> ProcessStatus | None:
        """One second's work; the status to write when one is due."""
        if self.metrics is not None and self.events is not None:
            self.metrics.event_rows(self.events.written, self.events.dropped)
        if self.alerts is not None and self.role == "connect":
            self._tunnel_alerts(now)
        if now - self._written_at >= WRITE_EVERY:
            self._written_at = now
            return self.status(now)
        return None

    def _tunnel_alerts(self, now: float) -> None:
        assert self.alerts is not None
        since = self.links.all_down_since()
        if since is not None and not self._cut_off_told and now - since >= self.cut_off_after:
            self._cut_off_told = True
            minutes = (now - since) / 60
            self.alerts.offer(
                Alert(
                    "tunnel_down",
                    self.hostname,
                    f"{self.hostname} has been cut off from every relay for {minutes:.0f} "
                    "minutes: it cannot be reached from outside.",
                    {"relays": sorted(self.links.relays), "since": since},
                )
            )
        elif since is None and self._cut_off_told:
            self._cut_off_told = False
            up = sorted(r for r, (ok, _) in self.links.relays.items() if ok)
            self.alerts.offer(
                Alert(
                    "tunnel_up",
                    self.hostname,
                    f"{self.hostname} is reachable again, through {', '.join(up)}.",
                    {"relays": up},
                )
            )

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            status = self.tick(time.time())
            if status is not None:
                with contextlib.suppress(OSError):
                    await loop.run_in_executor(None, write_status, self.state, status)
            await asyncio.sleep(TICK)

    def close(self) -> None:
        remove_status(self.state, self.pid)
        if self.alerts is not None:
            self.alerts.close()
