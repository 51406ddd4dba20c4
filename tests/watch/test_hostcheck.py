"""The audit's host checks: file modes, Home Assistant's listening sockets and settings."""

from __future__ import annotations

import ipaddress
import socket
import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hagate.watch.hostcheck import (
    gather_modes,
    judge_bypass,
    judge_ip_ban,
    judge_modes,
    parse_listeners,
    probe_request,
    read_http_settings,
    read_listeners,
)

HEADER = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid\n"


def v4_line(address: str, port: int, state: str = "0A") -> str:
    raw = ipaddress.IPv4Address(address).packed[::-1].hex().upper()
    return f"   0: {raw}:{port:04X} 00000000:0000 {state} 00000000:00000000 00:00000000 0\n"


def v6_line(address: str, port: int) -> str:
    packed = ipaddress.IPv6Address(address).packed
    raw = b"".join(
        struct.pack("<I", int.from_bytes(packed[i : i + 4], "big")) for i in range(0, 16, 4)
    )
    return f"   0: {raw.hex().upper()}:{port:04X} 00000000000000000000000000000000:0000 0A 0\n"


@given(st.ip_addresses(v=4), st.integers(1, 65535))
def test_ipv4_listeners_read_back(address: ipaddress.IPv4Address, port: int) -> None:
    assert parse_listeners(HEADER + v4_line(str(address), port), v6=False) == [(str(address), port)]


@given(st.ip_addresses(v=6), st.integers(1, 65535))
def test_ipv6_listeners_read_back(address: ipaddress.IPv6Address, port: int) -> None:
    assert parse_listeners(HEADER + v6_line(str(address), port), v6=True) == [(str(address), port)]


def test_only_listening_sockets_count() -> None:
    text = HEADER + v4_line("0.0.0.0", 8123, state="01") + v4_line("127.0.0.1", 8123)
    assert parse_listeners(text, v6=False) == [("127.0.0.1", 8123)]


def test_home_assistant_listening_beyond_loopback_is_a_finding() -> None:
    up = "http://127.0.0.1:8123"
    assert judge_bypass(up, [("127.0.0.1", 8123), ("::1", 8123), ("0.0.0.0", 22)]) == []
    for address in ("0.0.0.0", "::", "192.168.1.5"):
        found = judge_bypass(up, [(address, 8123)])
        assert [f.id for f in found] == ["ha-listens-beyond-loopback"], address
        assert "server_host" in found[0].fix
    found = judge_bypass("http://192.168.1.5:8123", [])
    assert [f.id for f in found] == ["ha-reachable-on-network"]


def test_a_real_listener_on_every_address_is_seen() -> None:
    """A socket bound to 0.0.0.0 (bound only; no traffic goes anywhere) shows up."""
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        s.listen()
        port = s.getsockname()[1]
        found = judge_bypass(f"http://127.0.0.1:{port}", read_listeners())
        assert [f.id for f in found] == ["ha-listens-beyond-loopback"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert judge_bypass(f"http://127.0.0.1:{port}", read_listeners()) == []


def test_open_key_files_and_state_directory(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    (state / "ca.key").write_text("k")
    (state / "ca.key").chmod(0o600)
    (state / "ca.crt").write_text("public")
    (state / "ca.crt").chmod(0o644)
    (state / "acme").mkdir()
    (state / "acme" / "certificate.pem").write_text("-----BEGIN PRIVATE KEY-----")
    (state / "acme" / "certificate.pem").chmod(0o600)
    token = tmp_path / "ha-token.txt"
    token.write_text("t")
    token.chmod(0o600)
    assert judge_modes(gather_modes(state, [token]), str(state)) == []
    (state / "acme" / "certificate.pem").chmod(0o644)
    (state / "ca.key").chmod(0o640)
    token.chmod(0o604)
    state.chmod(0o755)
    found = {f.id: f for f in judge_modes(gather_modes(state, [token]), str(state))}
    assert set(found) == {
        "state-dir-open",
        "key-file-open:ca.key",
        "key-file-open:acme/certificate.pem",
        f"key-file-open:{token}",
    }
    assert found["key-file-open:ca.key"].fix == f"chmod 600 {state}/ca.key"
    assert found["state-dir-open"].fix == f"chmod 700 {state}"


def test_home_assistant_http_settings_are_read_with_its_tags(tmp_path: Path) -> None:
    config = tmp_path / "configuration.yaml"
    config.write_text(
        "homeassistant:\n  name: !secret home_name\nhttp: !include http.yaml\n"
        "sensor: !include_dir_merge_list sensors/\n"
    )
    (tmp_path / "http.yaml").write_text("ip_ban_enabled: false\nssl_key: !env_var KEY\n")
    http = read_http_settings(config)
    assert http["ip_ban_enabled"] is False
    assert [f.id for f in judge_ip_ban(http, str(config))] == ["ha-ip-ban-off"]
    assert [f.id for f in judge_ip_ban({}, str(config))] == ["ha-ip-ban-off"]  # no threshold
    good = {"ip_ban_enabled": True, "login_attempts_threshold": 5}
    assert judge_ip_ban(good, str(config)) == []
    assert judge_ip_ban({"login_attempts_threshold": 5}, str(config)) == []  # on by default
    assert [f.id for f in judge_ip_ban(None, None)] == ["ha-config-unknown"]


def test_the_probe_is_the_gateways_own_forwarding() -> None:
    head = probe_request("ha.test").decode()
    assert head.startswith("GET /auth/providers HTTP/1.1\r\n")
    assert "X-Forwarded-For: 203.0.113.77\r\n" in head
    assert "X-Forwarded-Proto: https\r\n" in head and "X-Forwarded-Host: ha.test\r\n" in head
    assert head.endswith("Connection: close\r\n\r\n")


@pytest.mark.parametrize("text", ["", "http: [1, 2]\n", "- a\n"])
def test_odd_home_assistant_configs_read_as_no_settings(tmp_path: Path, text: str) -> None:
    config = tmp_path / "configuration.yaml"
    config.write_text(text)
    assert read_http_settings(config) == {}
