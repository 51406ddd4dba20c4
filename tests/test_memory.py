"""Fixing glibc's mmap threshold (hagate.memory), which the relay does at start so that
each TLS connection's large read buffer stays a mapping of its own, touched only in part."""

from __future__ import annotations

import subprocess
import sys

# Run in a child: the threshold is process-wide. It frees one 300 KB chunk (which, left to
# itself, glibc answers by moving the threshold above 256 KiB), then says whether a 256 KiB
# buffer, uvloop's TLS read buffer size, comes from the heap.
PROBE = """
import ctypes, sys
from hagate.memory import pin_mmap_threshold
if sys.argv[1] == "pin":
    assert pin_mmap_threshold()
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.free(libc.malloc(300_000))
buffer = libc.malloc(256 * 1024)
for line in open("/proc/self/maps"):
    if line.rstrip().endswith("[heap]"):
        start, end = (int(x, 16) for x in line.split()[0].split("-"))
        print("heap" if start <= buffer < end else "own mapping")
        break
else:
    print("own mapping")
"""


def where(mode: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def test_a_pinned_threshold_keeps_large_buffers_out_of_the_heap() -> None:
    assert where("pin") == "own mapping"


def test_without_it_glibc_moves_them_into_the_heap() -> None:
    """The behaviour the relay guards against, shown on this machine's glibc."""
    assert where("leave") == "heap"
