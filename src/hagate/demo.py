"""`make run`: the whole chain on loopback, with real commands to try against it.

relay (127.0.0.1) <- tunnel dialed out by the connector <- gateway -> a small demo upstream
(or your Home Assistant when HAGATE_DEMO_UPSTREAM=http://host:8123). Everything lands in
./demo (wiped at the start); Ctrl-C stops it all.
"""

from __future__ import annotations

import http.server
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

DEMO = Path("demo")
HOME_NAME = "ha.example.test"
RELAY_NAME = "relay.example.test"


def free_port(preferred: int) -> int:
    for port in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            chosen: int = s.getsockname()[1]
            return chosen
    raise RuntimeError("no free port")


def command_path() -> str:
    """How to call this hagate from a fresh shell in this folder: the venv's own script,
    by a relative path when it is below here (as `make run` makes it)."""
    script = Path(sys.executable).parent / "hagate"
    if not script.exists():
        return "hagate"
    try:
        return str(script.relative_to(Path.cwd()))
    except ValueError:
        return str(script)


HAGATE = command_path()


def hagate(*args: str, quiet: bool = False) -> str:
    cmd = [sys.executable, "-m", "hagate", *args]
    if not quiet:
        print(f"$ {shlex.join([HAGATE, *args])}", flush=True)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return out.stdout


def demo_upstream() -> str:
    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = (
                f"Hello from your home. You reached {self.path} through hagate; "
                f"the client was {self.headers.get('X-Forwarded-For')}.\n"
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}"


def wait_port(port: int, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(200):
        if proc.poll() is not None:
            raise SystemExit(f"a demo process exited early (code {proc.returncode})")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listening on {port}")


def main() -> None:
    if DEMO.exists():
        subprocess.run(["rm", "-rf", str(DEMO)], check=True)
    DEMO.mkdir()
    home, relay = str(DEMO / "home"), str(DEMO / "relay")
    upstream = os.environ.get("HAGATE_DEMO_UPSTREAM") or demo_upstream()
    port = free_port(8443)

    print("== 1. The relay (normally on a VPS): its keys, and a token for the home hostname")
    fingerprint = hagate("--state-dir", relay, "relay", "init", "--hostname", RELAY_NAME).split()[
        -1
    ]
    token = hagate("--state-dir", relay, "relay", "token", "--hostname", HOME_NAME).strip()
    print(
        "\n== 2. The home side: hagate's CA, a server certificate, rules; a certificate for a phone"
    )
    hagate("--state-dir", home, "init", "--hostname", HOME_NAME, "--upstream", upstream)
    (DEMO / "password.txt").write_text("demo-password\n")
    hagate(
        "--state-dir",
        home,
        "cert",
        "issue",
        "phone",
        "--p12",
        str(DEMO / "phone.p12"),
        "--password-file",
        str(DEMO / "password.txt"),
        "--pem-dir",
        str(DEMO / "pem"),
    )

    print(f"\n== 3. Running: relay on 127.0.0.1:{port}, and the connector dialing out to it")
    logs = DEMO / "logs"
    logs.mkdir()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hagate",
                "--state-dir",
                relay,
                "relay",
                "run",
                "--listen",
                f"127.0.0.1:{port}",
            ],
            stdout=(logs / "relay.out").open("wb"),
            stderr=(logs / "relay.err").open("wb"),
        )
    ]
    wait_port(port, procs[0])
    procs.append(
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hagate",
                "--state-dir",
                home,
                "connect",
                "--relay",
                f"{RELAY_NAME}:{port}@127.0.0.1",
            ],
            env={**os.environ, "HAGATE_TOKEN": token, "HAGATE_RELAY_FINGERPRINT": fingerprint},
            stdout=(logs / "requests.log").open("wb"),
            stderr=(logs / "connector.err").open("wb"),
        )
    )
    status = Path(relay) / "relay-status.json"
    for _ in range(100):
        if status.exists() and HOME_NAME in status.read_text():
            break
        time.sleep(0.1)

    curl = f"curl --cacert {home}/ca.crt --resolve {HOME_NAME}:{port}:127.0.0.1"
    with_cert = (
        f"{curl} --cert {DEMO}/pem/phone.crt --key {DEMO}/pem/phone.key https://{HOME_NAME}:{port}/"
    )
    without = f"{curl} https://{HOME_NAME}:{port}/"
    print("\n== 4. Try it (each request goes client -> relay -> tunnel -> gateway -> upstream):\n")
    for title, cmd in (
        ("With the phone's certificate: let in", with_cert),
        ("Without a certificate: blocked, with a page that says why", without),
    ):
        print(f"# {title}\n$ {cmd}")
        out = subprocess.run(shlex.split(cmd), capture_output=True, text=True)
        print(out.stdout.strip() or out.stderr.strip(), "\n", flush=True)
    h = HAGATE
    venv = Path(h).parent
    how = (
        f" ({h} is hagate; `source {venv}/activate` lets you call it hagate)"
        if h != "hagate"
        else ""
    )
    print(
        f"""More, from this folder in any shell{how}:
  {h} --state-dir {relay} relay status          # connectors, streams, drop counters
  {h} --state-dir {home} rules explain --ip 203.0.113.7 --cert phone
  {h} --state-dir {home} cert revoke phone       # then the first curl is blocked at once
  {h} --state-dir {home} events                   # the event log (also: top, suggest)
  {h} --state-dir {home} cert enrol tablet --url https://{HOME_NAME}:{port}
                                                    # a QR code and one-time link for a device
  One line per request: {logs}/requests.log
  The bundle for a real phone: {DEMO}/phone.p12 (password in {DEMO}/password.txt)

Running; Ctrl-C stops the relay and the connector.""",
        flush=True,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.is_set() and all(p.poll() is None for p in procs):
            stop.wait(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(20)
        print("\nStopped.")


if __name__ == "__main__":
    main()
