"""The audit's checks of the host and of Home Assistant: file modes, HA's listening sockets,
HA's own http settings, and what HA answers to a request forwarded the gateway's way.

Rules:
  1. Judging is pure (`judge_*`); gathering reads the kernel's socket tables, the state
     directory and one request to Home Assistant. Nothing here sends traffic anywhere but to
     the configured upstream.
  2. The trust probe is the gateway's own forwarding: a request head parsed by the gateway's
     parser and rewritten by `forwarded_head`, sent from this host as the gateway sends it.
     It asks for `/auth/providers`, which needs no login, so it can never count as a failed
     login towards an IP ban.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import ssl
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from hagate.http1.heads import forwarded_head, parse_request_head
from hagate.watch.findings import Finding, Severity

PROBE_PATH = "/auth/providers"
PROBE_CLIENT = "203.0.113.77"  # a documentation address: what a client's would look like
KEY_SUFFIXES = (".key", ".p12", ".pfx")
KEY_NAMES = ("p12", "legacy.p12", "mobileconfig", "certificate.pem", "token", "relay.json")


# -- file modes ----------------------------------------------------------------------------


@dataclass(frozen=True)
class FileMode:
    path: str  # relative to the state directory, or absolute outside it
    mode: int
    is_dir: bool


def judge_modes(modes: Iterable[FileMode], state_dir: str) -> list[Finding]:
    out = []
    for m in modes:
        if not m.mode & 0o077:
            continue
        if m.is_dir:
            out.append(
                Finding(
                    "state-dir-open",
                    Severity.HIGH,
                    f"The state directory {state_dir} is open to other users "
                    f"(mode {stat.filemode(m.mode)}): it holds the CA's key.",
                    f"chmod 700 {state_dir}",
                )
            )
        else:
            full = m.path if m.path.startswith("/") else f"{state_dir}/{m.path}"
            out.append(
                Finding(
                    f"key-file-open:{m.path}",
                    Severity.HIGH,
                    f"{full} holds a secret and other users can read it "
                    f"(mode {stat.filemode(m.mode)}).",
                    f"chmod 600 {full}",
                )
            )
    return out


def _is_secret(path: Path) -> bool:
    if path.suffix in KEY_SUFFIXES or path.name in KEY_NAMES:
        return True
    if path.suffix == ".pem" and path.stat().st_size < 65536:
        return b"PRIVATE KEY" in path.read_bytes()
    return False


def gather_modes(state_dir: Path, extra: Iterable[Path] = ()) -> list[FileMode]:
    """The state directory's own mode and every secret file's in it, plus `extra` files."""
    out = [FileMode(".", state_dir.stat().st_mode, True)]
    for root, dirs, files in os.walk(state_dir):
        dirs[:] = [d for d in dirs if d not in ("metrics",)]
        for name in files:
            path = Path(root) / name
            try:
                if path.is_symlink() or not _is_secret(path):
                    continue
                out.append(FileMode(str(path.relative_to(state_dir)), path.stat().st_mode, False))
            except OSError:
                continue
    for path in extra:
        try:
            out.append(FileMode(str(path), path.stat().st_mode, False))
        except OSError:
            continue
    return out


# -- Home Assistant listening beside the gateway -------------------------------------------


def parse_listeners(table: str, v6: bool) -> list[tuple[str, int]]:
    """(address, port) of the LISTEN sockets in /proc/net/tcp or tcp6 text."""
    out = []
    for line in table.splitlines()[1:]:
        parts = line.split()
        if len(parts) < 4 or parts[3] != "0A":
            continue
        addr_hex, _, port_hex = parts[1].partition(":")
        raw = bytes.fromhex(addr_hex)
        if v6:
            # Four 32-bit words, each in host (little-endian) order.
            raw = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
            address = str(ipaddress.IPv6Address(raw))
        else:
            address = str(ipaddress.IPv4Address(raw[::-1]))
        out.append((address, int(port_hex, 16)))
    return out


def read_listeners() -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    for name, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        try:
            out += parse_listeners(Path(name).read_text(), v6)
        except OSError:
            continue
    return out


def _loopback(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address == "localhost"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


def judge_bypass(upstream: str, listeners: list[tuple[str, int]]) -> list[Finding]:
    """HA reachable without hagate: it listens beyond loopback here, or lives elsewhere."""
    parts = urlsplit(upstream)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if not _loopback(host):
        return [
            Finding(
                "ha-reachable-on-network",
                Severity.MEDIUM,
                f"Home Assistant is reached over the network ({host}:{port}): anyone who can "
                "reach that address gets to it without hagate's certificate check.",
                f"Make sure no router forwards port {port}, and firewall it so only this host "
                "reaches it; or run hagate on Home Assistant's host with upstream "
                "http://127.0.0.1:PORT and http: server_host: 127.0.0.1 in HA's config.",
            )
        ]
    open_on = sorted({a for a, p in listeners if p == port and not _loopback(a)})
    if not open_on:
        return []
    shown = ", ".join("all addresses" if a in ("0.0.0.0", "::") else a for a in open_on)
    return [
        Finding(
            "ha-listens-beyond-loopback",
            Severity.MEDIUM,
            f"Home Assistant's port {port} is open on {shown} of this host, not only on "
            "loopback: from the network it is a way in that bypasses hagate.",
            "In Home Assistant's configuration.yaml set http: server_host: [127.0.0.1, ::1] "
            "(HA's default is every address), then restart Home Assistant.",
        )
    ]


# -- Home Assistant's own http settings ---------------------------------------------------


class _Loader(yaml.SafeLoader):
    """configuration.yaml's tags (!secret, !include, !env_var, ...) read as placeholders."""


def _tagged(loader: _Loader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return {"__tag__": suffix, "value": loader.construct_scalar(node)}
    return None


_Loader.add_multi_constructor("!", _tagged)


def read_http_settings(config_path: Path) -> dict[str, Any]:
    """The `http:` section of HA's configuration.yaml (following `!include`)."""
    data = yaml.load(config_path.read_text(encoding="utf-8"), Loader=_Loader) or {}
    http = data.get("http") if isinstance(data, dict) else None
    if isinstance(http, dict) and http.get("__tag__") == "include":
        included = config_path.parent / str(http["value"])
        http = yaml.load(included.read_text(encoding="utf-8"), Loader=_Loader)
    return http if isinstance(http, dict) else {}


def judge_ip_ban(http: dict[str, Any] | None, config_path: str | None) -> list[Finding]:
    if http is None:
        return [
            Finding(
                "ha-config-unknown",
                Severity.INFO,
                "Home Assistant's own settings (ip_ban_enabled) were not checked: hagate does "
                "not know where its configuration.yaml is.",
                "Set audit: {home_assistant_config: /path/to/configuration.yaml} in hagate.yaml"
                " (when this host can read it).",
            )
        ]
    enabled = http.get("ip_ban_enabled", True)
    threshold = http.get("login_attempts_threshold", -1)
    if enabled is True and isinstance(threshold, int) and threshold > 0:
        return []
    why = (
        "ip_ban_enabled is off"
        if enabled is not True
        else "login_attempts_threshold is not set, so no address is ever banned"
    )
    return [
        Finding(
            "ha-ip-ban-off",
            Severity.MEDIUM,
            f"Home Assistant does not ban addresses after failed logins ({why} in "
            f"{config_path}): a password can be guessed at leisure by any certificate holder "
            "or exception.",
            "In Home Assistant's http: section set ip_ban_enabled: true and "
            "login_attempts_threshold: 5, then restart Home Assistant.",
        )
    ]


# -- the trust probe -----------------------------------------------------------------------


@dataclass(frozen=True)
class ProbeResult:
    status: int | None  # HA's status code; None when it did not answer
    error: str | None = None


def probe_request(hostname: str) -> bytes:
    """What the gateway would send HA for a client's `GET /auth/providers`."""
    text = f"GET {PROBE_PATH} HTTP/1.1\r\nHost: {hostname}\r\nUser-Agent: hagate-audit\r\n\r\n"
    head = parse_request_head(text.encode())
    return forwarded_head(head, PROBE_CLIENT, hostname).replace(
        b"Connection: keep-alive", b"Connection: close"
    )


def probe(upstream: str, hostname: str, timeout: float = 10.0) -> ProbeResult:
    parts = urlsplit(upstream)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            sock: socket.socket = raw
            if parts.scheme == "https":
                ctx = ssl.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE  # the gateway does not check HA's either
                sock = ctx.wrap_socket(raw, server_hostname=host)
            sock.sendall(probe_request(hostname))
            answer = b""
            while b"\r\n" not in answer and len(answer) < 4096:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                answer += chunk
    except OSError as e:
        return ProbeResult(None, str(e) or type(e).__name__)
    line = answer.split(b"\r\n", 1)[0].split()
    if len(line) < 2 or not line[1].isdigit():
        return ProbeResult(None, f"not an HTTP answer: {answer[:60]!r}")
    return ProbeResult(int(line[1]))


def judge_probe(result: ProbeResult, upstream: str) -> list[Finding]:
    if result.status is None:
        return [
            Finding(
                "ha-unreachable",
                Severity.HIGH,
                f"Home Assistant did not answer at {upstream}: {result.error}.",
                "Start Home Assistant, or correct upstream: in hagate.yaml.",
            )
        ]
    if result.status == 400:
        return [
            Finding(
                "ha-untrusted-proxy",
                Severity.HIGH,
                "Home Assistant refuses requests forwarded by the gateway (400 Bad Request): it "
                "does not trust this host as a proxy, so every request through hagate fails.",
                "In Home Assistant's configuration.yaml: http: {use_x_forwarded_for: true, "
                "trusted_proxies: [127.0.0.1, ::1]} (the gateway host's address), then restart "
                "Home Assistant.",
            )
        ]
    return []
