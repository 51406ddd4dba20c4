"""A stand-in for the Supervisor's discovery API, which cannot run here."""

from __future__ import annotations

import http.server
import json
import threading
import uuid
from typing import Any


class SupervisorDiscovery:
    """Where the Supervisor takes an app's discovery messages (POST /discovery), standing in
    for it (it cannot run here): what the app announced, as the Supervisor would receive it."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.status = 200  # what it answers (a test may make it refuse)
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.received.append((self.headers["Authorization"], json.loads(body)))
                answer = json.dumps({"result": "ok", "data": {"uuid": uuid.uuid4().hex}})
                self.send_response(outer.status if self.path == "/discovery" else 404)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(answer.encode())

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
