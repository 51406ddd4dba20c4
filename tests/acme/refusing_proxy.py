"""A small HTTPS proxy in front of pebble that injects one failure: the CA answering 429 with
Retry-After to new orders, as Let's Encrypt does when a rate limit is hit. Pebble has no rate
limits of its own; everything else passes through to the real pebble unchanged (the Host
header too, so pebble's URLs name the proxy)."""

from __future__ import annotations

import http.client
import http.server
import json
import ssl
import threading
import time
import urllib.parse

from tests.acme.pebble import Pebble
from tests.net import free_port


class RefusingProxy:
    def __init__(self, pebble: Pebble, retry_after: int) -> None:
        self.pebble = pebble
        self.retry_after = retry_after
        self.refuse = 0  # how many new-order requests to answer 429
        self.orders: list[tuple[float, int]] = []  # (time, status) of every new-order request
        self.port = free_port()
        upstream_ctx = ssl.create_default_context(cafile=str(pebble.https_ca))
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                conn = http.client.HTTPSConnection(
                    "127.0.0.1", pebble.port, context=upstream_ctx, timeout=30
                )
                headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                status, out_headers = resp.status, resp.getheaders()
                conn.close()
                if self.command == "POST" and self.path.rstrip("/").endswith("/order-plz"):
                    if proxy.refuse > 0:
                        proxy.refuse -= 1
                        status = 429
                        data = json.dumps(
                            {
                                "type": "urn:ietf:params:acme:error:rateLimited",
                                "detail": "too many new orders recently",
                                "status": 429,
                            }
                        ).encode()
                        keep = [(k, v) for k, v in out_headers if k.lower() == "replay-nonce"]
                        out_headers = [
                            *keep,
                            ("Content-Type", "application/problem+json"),
                            ("Retry-After", str(proxy.retry_after)),
                        ]
                    proxy.orders.append((time.time(), status))
                self.send_response(status)
                for k, v in out_headers:
                    if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_HEAD = _forward

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(pebble.https_cert, pebble.https_key)
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def directory(self) -> str:
        parts = urllib.parse.urlsplit(self.pebble.directory)
        return parts._replace(netloc=f"127.0.0.1:{self.port}").geturl()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
