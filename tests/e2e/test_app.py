"""The Home Assistant app, started the way the Supervisor starts it (the Supervisor itself
cannot run here): its image built from ha-app/hagate/Dockerfile after `make app` (as its
DOCS.md says), on the local Debian base in place of Home Assistant's; `/data/options.json`
and SUPERVISOR_TOKEN given to it; Home Assistant and the Supervisor's API proxy moved to
loopback by the two test-only environment overrides, the proxy being nginx mapping /core/ to
the real Home Assistant as the Supervisor does. A device gets in with a certificate, and an
alert reaches Home Assistant through the proxy with the app's token."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.app.supervisor import SupervisorDiscovery
from tests.container import CA_BUNDLE, ensure_base, podman
from tests.e2e.homeassistant import HomeAssistant
from tests.e2e.test_watch import Listener
from tests.gateway.harness import read_response
from tests.net import free_port, wait_listening
from tests.nginx import Nginx

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "localhost/hagate-app:test"


@pytest.fixture(scope="module")
def app_image() -> str:
    subprocess.run(["make", "app"], cwd=ROOT, check=True, capture_output=True, timeout=300)
    folder = ROOT / "build" / "ha-app" / "hagate"
    args = yaml.safe_load((folder / "build.yaml").read_text())["args"]
    podman(
        "build", "--network", "host", "--format", "docker",
        "-v", f"{CA_BUNDLE}:{CA_BUNDLE}:ro",
        "--build-arg", f"BUILD_FROM={ensure_base()}",
        *[a for k, v in args.items() for a in ("--build-arg", f"{k}={v}")],
        "--build-arg", f"PIP_CERT={CA_BUNDLE}",
        "-t", IMAGE, str(folder),
        timeout=900,
    )  # fmt: skip
    return IMAGE


@pytest.fixture
def supervisor_proxy(home_assistant: HomeAssistant, tmp_path: Path) -> Iterator[str]:
    """nginx standing where the Supervisor's proxy is: /core/api/... -> Home Assistant."""
    port = free_port()
    proxy = Nginx(tmp_path / "supervisor", port)
    proxy.start(
        f"""
    server {{
        listen 127.0.0.1:{port};
        location /core/ {{ proxy_pass http://127.0.0.1:{home_assistant.port}/; }}
    }}"""
    )
    try:
        yield f"http://127.0.0.1:{port}/core"
    finally:
        proxy.stop()


def test_the_app_started_as_the_supervisor_does(
    app_image: str, supervisor_proxy: str, home_assistant: HomeAssistant, tmp_path: Path
) -> None:
    if not home_assistant.access_token:
        home_assistant.onboard("https://ha.test")
    bearer = str(home_assistant.access_token)
    data = tmp_path / "data"
    data.mkdir()
    port = free_port()
    options = {
        "hostname": "ha.test",
        "mode": "port_forward",
        "relay": "",
        "connector_token": "",
        "relay_fingerprint": "",
        "listen_port": port,
        "log_level": "info",
    }
    (data / "options.json").write_text(json.dumps(options))
    name = f"addon_local_hagate_{port}"
    supervisor_token = home_assistant.long_lived_token(f"hagate-app-{port}")
    discovery = SupervisorDiscovery()
    podman(
        "run", "-d", "--name", name, "--network", "host", "-v", f"{data}:/data",
        "-e", f"SUPERVISOR_TOKEN={supervisor_token}",
        "-e", f"HAGATE_APP_UPSTREAM={home_assistant.url}",
        "-e", f"HAGATE_APP_SUPERVISOR_CORE={supervisor_proxy}",
        "-e", f"HAGATE_APP_SUPERVISOR={discovery.url}",
        "-e", "HAGATE_APP_API_HOST=127.0.0.1",
        app_image,
    )  # fmt: skip
    listener = Listener(home_assistant)
    try:
        wait_listening(port, timeout=30)
        logs = podman("logs", name).stderr
        assert "first start" in logs and "behind the relay" not in logs
        config = (data / "hagate.yaml").read_text()
        assert "hostname: ha.test" in config and supervisor_proxy in config
        assert supervisor_token not in config
        token_file = data / "supervisor-token"
        assert token_file.read_text() == supervisor_token
        assert token_file.stat().st_mode & 0o777 == 0o600
        # The app told the Supervisor where its API is, with a token that works there (on
        # the Supervisor's network; here the host's, by the test's override of the name).
        [(authorization, announced)] = discovery.received
        assert authorization == f"Bearer {supervisor_token}"
        assert announced["service"] == "hagate"
        assert announced["config"]["url"] == "http://127.0.0.1:8100"
        api_token = announced["config"]["token"]
        assert api_token not in config and api_token not in logs
        assert "Home Assistant told about the API at http://127.0.0.1:8100" in logs
        summary = urllib.request.Request(
            "http://127.0.0.1:8100/api/v1/summary", headers={"Authorization": f"Bearer {api_token}"}
        )
        with urllib.request.urlopen(summary, timeout=15) as r:
            assert json.loads(r.read())["hostname"] == "ha.test"
        podman("exec", name, "hagate", "cert", "issue", "phone", "--pem-dir", "/data/pem")
        ctx = ssl.create_default_context(cafile=str(data / "ca.crt"))
        ctx.load_cert_chain(data / "pem" / "phone.crt", data / "pem" / "phone.key")

        def get() -> int:
            with ctx.wrap_socket(
                socket.create_connection(("127.0.0.1", port), timeout=15),
                server_hostname="ha.test",
            ) as tls:
                tls.sendall(
                    b"GET /api/ HTTP/1.1\r\nHost: ha.test\r\nAuthorization: Bearer "
                    + bearer.encode()
                    + b"\r\n\r\n"
                )
                return read_response(tls, bytearray(), "GET").status

        assert get() == 200
        deadline = time.monotonic() + 5  # log_level info: a line per request in the log
        while '"GET /api/" 200 allow' not in podman("logs", name).stdout:
            assert time.monotonic() < deadline, podman("logs", name).stdout[-1000:]
            time.sleep(0.2)
        # Revoked, then presented: the alert reaches Home Assistant through the proxy.
        podman("exec", name, "hagate", "cert", "revoke", "phone")
        assert get() == 403
        alert = listener.wait("revoked_certificate", timeout=60)
        assert alert["certificate"] == "phone" and alert["hostname"] == "ha.test"
        assert podman("healthcheck", "run", name, check=False).returncode == 0
        # A second start with the same options changes nothing in hagate.yaml.
        podman("restart", name)
        wait_listening(port, timeout=30)
        time.sleep(1)
        assert (data / "hagate.yaml").read_text() == config
        # ... and announces the same token again.
        assert [a["config"]["token"] for _, a in discovery.received] == [api_token] * 2
    finally:
        listener.close()
        discovery.close()
        podman("rm", "-f", name, check=False)


def test_the_app_in_relay_mode_dials_out_to_the_relay(
    app_image: str, home_assistant: HomeAssistant, tmp_path: Path
) -> None:
    from tests.tunnel.harness import Relay, wait_connected

    if not home_assistant.access_token:
        home_assistant.onboard("https://ha.test")
    relay = Relay.create(tmp_path)
    relay.start()
    data = tmp_path / "data"
    data.mkdir()
    connector_token = relay.token()
    options = {
        "hostname": "ha.test",
        "mode": "relay",
        "relay": f"relay.test:{relay.port}@127.0.0.1",
        "connector_token": connector_token,
        "relay_fingerprint": relay.fingerprint,
        "listen_port": 8443,
        "log_level": "warning",
    }
    (data / "options.json").write_text(json.dumps(options))
    name = f"addon_local_hagate_relay_{relay.port}"
    podman(
        "run", "-d", "--name", name, "--network", "host", "-v", f"{data}:/data",
        "-e", f"HAGATE_APP_UPSTREAM={home_assistant.url}", app_image,
    )  # fmt: skip
    try:
        wait_connected([relay], "ha.test", timeout=30)
        podman("exec", name, "hagate", "cert", "issue", "tablet", "--pem-dir", "/data/pem")
        ctx = ssl.create_default_context(cafile=str(data / "ca.crt"))
        ctx.load_cert_chain(data / "pem" / "tablet.crt", data / "pem" / "tablet.key")
        with ctx.wrap_socket(
            socket.create_connection(("127.0.0.1", relay.port), timeout=15),
            server_hostname="ha.test",
        ) as tls:
            tls.sendall(b"GET /manifest.json HTTP/1.1\r\nHost: ha.test\r\n\r\n")
            assert read_response(tls, bytearray(), "GET").status == 200
        logs = podman("logs", name)
        assert "behind the relay relay.test" in logs.stderr
        assert connector_token not in logs.stdout + logs.stderr
        assert "GET /manifest.json" not in logs.stdout  # log_level warning: no request lines
        assert "\nalerts:" not in (data / "hagate.yaml").read_text()  # no Supervisor token
        assert podman("healthcheck", "run", name, check=False).returncode == 0
    finally:
        podman("rm", "-f", name, check=False)
        relay.stop()
