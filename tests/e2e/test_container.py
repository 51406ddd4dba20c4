"""The container image and docs/container.md, run: the image built from the Dockerfile with
Podman, the relay and the home side started by the compose files with the docs' commands
(`docker compose` given as `podman-compose`, example names and ports made this machine's),
and a real Home Assistant reached through them with a client certificate. Then both are
taken down and up again: the state in their volumes carries the certificates and the pin."""

from __future__ import annotations

import json
import shlex
import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.container import build_image, env, podman
from tests.docs import sh_blocks
from tests.e2e.homeassistant import HomeAssistant
from tests.gateway.harness import read_response
from tests.net import free_port

pytestmark = pytest.mark.slow

DOC = "docs/container.md"
COMPOSE_DIR = Path(__file__).resolve().parents[2] / "deploy" / "compose"
COMPOSE = str(Path(sys.executable).with_name("podman-compose"))


@dataclass
class Stack:
    project: str
    relay_port: int
    subs: dict[str, str]
    extra_env: dict[str, str]

    def run(self, line: str, check: bool = True) -> str:
        """One line of the docs, as printed but for the substitutions; its output."""
        line = line.replace("docker compose", f"{shlex.quote(COMPOSE)} -p {self.project}")
        for example, here in self.subs.items():
            line = line.replace(example, here)
        done = subprocess.run(
            ["bash", "-c", line],
            cwd=COMPOSE_DIR,
            capture_output=True,
            text=True,
            env={**env(), **self.extra_env},
            timeout=300,
        )
        if check:
            assert done.returncode == 0, (line, done.stdout[-2000:], done.stderr[-3000:])
        return done.stdout

    def container(self, service: str) -> str:
        out = podman(
            "ps", "--filter", f"label=io.podman.compose.project={self.project}",
            "--filter", f"label=io.podman.compose.service={service}", "--format", "{{.Names}}",
        ).stdout.split()  # fmt: skip
        assert len(out) == 1, out
        return out[0]


def _commands(section: str) -> list[str]:
    [block] = sh_blocks(DOC, section)
    assert block[0] == "cd deploy/compose"
    return block[1:]


@pytest.fixture(scope="module")
def image() -> str:
    return build_image()


@pytest.fixture
def stacks(image: str, home_assistant: HomeAssistant) -> Iterator[tuple[Stack, Stack]]:
    tag = uuid.uuid4().hex[:8]
    port = free_port()
    relay = Stack(f"hgrelay{tag}", port, {"relay.example.com": "relay.test",
                                          "ha.example.com": "ha.test"},
                  {"HAGATE_RELAY_PUBLISH": f"127.0.0.1:{port}"})  # fmt: skip
    home = Stack(
        f"hghome{tag}",
        port,
        {
            "ha.example.com": "ha.test",
            "http://127.0.0.1:8123": home_assistant.url,
            "relay.example.com:443": f"relay.test:{port}@127.0.0.1",
        },
        {},
    )
    try:
        yield relay, home
    finally:
        for stack, name in ((home, "home.yaml"), (relay, "relay.yaml")):
            subprocess.run(
                [COMPOSE, "-p", stack.project, "-f", name, "down", "-v"],
                cwd=COMPOSE_DIR, env=env(), capture_output=True, timeout=120,
            )  # fmt: skip


def _get(port: int, ca: Path, cert: Path | None, key: Path | None, token: str) -> int:
    ctx = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        ctx.load_cert_chain(cert, key)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=15) as raw,
        ctx.wrap_socket(raw, server_hostname="ha.test") as tls,
    ):
        tls.sendall(
            f"GET /api/ HTTP/1.1\r\nHost: ha.test\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
        )
        return read_response(tls, bytearray(), "GET").status


def _until_200(port: int, ca: Path, cert: Path, key: Path, token: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            if (last := _get(port, ca, cert, key, token)) == 200:
                return
        except OSError as e:
            last = e
        time.sleep(0.5)
    raise AssertionError(f"no 200 through the relay in {timeout}s: {last}")


def test_the_compose_files_and_the_docs_run_a_relay_and_a_home(
    stacks: tuple[Stack, Stack], home_assistant: HomeAssistant, tmp_path: Path
) -> None:
    relay, home = stacks
    if not home_assistant.access_token:
        home_assistant.onboard("https://ha.test")
    token = home_assistant.access_token
    assert token
    # The relay, by the docs.
    init, make_token, up = _commands("On a VPS")
    fingerprint = relay.run(init).strip().splitlines()[-1]
    connector_token = relay.run(make_token).strip().splitlines()[-1]
    relay.run(up)
    # The home side, by the docs, with the relay's fingerprint and token.
    home.subs |= {"HAGATE_TOKEN=...": f"HAGATE_TOKEN={connector_token}",
                  "HAGATE_RELAY_FINGERPRINT=...": f"HAGATE_RELAY_FINGERPRINT={fingerprint}"}  # fmt: skip
    h_init, h_up, enrol = _commands("At home")
    home.run(h_init)
    home.run(h_up)
    # A certificate for this test's client, and the CA, out of the home's volume.
    base = f"{shlex.quote(COMPOSE)} -p {home.project} -f home.yaml exec hagate"
    home.run(f"{base} hagate cert issue laptop --pem-dir /data/pem")
    for name, inside in (("ca.crt", "/data/ca.crt"), ("laptop.crt", "/data/pem/laptop.crt"),
                         ("laptop.key", "/data/pem/laptop.key")):  # fmt: skip
        (tmp_path / name).write_text(home.run(f"{base} cat {inside}"))
    ca, crt, key = tmp_path / "ca.crt", tmp_path / "laptop.crt", tmp_path / "laptop.key"
    _until_200(relay.relay_port, ca, crt, key, token, 60)
    assert _get(relay.relay_port, ca, None, None, token) == 403  # no certificate: blocked
    # The docs' enrolment command prints its one-time link.
    assert "https://ha.test/.hagate/enrol/" in home.run(enrol)
    # Unprivileged, healthy, and a relay that counts its home.
    assert home.run(f"{base} id -u").strip() == "10001"
    for stack, service in ((home, "hagate"), (relay, "relay")):
        name = stack.container(service)
        deadline = time.monotonic() + 30
        while podman("healthcheck", "run", name, check=False).returncode != 0:
            assert time.monotonic() < deadline, podman("logs", name, check=False).stderr[-2000:]
            time.sleep(1)
    status = relay.run(
        f"{shlex.quote(COMPOSE)} -p {relay.project} -f relay.yaml exec relay hagate relay status"
    )
    assert "connector ha.test" in status
    events = home.run(f"{base} hagate events --json --limit 5")
    assert [json.loads(line)["status"] for line in events.splitlines()][:2] == [403, 200]
    # Down and up again: the volumes keep the CA, the certificate, the relay's key and pin.
    relay.run(f"{shlex.quote(COMPOSE)} -p {relay.project} -f relay.yaml down")
    home.run(f"{shlex.quote(COMPOSE)} -p {home.project} -f home.yaml down")
    relay.run(up)
    home.run(h_up)
    _until_200(relay.relay_port, ca, crt, key, token, 60)
