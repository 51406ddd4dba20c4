"""The event writer process: rows from the gateway's socket into SQLite, and log lines.

    python -m hagate.events.writer FD PATH RETENTION_DAYS CAPACITY LOG_FORMAT

Rules:
  1. A reader thread takes every message off the socket at once, so the gateway's socket
     never fills while SQLite is slow. It writes each row's log line on stdout (LOG_FORMAT
     `text` or `json`; `none` for no lines) as the rows arrive, so a slow disk does not hold
     the lines back, then keeps the rows for SQLite: at most CAPACITY, and drops past that.
  2. The main thread writes what the reader holds, one transaction at a time, then reports
     (written, dropped) on the socket. Retention runs at start and every hour.
  3. SIGINT, SIGTERM and SIGHUP are ignored: the writer ends when the gateway closes its end
     of the socket (or dies), after writing everything it holds, with a last report.
"""

from __future__ import annotations

import collections
import contextlib
import marshal
import mmap
import signal
import socket
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from hagate.events.logline import LOG_FORMATS, line_maker

if TYPE_CHECKING:  # the writer loads as little as it can: a home server's memory is counted
    from collections.abc import Callable, Mapping
    from pathlib import Path
    from typing import IO
from hagate.events.schema import (
    BATCH,
    COLUMNS,
    IGNORED_SIGNALS,
    MAX_MESSAGE,
    RETENTION_EVERY,
    connect,
    purge,
    write_rows,
)


class Writer:
    def __init__(
        self,
        sock: socket.socket,
        path: Path | str,
        retention_days: int,
        capacity: int,
        log_format: str,
        out: IO[bytes],
    ):
        self.sock = sock
        self.line = line_maker(log_format) if log_format in LOG_FORMATS else None
        self.out = out
        self.path = path
        self.retention_days = retention_days
        self.capacity = capacity
        self.held: collections.deque[tuple[Any, ...]] = collections.deque()
        self.written = self.dropped = 0
        self.ended = False
        self.wake = threading.Event()

    def read(self) -> None:
        held = self.held
        # Anonymous memory: a page becomes resident only once a message reaches it, and most
        # messages are a few kilobytes (a zeroed bytearray would hold the whole megabyte).
        buffer = mmap.mmap(-1, MAX_MESSAGE)
        view = memoryview(buffer)
        try:
            while size := self.sock.recv_into(buffer):
                rows = marshal.loads(view[:size])
                if self.line is not None:
                    self.say(rows, self.line)
                room = self.capacity - len(held)
                if len(rows) > room:
                    self.dropped += len(rows) - max(room, 0)
                    rows = rows[: max(room, 0)]
                held.extend(rows)
                self.wake.set()
        except OSError:
            pass
        self.ended = True
        self.wake.set()

    def say(self, rows: list[tuple[Any, ...]], line: Callable[[Mapping[str, Any]], str]) -> None:
        text = "".join([line(dict(zip(COLUMNS, row, strict=True))) for row in rows])
        with contextlib.suppress(OSError, ValueError):  # stdout closed: the rows still count
            self.out.write(text.encode("utf-8", "backslashreplace"))
            self.out.flush()

    def run(self) -> None:
        # Reading (and saying the lines) starts first: SQLite may be busy from the start.
        threading.Thread(target=self.read, name="hagate-events-reader", daemon=True).start()
        db = connect(self.path)
        purge(db, self.retention_days)
        purged_at = time.monotonic()
        held = self.held
        try:
            while True:
                self.wake.wait(RETENTION_EVERY)
                self.wake.clear()
                ended = self.ended
                while held:
                    batch = [held.popleft() for _ in range(min(len(held), BATCH))]
                    if write_rows(db, batch):
                        self.written += len(batch)
                    else:
                        self.dropped += len(batch)
                self.report(last=ended)
                if ended:
                    return
                if time.monotonic() - purged_at > RETENTION_EVERY:
                    purge(db, self.retention_days)
                    purged_at = time.monotonic()
        finally:
            db.close()

    def report(self, last: bool = False) -> None:
        """Counts so far, to the gateway. Reports are cumulative, so one that finds the socket
        full is skipped; the last one waits (the gateway is reading until the end)."""
        with contextlib.suppress(OSError):  # the gateway is gone: nobody to tell
            self.sock.send(
                marshal.dumps((self.written, self.dropped)), 0 if last else socket.MSG_DONTWAIT
            )


def main(argv: list[str]) -> None:
    # Started with these blocked (see EventStore._spawn): ignore them, then let them in.
    for sig in IGNORED_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, IGNORED_SIGNALS)
    fd, path, retention_days, capacity, log_format = argv
    sock = socket.socket(fileno=int(fd))
    out = sys.stdout.buffer
    Writer(sock, path, int(retention_days), int(capacity), log_format, out).run()


if __name__ == "__main__":
    main(sys.argv[1:])
