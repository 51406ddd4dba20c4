"""The deployable Lambda zip for the Alexa handler, and the settings that go with it.

Rules:
  1. The zip is reproducible: the same inputs give the same bytes (fixed times, order and
     modes), and it is written 0600 in one step (a half-written zip never replaces a good one).
  2. The Alexa certificate is hagate's own: issued once under `clients/NAME.{crt,key}` in the
     state directory and reused while it is valid; a revoked or expired one is replaced.
  3. With credentials `bundle` the zip holds everything and the handler needs no environment
     variable; with `env` or `ssm` the zip holds no secret and the values are handed over for
     the user to set.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509

from hagate.alexa.lambda_function import BUNDLE_FILES, ENV_NAMES  # the names it reads
from hagate.errors import HagateError
from hagate.pki import certs
from hagate.pki.authority import Authority, CertRecord
from hagate.state import CLIENTS_DIR, SERVER_CERT, StateDir, atomic_write

TOKEN_MODES = ("long_lived", "directive")
CREDENTIALS = ("bundle", "env", "ssm")
ENV_LIMIT = 4096  # Lambda's limit on all environment variables together
ZIP_TIME = (1980, 1, 1, 0, 0, 0)
DEFAULT_DEADLINE = 6.5


@dataclass
class Bundle:
    path: Path
    cert_name: str
    cert_sha256: str
    cert_reused: bool
    files: list[str]
    environment: dict[str, str] = field(default_factory=dict)  # what the user must set
    ssm_parameters: dict[str, str] = field(default_factory=dict)  # name -> value
    sha256: str = ""


def handler_source() -> bytes:
    return resources.files("hagate.alexa").joinpath("lambda_function.py").read_bytes()


def alexa_certificate(
    state: StateDir, name: str, days: int = 825
) -> tuple[bytes, bytes, CertRecord, bool]:
    """(cert PEM, key PEM, record, reused): the live certificate NAME, or a new one."""
    authority = Authority(state)
    folder = state / CLIENTS_DIR
    crt, key = folder / f"{name}.crt", folder / f"{name}.key"
    live = [r for r in authority.records() if r.name == name and not r.revoked]
    if live:
        record = live[0]
        if record.status() not in ("valid", "expiring"):
            raise HagateError(
                f"the certificate {name!r} has {record.status()}; revoke it"
                f" (hagate cert revoke {name}) and run this again for a new one"
            )
        if crt.exists() and key.exists():
            pem = crt.read_bytes()
            if certs.sha256_hex(x509.load_pem_x509_certificate(pem)) == record.sha256:
                return pem, key.read_bytes(), record, True
        raise HagateError(
            f"a certificate named {name!r} exists but hagate does not hold its key in"
            f" {folder}; revoke it (hagate cert revoke {name}) or pick another --cert"
        )
    issued, record = authority.issue(name, days)
    folder = state.subdir(CLIENTS_DIR)
    cert_pem, key_pem = certs.cert_pem(issued.cert), certs.key_pem(issued.key)
    atomic_write(crt, cert_pem)
    atomic_write(key, key_pem, mode=0o600)
    return cert_pem, key_pem, record, False


def server_ca(state: StateDir) -> bytes | None:
    """hagate's CA when it signed the certificate the gateway serves (no ACME certificate
    yet): the handler must trust it, besides the public CAs it always trusts. None when the
    gateway serves a certificate from an ACME CA."""
    from hagate.acme.store import AcmeFiles
    from hagate.config import load_config

    authority = Authority(state)
    ca = authority.ca_cert()
    acme = AcmeFiles(state).certificate_path
    with_acme = load_config(state.config_path).acme is not None and acme.exists()
    served = acme if with_acme else state / SERVER_CERT
    chain = x509.load_pem_x509_certificates(served.read_bytes())
    if chain and chain[0].issuer == ca.subject:
        return certs.cert_pem(ca)
    return None


def validate_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname or parts.path not in ("", "/"):
        raise HagateError(
            f"--url must be https://NAME[:PORT] (where Alexa's Lambda reaches hagate), not {url!r}"
        )
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise HagateError(f"--url has a bad port: {url!r}") from None
    return url.rstrip("/")


def build(
    state: StateDir,
    out: Path,
    url: str,
    cert_name: str = "alexa",
    token_mode: str = "long_lived",
    long_lived_token: str | None = None,
    credentials: str = "bundle",
    ssm_prefix: str = "/hagate/alexa",
    deadline: float = DEFAULT_DEADLINE,
    connect_address: str | None = None,
) -> Bundle:
    """Issue or reuse the Alexa certificate and write the Lambda zip to `out`."""
    url = validate_url(url)
    if token_mode not in TOKEN_MODES:
        raise HagateError(f"--token-mode must be one of {', '.join(TOKEN_MODES)}")
    if credentials not in CREDENTIALS:
        raise HagateError(f"--credentials must be one of {', '.join(CREDENTIALS)}")
    if not 0.5 <= deadline <= 7.5:
        raise HagateError("--deadline must be between 0.5 and 7.5 seconds (Alexa waits 8)")
    if token_mode == "long_lived" and not long_lived_token:
        raise HagateError(
            "--token-mode long_lived needs --long-lived-token-file: create a token in Home"
            " Assistant (your profile, Security, Long-lived access tokens) and save it to a file"
        )
    if token_mode == "directive" and long_lived_token:
        raise HagateError("--long-lived-token-file goes with --token-mode long_lived only")
    cert_pem, key_pem, record, reused = alexa_certificate(state, cert_name)
    secrets: dict[str, bytes] = {"client_cert": cert_pem, "client_key": key_pem}
    ca = server_ca(state)
    if ca is not None:
        secrets["ca"] = ca
    if long_lived_token:
        secrets["long_lived_token"] = long_lived_token.strip().encode() + b"\n"
    settings: dict[str, object] = {
        "url": url,
        "token_mode": token_mode,
        "credentials": credentials,
        "deadline": deadline,
    }
    if credentials == "ssm":
        settings["ssm_prefix"] = ssm_prefix.rstrip("/")
    if connect_address:
        settings["connect_address"] = connect_address
    files: dict[str, bytes] = {
        "lambda_function.py": handler_source(),
        "hagate_alexa.json": (json.dumps(settings, indent=2, sort_keys=True) + "\n").encode(),
    }
    bundle = Bundle(out, cert_name, record.sha256, reused, [])
    if credentials == "bundle":
        files |= {BUNDLE_FILES[k]: v for k, v in secrets.items()}
    elif credentials == "env":
        bundle.environment = {ENV_NAMES[k]: v.decode().strip() for k, v in secrets.items()}
        size = sum(len(k) + len(v) for k, v in bundle.environment.items())
        if size > ENV_LIMIT:
            raise HagateError(
                f"the credentials take {size} bytes of environment, more than Lambda's"
                f" {ENV_LIMIT}; use --credentials ssm or bundle"
            )
    else:
        prefix = ssm_prefix.rstrip("/")
        bundle.ssm_parameters = {f"{prefix}/{k}": v.decode().strip() for k, v in secrets.items()}
    data = zip_bytes(files)
    try:
        atomic_write(out, data, mode=0o600)
    except OSError as e:
        raise HagateError(f"cannot write {out}: {e.strerror}") from e
    bundle.files = sorted(files)
    bundle.sha256 = hashlib.sha256(data).hexdigest()
    return bundle


def zip_bytes(files: dict[str, bytes]) -> bytes:
    """A zip of `files` that depends on nothing but their names and contents."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o100644 << 16
            info.create_system = 3  # Unix, so the mode above is read
            z.writestr(info, files[name], compresslevel=9)
    return buf.getvalue()


def lambda_settings(bundle: Bundle, credentials: str) -> list[tuple[str, str]]:
    """The AWS Lambda settings to use, as (setting, value) rows."""
    rows = [
        ("Runtime", "python3.13 (python3.12 works too)"),
        ("Handler", "lambda_function.lambda_handler"),
        ("Architecture", "arm64 (x86_64 works too)"),
        ("Memory", "128 MB"),
        ("Timeout", "10 seconds (the handler answers within its own deadline, under Alexa's 8)"),
        ("Trigger", "Alexa Smart Home, with your skill's ID"),
    ]
    if credentials == "bundle":
        rows.append(("Environment", "none: the zip holds its settings and credentials"))
    elif credentials == "env":
        rows.append(("Environment", ", ".join(sorted(bundle.environment)) + " (values below)"))
    else:
        rows.append(
            (
                "Environment",
                "none needed (the zip says ssm); the role needs ssm:GetParameters"
                " and kms:Decrypt for the parameters below",
            )
        )
    return rows
