"""The log line per request: written at once, flushed once per event-loop turn."""

from __future__ import annotations

import asyncio
import io
import json

from hagate.gateway.runner import log_writer


class CountingOut(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.flushes = 0

    def flush(self) -> None:
        self.flushes += 1
        super().flush()


ROW = {
    "time": 0.0,
    "client_ip": "127.0.0.1",
    "action": "allow",
    "duration_ms": 1.0,
    "request_id": "ab",
    "status": 200,
    "rule": None,
}


def test_lines_of_one_loop_turn_share_a_flush() -> None:
    out = CountingOut()
    log = log_writer("json", out)

    async def main() -> None:
        for _ in range(3):
            log(ROW)
        assert out.flushes == 0  # not yet: the loop has not turned
        await asyncio.sleep(0)
        assert out.flushes == 1
        log(ROW)
        await asyncio.sleep(0)
        assert out.flushes == 2  # a lone line is flushed on the next turn too

    asyncio.run(main())
    lines = out.getvalue().splitlines()
    assert len(lines) == 4
    assert json.loads(lines[0]) == {k: v for k, v in ROW.items() if v is not None}


def test_without_a_loop_each_line_is_flushed_at_once() -> None:
    out = CountingOut()
    log = log_writer("text", out)
    log(ROW)
    assert out.flushes == 1
    assert "127.0.0.1" in out.getvalue() and "allow" in out.getvalue()


def test_request_ids_are_unique_across_forked_workers() -> None:
    import os

    from hagate.gateway.server import new_request_id

    ours = {new_request_id() for _ in range(1000)}
    assert len(ours) == 1000 and all(len(i) == 16 for i in ours)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # a worker: its ids go back through the pipe
        os.write(write, "\n".join(new_request_id() for _ in range(1000)).encode())
        os._exit(0)
    os.close(write)
    data = b""
    while chunk := os.read(read, 65536):
        data += chunk
    os.close(read)
    os.waitpid(pid, 0)
    theirs = set(data.decode().split("\n"))
    assert len(theirs) == 1000
    assert not ours & theirs
    assert {i[:8] for i in ours} != {i[:8] for i in theirs}  # a fresh prefix after the fork


def test_a_text_line_says_what_happened_and_when() -> None:
    out = CountingOut()
    log = log_writer("text", out)
    first = 1_800_000_000.25  # 2027-01-15T08:00:00Z
    log({**ROW, "time": first, "rule": "No certificate", "cert_name": None, "reason": "x y"})
    log({**ROW, "time": first + 0.5})
    log({**ROW, "time": first + 61})  # a later second gets its own timestamp
    a, b, c = out.getvalue().splitlines()
    assert a.startswith('2027-01-15T08:00:00Z 127.0.0.1 "')
    assert a.endswith(' rule="No certificate" reason="x y"')
    assert b.startswith("2027-01-15T08:00:00Z ")
    assert c.startswith("2027-01-15T08:01:01Z ")
