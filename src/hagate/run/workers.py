"""Worker processes: `--workers N` forks N, each serving on its own, supervised here.

SIGTERM, SIGINT and SIGHUP reach every worker; the supervisor returns when all have exited.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
import traceback
from collections.abc import Callable
from typing import Any


def _child(work: Callable[[], None]) -> int:
    try:
        work()
    except BaseException:
        traceback.print_exc()  # a worker's crash must be visible, not just its exit code
        return 1
    return 0


def fork_workers(
    count: int, work: Callable[[int], None], after_fork: Callable[[], None] | None = None
) -> None:
    """Run `work(i)` in `count` forked processes and supervise them.

    SIGTERM, SIGINT and SIGHUP are passed on to every worker; the parent returns when all
    have exited, and exits non-zero (naming the worker) if any failed.
    """
    children: list[int] = []
    for i in range(count):
        pid = os.fork()
        if pid == 0:
            os._exit(_child(functools.partial(work, i)))
        children.append(pid)
    if after_fork is not None:
        after_fork()

    def forward(signum: int, _frame: Any) -> None:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    status = 0
    for pid in children:
        while True:
            try:
                _, code = os.waitpid(pid, 0)
                break
            except InterruptedError:
                continue
        from hagate.watch.metrics import process_gone

        process_gone(pid)
        exit_code = os.waitstatus_to_exitcode(code)
        if exit_code:
            print(f"hagate: worker {pid} exited with {exit_code}", file=sys.stderr, flush=True)
        status = status or exit_code
    if status:
        sys.exit(status)
