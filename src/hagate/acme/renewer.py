"""The renewer task that runs inside every gateway (and relay) process.

Each process sleeps until the certificate is due (or a backoff ends), then tries the renewal
lock: one process renews, the others find the lock taken, wait, and then find the new
certificate on disk. Nothing here blocks the event loop: the ACME exchange runs in a thread.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from hagate.acme.renewal import Attempt, Outcome, next_action, renew
from hagate.acme.store import AcmeFiles, RenewalBusy
from hagate.config import AcmeSettings

LOOK_EVERY = 300.0  # another process may have renewed, or been told to wait: look again
BUSY_RETRY = 5.0
REACHABLE_POLL = 0.5


class Renewer:
    def __init__(
        self,
        files: AcmeFiles,
        settings: AcmeSettings,
        name: str,
        report: Callable[[Attempt], None],
        reachable: Callable[[], bool] = lambda: True,
        say: Callable[[str], None] = lambda _: None,
    ) -> None:
        self.files = files
        self.settings = settings
        self.name = name
        self.report = report
        self.reachable = reachable  # the CA can reach us (a connector is connected)
        self.say = say

    async def run(self) -> None:
        while True:
            wait = next_action(self.files, self.name, time.time()) - time.time()
            if wait > 0:
                await asyncio.sleep(min(wait, LOOK_EVERY))
                continue
            while not self.reachable():
                await asyncio.sleep(REACHABLE_POLL)
            try:
                attempt = await asyncio.to_thread(
                    renew, self.files, self.settings, self.name, say=self.say
                )
            except RenewalBusy:
                await asyncio.sleep(BUSY_RETRY)
                continue
            if attempt.outcome in (Outcome.RENEWED, Outcome.FAILED):
                self.report(attempt)
            elif attempt.outcome is Outcome.WAITING and attempt.not_before is None:
                await asyncio.sleep(BUSY_RETRY)  # cannot happen; never spin
