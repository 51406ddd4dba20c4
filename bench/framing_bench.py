"""The tunnel's framing: DATA frame size and window, measured on the multiplexer alone.

Two `Mux` ends over one loopback TCP connection (TLS left out: it costs the same for every
framing). For each frame size and window: bulk MB/s through one stream (64 MiB), the same
with a second stream trickling small messages (how long its messages wait behind the bulk),
and the round trip of a 100-byte message on an idle tunnel. Bounded by sizes and counts.
"""

from __future__ import annotations

import asyncio
import statistics
import time

from bench.report import machine, write_section
from hagate.tunnel import frames, mux

BULK = 64 << 20
ROUND_TRIPS = 2000


Pair = tuple[mux.Mux, mux.Mux, "asyncio.Queue[mux.Stream]", list["asyncio.Task[None]"]]


async def pair() -> Pair:
    accepted: asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = (
        asyncio.get_running_loop().create_future()
    )

    async def on_client(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        accepted.set_result((r, w))

    server = await asyncio.start_server(on_client, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    cr, cw = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    sr, sw = await accepted
    server.close()
    opened: asyncio.Queue[mux.Stream] = asyncio.Queue()

    async def on_open(stream: mux.Stream) -> None:
        await opened.put(stream)

    relay, home = mux.Mux(sr, sw), mux.Mux(cr, cw, on_open=on_open)
    tasks = [asyncio.create_task(relay.run()), asyncio.create_task(home.run())]
    return relay, home, opened, tasks


async def drain_stream(stream: mux.Stream) -> int:
    total = 0
    while data := await stream.read():
        total += len(data)
        stream.consumed(len(data))
    return total


async def measure() -> tuple[float, float, float]:
    relay, home, queue, tasks = await pair()
    # Round trip of a small message on an idle tunnel.
    s = relay.open_stream({})
    t = await queue.get()
    rtts = []
    for _ in range(ROUND_TRIPS):
        start = time.perf_counter()
        await s.write(b"x" * 100)
        data = await t.read()
        t.consumed(len(data))
        await t.write(data)
        back = await s.read()
        s.consumed(len(back))
        rtts.append(time.perf_counter() - start)
    # Bulk through one stream, while the small-message stream keeps pinging.
    bulk = relay.open_stream({})
    sink = await queue.get()
    payload = b"\0" * (1 << 20)
    start = time.perf_counter()
    reader = asyncio.create_task(drain_stream(sink))
    waits: list[float] = []

    async def pinger() -> None:
        while not reader.done():
            t0 = time.perf_counter()
            await s.write(b"y" * 100)
            data = await t.read()
            t.consumed(len(data))
            waits.append(time.perf_counter() - t0)
            await asyncio.sleep(0.001)

    ping = asyncio.create_task(pinger())
    for _ in range(BULK // len(payload)):
        await bulk.write(payload)
    bulk.finish()
    assert await reader == BULK
    elapsed = time.perf_counter() - start
    ping.cancel()
    relay.close()
    home.close()
    await asyncio.gather(*tasks, return_exceptions=True)
    return BULK / elapsed / 1e6, statistics.median(rtts) * 1e6, statistics.median(waits) * 1e6


def main() -> None:
    rows = []
    original = (mux.CHUNK, frames.INITIAL_WINDOW, mux.GRANT_THRESHOLD)
    for chunk in (4096, 16384, 65536):
        for window in (64 << 10, 256 << 10, 1 << 20):
            mux.CHUNK = chunk
            frames.INITIAL_WINDOW = window
            vars(mux)["INITIAL_WINDOW"] = window  # the name mux imported from frames
            mux.GRANT_THRESHOLD = window // 4
            mbps, rtt, wait = asyncio.run(measure())
            rows.append((chunk, window, mbps, rtt, wait))
            print(
                chunk,
                window,
                f"{mbps:.0f} MB/s, rtt {rtt:.0f} us, small message behind bulk {wait:.0f} us",
                flush=True,
            )
    mux.CHUNK, frames.INITIAL_WINDOW, mux.GRANT_THRESHOLD = original
    vars(mux)["INITIAL_WINDOW"] = original[1]
    lines = [
        "## Tunnel framing",
        "",
        f"`bench/framing_bench.py` on {machine()}: two multiplexer ends over loopback TCP "
        "(no TLS), 64 MiB through one stream while a second stream exchanges 100-byte "
        "messages; medians. hagate uses 64 KiB frames and a 256 KiB window.",
        "",
        "| DATA frame | window | bulk MB/s | small-message round trip, idle "
        "| small message behind bulk |",
        "|---:|---:|---:|---:|---:|",
    ]
    for chunk, window, mbps, rtt, wait in rows:
        lines.append(
            f"| {chunk // 1024} KiB | {window // 1024} KiB | {mbps:,.0f} | {rtt:.0f} µs "
            f"| {wait:.0f} µs |"
        )
    body = "\n".join(lines)
    print(body)
    write_section("framing", body)


if __name__ == "__main__":
    main()
