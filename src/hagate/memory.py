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

import ctypes

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
