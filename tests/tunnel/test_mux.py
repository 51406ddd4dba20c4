"""The multiplexer's streams on their own: two `Mux` ends over a real socket pair."""

from __future__ import annotations

import asyncio
import socket

from hagate.tunnel import mux
from hagate.tunnel.frames import INITIAL_WINDOW, FrameType


async def ends() -> tuple[mux.Mux, mux.Mux, asyncio.Queue[mux.Stream], list[bytes]]:
    """A sending end whose outgoing frames are recorded, and a receiving end."""
    a, b = socket.socketpair()
    ar, aw = await asyncio.open_connection(sock=a)
    br, bw = await asyncio.open_connection(sock=b)
    opened: asyncio.Queue[mux.Stream] = asyncio.Queue()

    async def on_open(stream: mux.Stream) -> None:
        await opened.put(stream)

    sender, receiver = mux.Mux(ar, aw), mux.Mux(br, bw, on_open=on_open)
    sent: list[bytes] = []
    send = sender.send

    def recording(frame_type: FrameType, stream: int, payload: bytes = b"") -> None:
        if frame_type is FrameType.DATA:
            sent.append(payload)
        send(frame_type, stream, payload)

    sender.send = recording  # type: ignore[method-assign]
    for end in (sender, receiver):
        asyncio.get_running_loop().create_task(end.run())
    return sender, receiver, opened, sent


def test_writes_are_cut_to_frames_within_the_window_and_empty_writes_send_nothing() -> None:
    async def main() -> None:
        sender, receiver, opened, sent = await ends()
        stream = sender.open_stream({})
        peer = await opened.get()
        await stream.write(b"")
        await stream.write(b"small")
        big = bytes(range(256)) * (INITIAL_WINDOW // 256 + 1024)  # more than one window
        writing = asyncio.create_task(stream.write(big))
        received = b""
        while len(received) < 5 + len(big):
            data = await peer.read()
            received += data
            peer.consumed(len(data))  # grants window, so the rest can follow
        await writing
        assert received == b"small" + big
        assert sent[0] == b"small"  # one frame, and none for the empty write
        assert all(0 < len(p) <= mux.CHUNK for p in sent)
        assert sum(map(len, sent)) == 5 + len(big)
        sender.close()
        receiver.close()

    asyncio.run(main())


def test_a_writer_waits_for_window_once_it_is_spent() -> None:
    async def main() -> None:
        sender, receiver, opened, sent = await ends()
        stream = sender.open_stream({})
        peer = await opened.get()
        await stream.write(b"x" * INITIAL_WINDOW)  # exactly the window: goes out at once
        blocked = asyncio.create_task(stream.write(b"y"))
        await asyncio.sleep(0.2)
        assert not blocked.done()  # no window left, and the reader has granted none
        assert sum(map(len, sent)) == INITIAL_WINDOW
        got = 0
        while got < INITIAL_WINDOW:
            data = await peer.read()
            got += len(data)
        peer.consumed(got)
        await asyncio.wait_for(blocked, 5)
        assert await peer.read() == b"y"
        sender.close()
        receiver.close()

    asyncio.run(main())
