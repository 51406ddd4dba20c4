"""Debian's pebble (a real ACME server) for tests, with pebble-challtestsrv as its DNS.

Every name resolves to 127.0.0.1 (challtestsrv's default answer), and pebble validates
tls-alpn-01 by connecting to `tls_port` there: the gateway's port in port-forward mode, the
relay's in relay mode, or a port where nothing answers to make validation fail.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import ssl
import subprocess
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.net import free_port, wait_listening


def _https_identity(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a certificate for 127.0.0.1/localhost: pebble's own HTTPS listener."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pebble test HTTPS CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    import ipaddress

    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = (directory / "https-ca.pem", directory / "https.pem", directory / "https.key")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


def available() -> bool:
    return shutil.which("pebble") is not None and shutil.which("pebble-challtestsrv") is not None


@dataclass
class Pebble:
    directory_path: Path
    tls_port: int
    validity: int | None = None  # seconds; pebble's default is five years
    port: int = field(default_factory=free_port)
    management_port: int = field(default_factory=free_port)
    dns_port: int = field(default_factory=free_port)
    dns_management_port: int = field(default_factory=free_port)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.directory_path.mkdir(parents=True, exist_ok=True)
        self.https_ca, self.https_cert, self.https_key = _https_identity(self.directory_path)

    @property
    def directory(self) -> str:
        return f"https://127.0.0.1:{self.port}/dir"

    def start(self) -> None:
        config = {
            "pebble": {
                "listenAddress": f"127.0.0.1:{self.port}",
                "managementListenAddress": f"127.0.0.1:{self.management_port}",
                "certificate": str(self.https_cert),
                "privateKey": str(self.https_key),
                "httpPort": free_port(),  # http-01 is not used: nothing listens there
                "tlsPort": self.tls_port,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": False,
            }
        }
        if self.validity is not None:
            config["pebble"]["certificateValidityPeriod"] = self.validity
        path = self.directory_path / "pebble.json"
        path.write_text(json.dumps(config))
        log = (self.directory_path / "pebble.log").open("ab")
        log.write(b"\n--- pebble started\n")
        log.flush()
        dns = subprocess.Popen(
            [
                "pebble-challtestsrv",
                "-defaultIPv4",
                "127.0.0.1",
                "-defaultIPv6",
                "",
                "-dns01",
                f"127.0.0.1:{self.dns_port}",
                "-management",
                f"127.0.0.1:{self.dns_management_port}",
                "-http01",
                "",
                "-https01",
                "",
                "-tlsalpn01",
                "",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.procs.append(dns)
        wait_listening(self.dns_management_port, dns)
        env = dict(
            os.environ,
            PEBBLE_VA_NOSLEEP="1",  # validate at once, not after a random pause
            PEBBLE_WFE_NONCEREJECT="0",  # no random badNonce refusals
            PEBBLE_AUTHZREUSE="0",  # every order validates again
        )
        server = subprocess.Popen(
            ["pebble", "-config", str(path), "-dnsserver", f"127.0.0.1:{self.dns_port}"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        self.procs.append(server)
        wait_listening(self.port, server)
        wait_listening(self.management_port, server)

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
        self.procs.clear()

    def restart(self, tls_port: int | None = None) -> None:
        """A new pebble on the same ports (new roots, no accounts), validating on `tls_port`
        if given."""
        self.stop()
        if tls_port is not None:
            self.tls_port = tls_port
        self.start()

    def issued(self) -> int:
        """How many certificates this pebble has issued (since its last start)."""
        return self.log().split("pebble started")[-1].count("Issued certificate serial")

    def root(self) -> bytes:
        """The root that signs this pebble's certificates, from its management interface."""
        ctx = ssl.create_default_context(cafile=str(self.https_ca))
        url = f"https://127.0.0.1:{self.management_port}/roots/0"
        with urllib.request.urlopen(url, context=ctx, timeout=10) as r:
            data: bytes = r.read()
        return data

    def root_file(self) -> Path:
        path = self.directory_path / "pebble-root.pem"
        path.write_bytes(self.root())
        return path

    def log(self) -> str:
        return (self.directory_path / "pebble.log").read_text(errors="replace")
