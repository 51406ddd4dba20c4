"""Large bodies stream through the gateway in bounded memory (a 1 GiB download and upload)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gateway.harness import Gateway, make_gateway, read_response, rss_kib
from tests.nginx import Nginx, upstream

GIB = 1 << 30
LIMIT_KIB = 100 * 1024


@pytest.fixture
def bulk(tmp_path: Path) -> Iterator[tuple[Gateway, Nginx]]:
    nginx = upstream(tmp_path / "nginx", GIB)
    g = make_gateway(tmp_path / "gw")
    g.upstream.close()
    cfg = g.state / "hagate.yaml"
    cfg.write_text(
        cfg.read_text().replace(f"127.0.0.1:{g.upstream.port}", f"127.0.0.1:{nginx.port}")
    )
    g.issue("phone")
    g.start()
    try:
        yield g, nginx
    finally:
        g.stop()
        nginx.stop()


class PeakRss:
    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, 0, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_kib(self.pid))
            time.sleep(0.05)

    def __enter__(self) -> PeakRss:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.thread.join()


def test_one_gib_download_and_upload_in_bounded_memory(
    bulk: tuple[Gateway, Nginx], tmp_path: Path
) -> None:
    g, nginx = bulk
    assert g.proc is not None
    with PeakRss(g.proc.pid) as rss, g.connect("phone") as sock:
        sock.sendall(b"GET /big.bin HTTP/1.1\r\nHost: ha.test\r\n\r\n")
        buf = bytearray()
        while b"\r\n\r\n" not in buf:
            buf += sock.recv(65536)
        head, _, rest = bytes(buf).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") and f"Content-Length: {GIB}".encode() in head
        received = len(rest)
        while received < GIB:
            data = sock.recv(1 << 20)
            assert data, received
            received += len(data)
        assert received == GIB

        zeros = bytes(1 << 20)
        sock.sendall(
            b"PUT /upload/big.bin HTTP/1.1\r\nHost: ha.test\r\nContent-Length: %d\r\n\r\n" % GIB
        )
        for _ in range(GIB // len(zeros)):
            sock.sendall(zeros)
        r = read_response(sock, bytearray())
        assert r.status in (201, 204), r
    assert (nginx.prefix / "www" / "upload" / "big.bin").stat().st_size == GIB
    assert rss.peak < LIMIT_KIB, f"peak RSS {rss.peak} KiB"
    assert rss.peak > 0
