"""A running `hagate serve` for tests, a recording upstream, and a raw TLS client.

The recording upstream exists to observe exactly what the gateway forwards (and that refused
requests never arrive) and to inject failures (slow answers); end-to-end behaviour against a
real Home Assistant is in tests/e2e.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import signal
import socket
import socketserver
import ssl
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from hagate.events.store import read_events
from hagate.pki import certs
from hagate.pki.authority import Authority, CertRecord, read_inventory, write_inventory
from hagate.state import StateDir
from tests.conftest import run_hagate
from tests.net import free_port, wait_listening


@dataclass
class Seen:
    head: bytes
    body: bytes

    @property
    def request_line(self) -> str:
        return self.head.split(b"\r\n", 1)[0].decode("latin-1")

    def header(self, name: str) -> list[str]:
        out = []
        for line in self.head.split(b"\r\n")[1:]:
            k, _, v = line.decode("latin-1").partition(":")
            if k.strip().lower() == name.lower():
                out.append(v.strip())
        return out


class RecordingUpstream:
    """HTTP/1.1 keep-alive server that records every request it receives."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.port = free_port()
        upstream = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                sock: socket.socket = self.request
                buf = b""
                while True:
                    while b"\r\n\r\n" not in buf:
                        data = sock.recv(65536)
                        if not data:
                            return
                        buf += data
                    head, buf = buf.split(b"\r\n\r\n", 1)
                    head += b"\r\n\r\n"
                    seen = Seen(head, b"")
                    lower = head.lower()
                    if b"expect: 100-continue" in lower:
                        sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                    if b"transfer-encoding: chunked" in lower:
                        while not buf.endswith(b"0\r\n\r\n"):
                            data = sock.recv(65536)
                            if not data:
                                return  # the gateway cut the body short
                            buf += data
                        body, rest = b"", buf
                        while True:
                            size_line, rest = rest.split(b"\r\n", 1)
                            size = int(size_line, 16)
                            if size == 0:
                                break
                            body += rest[:size]
                            rest = rest[size + 2 :]
                        seen.body, buf = body, b""
                    else:
                        length = 0
                        for v in seen.header("content-length"):
                            length = int(v)
                        while len(buf) < length:
                            data = sock.recv(65536)
                            if not data:
                                return
                            buf += data
                        seen.body, buf = buf[:length], buf[length:]
                    upstream.seen.append(seen)
                    path = seen.request_line.split(" ")[1]
                    if path.startswith("/slow"):
                        time.sleep(float(path.rsplit("/", 1)[-1] or 2))
                    if path.startswith("/ws") and b"upgrade: websocket" in lower:
                        sock.sendall(
                            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                            b"Connection: Upgrade\r\n\r\n"
                        )
                        while data := sock.recv(65536):
                            sock.sendall(data.upper())
                        return
                    if path.startswith("/split"):  # the head, then the body after /split/N s
                        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
                        time.sleep(float(path[len("/split/") :] or 0.2))
                        with contextlib.suppress(OSError):
                            sock.sendall(b"hello")
                        continue
                    if path.startswith("/cut"):  # a head promising a body that never comes
                        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
                        return
                    if path.startswith("/partial"):  # 10 bytes of the 100 promised
                        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
                        time.sleep(0.1)
                        sock.sendall(b"0123456789")
                        return
                    if path.startswith("/badchunk/"):  # two good chunks, then broken framing
                        broken = {
                            "size": b"zz\r\n",
                            "long": b"3\r\nabcdef\r\n",
                            "line": b"1" * 5000,
                            "trailers": b"0\r\nX: " + b"a" * 20000 + b"\r\n\r\n",
                        }[path.rsplit("/", 1)[-1]]
                        sock.sendall(
                            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                            b"5\r\nhello\r\n6\r\n world\r\n"
                        )
                        time.sleep(0.1)
                        with contextlib.suppress(OSError):
                            sock.sendall(broken)
                            time.sleep(0.5)
                        return
                    if path.startswith("/chunked"):
                        sock.sendall(
                            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                            b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
                        )
                        continue
                    body = json.dumps({"path": path, "body_len": len(seen.body)}).encode()
                    sock.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        b"Content-Length: %d\r\nX-Upstream: yes\r\n\r\n%b" % (len(body), body)
                    )

        class Server(socketserver.ThreadingTCPServer):
            allow_reuse_address = True
            daemon_threads = True

        self.server = Server(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def paths(self) -> list[str]:
        return [s.request_line.split(" ")[1] for s in self.seen]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Response:
    status: int
    head: str
    body: bytes

    def header(self, name: str) -> str | None:
        for line in self.head.split("\r\n")[1:]:
            k, _, v = line.partition(":")
            if k.strip().lower() == name.lower():
                return v.strip()
        return None


def read_response(
    sock: ssl.SSLSocket | socket.socket, buf: bytearray, method: str = "GET"
) -> Response:
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError(f"closed before a response head; got {bytes(buf)!r}")
        buf += data
    head = bytes(buf).partition(b"\r\n\r\n")[0]
    del buf[: len(head) + 4]
    text = head.decode("latin-1")
    status = int(text.split(" ", 2)[1])
    r = Response(status, text, b"")
    if method == "HEAD" or status in (101, 204, 304) or 100 <= status < 200:
        return r
    length = r.header("content-length")
    if length is not None:
        while len(buf) < int(length):
            data = sock.recv(65536)
            if not data:
                break
            buf += data
        r.body = bytes(buf[: int(length)])
        del buf[: int(length)]
        return r
    if (r.header("transfer-encoding") or "").lower() == "chunked":
        body = b""
        while True:
            while b"\r\n" not in buf:
                buf += sock.recv(65536)
            line, _, _ = bytes(buf).partition(b"\r\n")
            del buf[: len(line) + 2]
            size = int(line, 16)
            while len(buf) < size + 2:
                buf += sock.recv(65536)
            body += bytes(buf[:size])
            del buf[: size + 2]
            if size == 0:
                break
        r.body = body
        return r
    while data := sock.recv(65536):
        buf += data
    r.body = bytes(buf)
    buf.clear()
    return r


@dataclass
class Gateway:
    state: Path
    tmp: Path
    port: int
    upstream: RecordingUpstream
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    err_path: Path | None = None
    certs_dir: Path = field(default_factory=Path)
    net: int = 0  # test clients connect from 127.0.<net>.x

    def addr(self, n: int) -> str:
        return f"127.0.{self.net}.{n}"

    # -- setup ----------------------------------------------------------------------------

    def configure(
        self, rules: str | None = None, gateway: dict[str, Any] | None = None, extra: str = ""
    ) -> None:
        cfg = self.state / "hagate.yaml"
        text = cfg.read_text()
        if rules is not None:
            text = text.split("\nrules:\n")[0] + "\nrules:\n" + rules
        text += extra
        if gateway:
            text += "\ngateway:\n" + "".join(f"  {k}: {v}\n" for k, v in gateway.items())
        cfg.write_text(text)

    def start(self, workers: int = 1) -> None:
        self.log_path = self.tmp / "gateway.log"
        self.err_path = self.tmp / "gateway.err"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hagate",
                "--state-dir",
                str(self.state),
                "serve",
                "--workers",
                str(workers),
                "--log-format",
                "json",
            ],
            stdout=self.log_path.open("wb"),
            stderr=self.err_path.open("wb"),
        )
        wait_listening(self.port, self.proc)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def issue(self, name: str) -> Path:
        r = run_hagate("cert", "issue", name, "--pem-dir", self.certs_dir, state=self.state)
        assert r.code == 0, r.err
        return self.certs_dir / f"{name}.crt"

    def issue_expired(self, name: str) -> None:
        """A certificate from hagate's CA whose validity ended yesterday."""
        authority = Authority(StateDir(self.state))
        ca = authority.ca()
        issued = certs.issue_client(ca, name, days=1)
        key = issued.key
        now = dt.datetime.now(dt.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(issued.cert.subject)
            .issuer_name(ca.cert.subject)
            .public_key(key.public_key())
            .serial_number(certs.random_serial())
            .not_valid_before(now - dt.timedelta(days=30))
            .not_valid_after(now - dt.timedelta(days=1))
        )
        for ext in issued.cert.extensions:
            builder = builder.add_extension(ext.value, ext.critical)
        cert = builder.sign(ca.key, hashes.SHA256())
        (self.certs_dir / f"{name}.crt").write_bytes(certs.cert_pem(cert))
        (self.certs_dir / f"{name}.key").write_bytes(certs.key_pem(key))
        path = self.state / "issued.json"
        records = read_inventory(path)
        records.append(CertRecord.from_cert(name, cert))
        write_inventory(path, records)

    # -- clients --------------------------------------------------------------------------

    def context(self, cert: str | None = None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.state / "ca.crt"))
        if cert is not None:
            ctx.load_cert_chain(self.certs_dir / f"{cert}.crt", self.certs_dir / f"{cert}.key")
        return ctx

    def tcp(self, source: str | None = None) -> socket.socket:
        """A TCP connection to the gateway, from `source` (another 127.x address) if given."""
        return socket.create_connection(
            ("127.0.0.1", self.port), timeout=30, source_address=(source, 0) if source else None
        )

    def connect(
        self, cert: str | None = None, sni: str = "ha.test", source: str | None = None
    ) -> ssl.SSLSocket:
        return self.context(cert).wrap_socket(self.tcp(source), server_hostname=sni)

    def request(
        self,
        target: str = "/",
        cert: str | None = None,
        method: str = "GET",
        headers: dict[str, str] | None = None,
        body: bytes = b"",
        source: str | None = None,
    ) -> Response:
        with self.connect(cert, source=source) as sock:
            hdrs = {"Host": "ha.test", **(headers or {})}
            if body:
                hdrs["Content-Length"] = str(len(body))
            lines = [f"{method} {target} HTTP/1.1", *(f"{k}: {v}" for k, v in hdrs.items())]
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
            return read_response(sock, bytearray(), method)

    def events(self) -> list[dict[str, Any]]:
        deadline = time.monotonic() + 5
        rows: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            rows = list(read_events(self.state / "events.sqlite3"))
            if rows:
                time.sleep(0.5)  # let a batch in flight land
                return list(read_events(self.state / "events.sqlite3"))
            time.sleep(0.1)
        return rows

    def log_lines(self) -> list[dict[str, Any]]:
        assert self.log_path is not None
        return [json.loads(line) for line in self.log_path.read_text().splitlines() if line]


def make_gateway(tmp: Path) -> Gateway:
    upstream = RecordingUpstream()
    state = tmp / "state"
    port = free_port()
    r = run_hagate(
        "init",
        "--hostname",
        "ha.test",
        "--upstream",
        f"http://127.0.0.1:{upstream.port}",
        "--listen",
        f"127.0.0.1:{port}",
        state=state,
    )
    assert r.code == 0, r.err
    certs_dir = tmp / "certs"
    certs_dir.mkdir()
    return Gateway(state, tmp, port, upstream, certs_dir=certs_dir)


def rss_kib(pid: int) -> int:
    """Resident memory of a process and its descendants (the gateway's event writer is one)."""
    try:
        own = next(
            int(line.split()[1])
            for line in Path(f"/proc/{pid}/status").read_text().splitlines()
            if line.startswith("VmRSS:")
        )
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except (OSError, StopIteration):  # gone meanwhile, or a zombie
        return 0
    return own + sum(rss_kib(int(child)) for child in children)
