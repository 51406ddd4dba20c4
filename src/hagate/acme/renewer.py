"""The renewer task that runs inside every gateway (and relay) process.

Each process sleeps until the certificate is due (or a backoff ends), then tries the renewal
lock: one process renews, the others find the lock taken, wait, and then find the new
certificate on disk. Nothing here blocks the event loop: the ACME exchange runs in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from hagate.acme.renewal import Attempt, Outcome, next_action, renew
from hagate.acme.store import AcmeFiles, RenewalBusy
from hagate.config import AcmeSettings

T = TypeVar("T")
LOOK_EVERY = 300.0  # another process may have renewed, or been told to wait: look again
BUSY_RETRY = 5.0
REACHABLE_POLL = 0.5


async def in_daemon_thread(work: Callable[[], T]) -> T:
    """`work()` in a daemon thread: an order can take a minute and a half, and a gateway told
    to stop must not wait for it (the default executor is joined when the loop closes)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def run() -> None:
        try:
            result = work()
        except BaseException as e:  # handed to the awaiting task, which decides
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(settle, None, e)
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, result, None)

    threading.Thread(target=run, name="hagate-acme", daemon=True).start()
    return await future


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
                attempt = await in_daemon_thread(
                    lambda: renew(self.files, self.settings, self.name, say=self.say)
                )
            except RenewalBusy:
                await asyncio.sleep(BUSY_RETRY)
                continue
            if attempt.outcome in (Outcome.RENEWED, Outcome.FAILED):
                self.report(attempt)
            elif attempt.outcome is Outcome.WAITING and attempt.not_before is None:
                await asyncio.sleep(BUSY_RETRY)  # cannot happen; never spin
