"""docs/fronts.md, run: its hagate.yaml section, its HAProxy and nginx configurations and its
relay command, as printed but for the ports (443 and 8443 are not free here), in front of a
gateway whose clients must then appear as themselves."""

from __future__ import annotations

import dataclasses
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from hagate.config import parse_config
from tests.conftest import run_hagate
from tests.docs import code_blocks, sh_blocks
from tests.front.peers import STREAM_MODULE
from tests.gateway.harness import Gateway, make_gateway
from tests.net import free_port, wait_listening

DOC = "docs/fronts.md"


def _ports(text: str, public: int, backend: int) -> str:
    """The docs' ports made free ones: the front's public 443, the gateway's 8443."""
    out = text.replace("127.0.0.1:8443", f"127.0.0.1:{backend}")
    out = out.replace("bind :443", f"bind 127.0.0.1:{public}")  # HAProxy
    out = out.replace("listen 443;", f"listen 127.0.0.1:{public};")  # nginx
    assert out.count(str(public)) == 1 and out.count(str(backend)) == 1, out
    return out


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    """A gateway configured with the docs' proxy_protocol section."""
    [section] = code_blocks(DOC, "yaml")
    g = make_gateway(tmp_path)
    g.configure(extra="\n" + section)
    g.issue("phone")
    g.start()
    yield g
    g.stop()
    g.upstream.close()


def test_the_yaml_section_parses_and_trusts_loopback() -> None:
    [section] = code_blocks(DOC, "yaml")
    base = "hostname: ha.example.com\nupstream: http://127.0.0.1:8123\n"
    cfg = parse_config(base + section, "hagate.yaml")
    assert [str(n) for n in cfg.gateway.proxy_trusted] == ["127.0.0.1/32"]
    assert yaml.safe_load(section)["gateway"]["proxy_protocol"]["trusted"] == ["127.0.0.1/32"]


def _clients_seen(g: Gateway, port: int) -> None:
    behind = dataclasses.replace(g, port=port)
    for n in (2, 3):
        assert behind.request("/", cert="phone", source=f"127.0.30.{n}").status == 200
    seen = [s.header("x-forwarded-for") for s in g.upstream.seen]
    assert seen == [["127.0.30.2"], ["127.0.30.3"]]
    deadline = time.monotonic() + 5
    while {e["client_ip"] for e in g.events() if e["path"]} != {"127.0.30.2", "127.0.30.3"}:
        assert time.monotonic() < deadline, g.events()
        time.sleep(0.2)


def _front_shows_clients(g: Gateway, front: list[str], public: int) -> None:
    """Run the front (`front`, listening on `public`), then check the clients it passes."""
    proc = subprocess.Popen(front, stderr=subprocess.PIPE)
    try:
        wait_listening(public, proc)
        _clients_seen(g, public)
    finally:
        proc.terminate()
        proc.wait(10)


def test_the_haproxy_configuration(gateway: Gateway, tmp_path: Path) -> None:
    [config] = code_blocks(DOC, "haproxy", "HAProxy")
    public = free_port()
    path = tmp_path / "haproxy.cfg"
    path.write_text(_ports(config, public, gateway.port))
    _front_shows_clients(gateway, ["haproxy", "-f", str(path), "-db"], public)


def test_the_nginx_stream_configuration(gateway: Gateway, tmp_path: Path) -> None:
    [block] = code_blocks(DOC, "nginx", "nginx")
    public = free_port()
    main = (
        f"load_module {STREAM_MODULE};\ndaemon off;\npid {tmp_path}/nginx.pid;\n"
        f"error_log {tmp_path}/error.log warn;\nevents {{ worker_connections 64; }}\n"
    )
    (tmp_path / "nginx.conf").write_text(main + _ports(block, public, gateway.port))
    nginx = ["nginx", "-c", str(tmp_path / "nginx.conf"), "-p", str(tmp_path)]
    _front_shows_clients(gateway, nginx, public)


def test_the_relay_command(tmp_path: Path) -> None:
    [[command]] = sh_blocks(DOC, "A front before a relay")
    state = tmp_path / "relay"
    assert run_hagate("relay", "init", "--hostname", "relay.test", state=state).code == 0
    port = free_port()
    args = shlex.split(command.replace(":8443", f":{port}"))
    assert args[:3] == ["hagate", "relay", "run"]
    err = (tmp_path / "relay.err").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "hagate", "--state-dir", str(state), *args[1:]], stderr=err
    )
    try:
        wait_listening(port, proc)
        deadline = time.monotonic() + 10  # the line follows the bind: wait for it
        while "PROXY protocol from 127.0.0.1/32" not in (tmp_path / "relay.err").read_text():
            assert time.monotonic() < deadline, (tmp_path / "relay.err").read_text()
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
