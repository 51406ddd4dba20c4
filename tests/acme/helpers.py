"""Shared pieces of the ACME tests: hagate configured for pebble, the certificate a port
serves, and waiting for a condition."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from tests.acme.pebble import Pebble
from tests.conftest import run_hagate
from tests.gateway.harness import Gateway


def configure_acme(g: Gateway, directory: str, ca_bundle: Path) -> None:
    g.configure(
        extra=(
            "\ntls:\n  acme:\n"
            f"    directory: {directory}\n"
            "    email: admin@ha.test\n"
            f"    ca_bundle: {ca_bundle}\n"
        )
    )


def served(port: int, sni: str = "ha.test", alpn: list[str] | None = None) -> x509.Certificate:
    """The certificate the listener on `port` presents for `sni` (not verified)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(alpn)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        ctx.wrap_socket(raw, server_hostname=sni) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


def wait_for(check: Callable[[], Any], timeout: float = 30, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.2)
    raise TimeoutError(f"{what} not met after {timeout}s")


def status(state: Path) -> dict[str, Any]:
    r = run_hagate("acme", "status", "--json", state=state)
    assert r.code == 0, r.err
    data: dict[str, Any] = json.loads(r.out)
    return data


def acme_certificate(state: Path) -> x509.Certificate | None:
    path = state / "acme" / "certificate.pem"
    if not path.exists():
        return None
    return x509.load_pem_x509_certificates(path.read_bytes())[0]


def issued_by_pebble(cert: x509.Certificate) -> bool:
    return "Pebble" in cert.issuer.rfc4514_string()


def curl_verifies(pebble: Pebble, port: int, root: Path, name: str = "ha.test") -> str:
    """curl to https://NAME:PORT/ trusting only pebble's root; its output (it fails loudly)."""
    r = subprocess.run(
        [
            "curl",
            "--silent",
            "--show-error",
            "--max-time",
            "10",
            "--cacert",
            str(root),
            "--resolve",
            f"{name}:{port}:127.0.0.1",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{ssl_verify_result}",
            f"https://{name}:{port}/",
        ],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert r.returncode == 0, (r.returncode, r.stderr)
    return r.stdout


def openssl_verifies(port: int, root: Path, name: str = "ha.test") -> str:
    r = subprocess.run(
        [
            "openssl",
            "s_client",
            "-connect",
            f"127.0.0.1:{port}",
            "-servername",
            name,
            "-verify_hostname",
            name,
            "-verify_return_error",
            "-CAfile",
            str(root),
            "-showcerts",
        ],
        input="",
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return r.stdout
