"""Keeping a server's memory to what its connections use, on glibc.

Each TLS connection on uvloop mallocs a 256 KiB read buffer, of which an idle connection
touches a page or two. glibc serves that size with its own mmap, so untouched pages cost
nothing, until one such buffer is freed: glibc then raises its mmap threshold above 256 KiB
("dynamic threshold"), and every later buffer comes from the heap, where the small objects
allocated between them touch pages all across it. Measured on 2,000 idle uvloop TLS connections:
27.5 KB each with the threshold fixed, 51 KB after one buffer was freed. In a relay, where
connections come and go, that happens early. With 5,000 homes connected, six runs without
the pin used 253 to 327 MB, and two runs with it used 286 and 295 MB (bench/relay_capacity.py).

`pin_mmap_threshold()` fixes the threshold at glibc's default, which also stops it from
moving. Elsewhere than glibc (musl, macOS) it does nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
THRESHOLD = 128 * 1024  # glibc's default


def pin_mmap_threshold() -> bool:
    """Fix malloc's mmap threshold at 128 KiB for this process; whether this platform can."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, THRESHOLD))


def trim() -> bool:
    """Give the free memory of every malloc arena back to the system (glibc's malloc_trim);
    whether this platform can."""
    try:
        malloc_trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return False
    malloc_trim.argtypes = [ctypes.c_size_t]
    malloc_trim.restype = ctypes.c_int
    malloc_trim(0)
    return True


class AfterFlood:
    """Called with the count of open connections as each one closes: once a crowd of at least
    `crowd` connections has thinned to a quarter, the memory they used goes back to the
    system, `settle` seconds later (when the connections that were closing have gone).
    glibc keeps freed memory for the process by default: a gateway that held 6,000
    connections stayed at 474 MB after they closed (47 MB before)."""

    def __init__(self, crowd: int = 128, settle: float = 2.0) -> None:
        self.crowd = crowd
        self.settle = settle
        self.peak = 0
        self.trims = 0
        self.open = 0
        self._pending: asyncio.TimerHandle | None = None

    def __call__(self, open_now: int) -> None:
        self.open = open_now
        if open_now >= self.peak:
            self.peak = open_now + 1  # the one closing was open too
        elif self.peak >= self.crowd and open_now <= self.peak // 4 and self._pending is None:
            self._pending = asyncio.get_running_loop().call_later(self.settle, self._trim)

    def _trim(self) -> None:
        self._pending = None
        self.peak = self.open
        self.trims += 1
        # Connections cut short leave exceptions in reference cycles (a traceback holds the
        # frame that holds the task that holds the exception), with their buffers: they go
        # only when the cycle collector runs, so it runs first.
        gc.collect()
        trim()
