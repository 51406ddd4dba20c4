"""`hagate acme renew --force` that stops, to be killed, while writing the new certificate.

Usage: python -m tests.acme.pause_write STATE_DIR before-rename|after-rename
It prints PAUSED and sleeps at that point: with the new certificate and key fully in the
temporary file but not yet renamed over the old one, or renamed but the directory not yet
synced. The test then sends SIGKILL.
"""

from __future__ import annotations

import os
import sys
import time

from hagate.cli import main

state, where = sys.argv[1], sys.argv[2]
real_fsync, real_replace = os.fsync, os.replace
renamed = False


def pause() -> None:
    print("PAUSED", flush=True)
    time.sleep(60)


def fsync(fd: int) -> None:
    real_fsync(fd)
    path = os.readlink(f"/proc/self/fd/{fd}")
    name = os.path.basename(path)
    if where == "before-rename" and name.startswith(".certificate.pem.") and name.endswith(".tmp"):
        pause()
    if where == "after-rename" and renamed and os.path.isdir(path):
        pause()


def replace(src: str, dst: str) -> None:
    global renamed
    real_replace(src, dst)
    if str(dst).endswith("certificate.pem"):
        renamed = True


os.fsync = fsync  # type: ignore[assignment]
os.replace = replace  # type: ignore[assignment]
main(["--state-dir", state, "acme", "renew", "--force"])
