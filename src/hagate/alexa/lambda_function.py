"""hagate's Alexa Smart Home handler for AWS Lambda (python3.12, python3.13): stdlib only.

It forwards each payloadVersion 3 directive to Home Assistant's /api/alexa/smart_home through
hagate, presenting a client certificate that hagate issued, and answers Alexa with HA's
response, or with a well-formed Alexa.ErrorResponse when anything goes wrong.

Rules:
  1. lambda_handler never raises and never returns an invalid message.
  2. The SSL context and one HTTPS connection live at module level and are reused by warm
     invocations. Lambda freezes the process in between, so the gateway may have closed the
     connection meanwhile: a reused connection that fails before any byte of the response has
     arrived is replaced and the directive sent once more. Never after response bytes were
     read (AdjustBrightness is not idempotent).
  3. One deadline (HAGATE_DEADLINE, default 6.5 s, under Alexa's 8 s) covers connecting, TLS,
     sending and the whole response.
  4. Tokens and keys never reach the log or a response. Key material touches the disk only
     where `ssl` needs a path: written 0600 in a private temporary folder, removed once loaded.

Configuration: `hagate_alexa.json` next to this file (written by `hagate alexa bundle`), each
key overridden by an environment variable:
  url          HAGATE_URL          https://ha.example.com (the gateway or the relay)
  token_mode   HAGATE_TOKEN_MODE   long_lived (default) or directive
  credentials  HAGATE_CREDENTIALS  bundle (files next to this one), env or ssm
  deadline     HAGATE_DEADLINE     seconds
  connect_address HAGATE_CONNECT_ADDRESS  connect here instead of resolving the URL's name
                                   (its TLS name and Host stay the URL's), like curl --resolve
  ssm_prefix   HAGATE_SSM_PREFIX   for ssm: parameters PREFIX/client_cert, client_key, ca,
                                   long_lived_token (SecureString)
With `env`: HAGATE_CLIENT_CERT, HAGATE_CLIENT_KEY, HAGATE_CA (optional) and
HAGATE_LONG_LIVED_TOKEN hold the PEM text and the token.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import select
import socket
import ssl
import sys
import tempfile
import time
from typing import Any
from urllib.parse import urlsplit

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIG_FILE = "hagate_alexa.json"
BUNDLE_FILES = {  # credential -> file name in the bundle
    "client_cert": "client.crt",
    "client_key": "client.key",
    "ca": "ca.crt",
    "long_lived_token": "long_lived_token",
}
ENV_NAMES = {
    "client_cert": "HAGATE_CLIENT_CERT",
    "client_key": "HAGATE_CLIENT_KEY",
    "ca": "HAGATE_CA",
    "long_lived_token": "HAGATE_LONG_LIVED_TOKEN",
}
DEFAULT_DEADLINE = 6.5
PAGE_HEADER = "X-Hagate-Page"  # the gateway marks its own pages (refusals, HA unreachable)
SMART_HOME_PATH = "/api/alexa/smart_home"


class Failure(Exception):
    """A directive that cannot get HA's answer; becomes an Alexa.ErrorResponse."""

    def __init__(self, kind: str, message: str, log_reason: str = "") -> None:
        super().__init__(message)
        self.kind = kind  # "unreachable", "auth", "expired", "internal", "invalid"
        self.message = message
        self.log_reason = log_reason or message


class Settings:
    def __init__(self) -> None:
        path = os.path.join(HERE, CONFIG_FILE)
        raw: dict[str, Any] = {}
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                raw = json.load(f)
        env = os.environ
        self.url = (env.get("HAGATE_URL") or raw.get("url") or "").rstrip("/")
        self.token_mode = env.get("HAGATE_TOKEN_MODE") or raw.get("token_mode") or "long_lived"
        self.credentials = env.get("HAGATE_CREDENTIALS") or raw.get("credentials") or "bundle"
        self.ssm_prefix = (
            env.get("HAGATE_SSM_PREFIX") or raw.get("ssm_prefix") or "/hagate/alexa"
        ).rstrip("/")
        deadline = env.get("HAGATE_DEADLINE") or raw.get("deadline") or DEFAULT_DEADLINE
        try:
            self.deadline = float(deadline)
        except (TypeError, ValueError):
            raise Failure("internal", f"HAGATE_DEADLINE is not a number: {deadline!r}") from None
        parts = urlsplit(self.url)
        if parts.scheme != "https" or not parts.hostname:
            raise Failure("internal", "HAGATE_URL must be https://your-hostname (it is not set)")
        if self.token_mode not in ("long_lived", "directive"):
            raise Failure("internal", f"unknown token mode {self.token_mode!r}")
        if self.credentials not in ("bundle", "env", "ssm"):
            raise Failure("internal", f"unknown credentials source {self.credentials!r}")
        self.host = parts.hostname
        self.port = parts.port or 443
        self.connect_address = env.get("HAGATE_CONNECT_ADDRESS") or raw.get("connect_address")


def _read_credentials(settings: Settings) -> dict[str, str]:
    """The PEM texts and long-lived token from the configured source (missing ones absent)."""
    found: dict[str, str] = {}
    if settings.credentials == "bundle":
        for key, name in BUNDLE_FILES.items():
            path = os.path.join(HERE, name)
            if os.path.exists(path):
                with open(path, encoding="ascii") as f:
                    found[key] = f.read().strip()
    elif settings.credentials == "env":
        for key, name in ENV_NAMES.items():
            value = os.environ.get(name, "").strip()
            if value:
                found[key] = value.replace("\\n", "\n")  # consoles that flatten newlines
    else:
        import boto3  # the Lambda runtime's; imported only for this source

        names = [f"{settings.ssm_prefix}/{key}" for key in BUNDLE_FILES]
        ssm = boto3.client("ssm")
        answer = ssm.get_parameters(Names=names, WithDecryption=True)
        for p in answer.get("Parameters", []):
            found[p["Name"].rsplit("/", 1)[-1]] = p["Value"].strip().replace("\\n", "\n")
    for key in ("client_cert", "client_key"):
        if key not in found:
            where = {
                "bundle": f"the bundle file {BUNDLE_FILES[key]}",
                "env": f"the environment variable {ENV_NAMES[key]}",
                "ssm": f"the SSM parameter {settings.ssm_prefix}/{key}",
            }[settings.credentials]
            raise Failure("internal", f"the client certificate is incomplete: {where} is missing")
    return found


def _ssl_context(creds: dict[str, str]) -> ssl.SSLContext:
    # The public CAs always (the gateway may switch to an ACME certificate after the bundle
    # was made), and hagate's own CA when the bundle carries it.
    ctx = ssl.create_default_context()
    if "ca" in creds:
        ctx.load_verify_locations(cadata=creds["ca"])
    folder = tempfile.mkdtemp(prefix="hagate-")  # 0700
    cert_path, key_path = os.path.join(folder, "c.pem"), os.path.join(folder, "k.pem")
    try:
        for path, text in ((cert_path, creds["client_cert"]), (key_path, creds["client_key"])):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="ascii") as f:
                f.write(text + "\n")
        ctx.load_cert_chain(cert_path, key_path)
    finally:
        for path in (cert_path, key_path):
            if os.path.exists(path):
                os.unlink(path)
        os.rmdir(folder)
    return ctx


# -- module state: kept across warm invocations ------------------------------------------

_settings: Settings | None = None
_creds: dict[str, str] = {}
_context: ssl.SSLContext | None = None
_conn: http.client.HTTPConnection | None = None


def _setup() -> Settings:
    global _settings, _creds, _context
    if _settings is None or _context is None:
        settings = Settings()
        creds = _read_credentials(settings)
        try:
            context = _ssl_context(creds)
        except (ssl.SSLError, ValueError) as e:
            raise Failure(
                "internal", f"the client certificate or key cannot be loaded: {e}"
            ) from None
        _settings, _creds, _context = settings, creds, context
    return _settings


def _drop_connection() -> None:
    global _conn
    if _conn is not None:
        with contextlib.suppress(Exception):
            _conn.close()
    _conn = None


def _stale(conn: http.client.HTTPConnection) -> bool:
    """Whether a kept connection was closed (or sent something) while Lambda was frozen."""
    sock = conn.sock
    if sock is None:
        return True
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    if not readable:
        return False
    # Readable is not closed: TLS 1.3 session tickets arrive after the handshake and make the
    # socket readable without a byte of application data.
    try:
        sock.setblocking(False)
        sock.recv(1)
    except ssl.SSLWantReadError:
        return False  # only TLS housekeeping was waiting
    except (OSError, ssl.SSLError):
        return True
    finally:
        with contextlib.suppress(OSError):
            sock.setblocking(True)
    return True  # the close (b"") or bytes nobody asked for: either way not to be reused


class _Timing:
    def __init__(self) -> None:
        self.start = time.monotonic()
        self.connect_ms: float | None = None
        self.tls_ms: float | None = None
        self.reused = False
        self.retried = False

    def ms(self) -> float:
        return round((time.monotonic() - self.start) * 1000, 1)


def _post(
    settings: Settings, body: bytes, token: str, timing: _Timing
) -> tuple[int, dict[str, str], bytes]:
    """POST the directive; (status, headers, body). Raises Failure."""
    global _conn
    deadline = timing.start + settings.deadline
    headers = {
        "Host": settings.host if settings.port == 443 else f"{settings.host}:{settings.port}",
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "User-Agent": "hagate-alexa/1",
    }
    for attempt in (0, 1):
        left = deadline - time.monotonic()
        if left <= 0:
            raise Failure("unreachable", "no answer within the deadline", "deadline")
        conn = _conn
        if conn is not None and _stale(conn):
            _drop_connection()
            conn = None
        reused = conn is not None
        try:
            if conn is None:
                conn = _connect(settings, deadline, timing)
                _conn = conn
            timing.reused = reused
            assert conn.sock is not None
            conn.sock.settimeout(max(deadline - time.monotonic(), 0.001))
            conn.request("POST", SMART_HOME_PATH, body=body, headers=headers)
        except (OSError, http.client.HTTPException) as e:
            _drop_connection()
            if reused and attempt == 0:
                timing.retried = True
                continue  # the kept connection was gone: nothing of the answer was read
            raise _network_failure(e) from None
        try:
            conn.sock.settimeout(max(deadline - time.monotonic(), 0.001))
            response = conn.getresponse()
        except (http.client.RemoteDisconnected, ConnectionResetError, ssl.SSLEOFError) as e:
            # Closed or reset before the status line: no byte of the answer was read, so a
            # reused connection gets one more try (the usual cause: the gateway closed it
            # while Lambda was frozen, and the directive went into a dead socket).
            _drop_connection()
            if reused and attempt == 0:
                timing.retried = True
                continue
            raise _network_failure(e) from None
        except (OSError, http.client.HTTPException) as e:
            _drop_connection()
            raise _network_failure(e) from None
        try:
            data = _read_body(conn, response, deadline)
        except (OSError, http.client.HTTPException) as e:
            _drop_connection()
            raise _network_failure(e) from None
        if response.will_close:
            _drop_connection()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data
    raise Failure("unreachable", "the gateway closed the connection twice", "closed")


def _connect(settings: Settings, deadline: float, timing: _Timing) -> http.client.HTTPConnection:
    """A new mutual-TLS connection to the gateway, within the deadline."""
    assert _context is not None
    t0 = time.monotonic()
    address = settings.connect_address or settings.host
    sock = socket.create_connection((address, settings.port), timeout=deadline - t0)
    try:
        # http.client writes the head and the body apart: without this, Nagle holds the body
        # until the gateway's delayed ACK (40 ms on a kept connection). Its connect() sets it;
        # this socket is made here, so it must too.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        t1 = time.monotonic()
        sock.settimeout(max(deadline - t1, 0.001))
        tls = _context.wrap_socket(sock, server_hostname=settings.host)
    except BaseException:
        sock.close()
        raise
    now = time.monotonic()
    timing.connect_ms = round((t1 - t0) * 1000, 1)
    timing.tls_ms = round((now - t1) * 1000, 1)
    conn = http.client.HTTPConnection(settings.host, settings.port, timeout=deadline - now)
    conn.sock = tls
    return conn


def _read_body(
    conn: http.client.HTTPConnection, response: http.client.HTTPResponse, deadline: float
) -> bytes:
    chunks: list[bytes] = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the answer did not arrive within the deadline")
        if conn.sock is not None:
            conn.sock.settimeout(left)
        if response.length == 0:  # all of Content-Length is in
            break
        chunk = response.read1(65536)
        if not chunk:
            if response.length:  # the connection ended before Content-Length was met
                raise http.client.IncompleteRead(b"".join(chunks), response.length)
            break
        chunks.append(chunk)
    response.close()  # or http.client refuses the next request on this connection
    return b"".join(chunks)


def _network_failure(e: BaseException) -> Failure:
    if isinstance(e, TimeoutError | socket.timeout):
        return Failure(
            "unreachable", "Home Assistant did not answer within the deadline", "deadline"
        )
    if isinstance(e, ssl.SSLCertVerificationError):
        return Failure(
            "unreachable", f"the gateway's certificate is not trusted: {e.verify_message}", "tls"
        )
    if isinstance(e, ssl.SSLError):
        return Failure(
            "unreachable", f"the TLS handshake with the gateway failed: {e.reason or e}", "tls"
        )
    if isinstance(e, ConnectionRefusedError):
        return Failure(
            "unreachable",
            "nothing answers at the gateway's address (relay or gateway down?)",
            "refused",
        )
    return Failure(
        "unreachable", f"the connection to the gateway failed: {type(e).__name__}: {e}", "network"
    )


# -- directives and responses ------------------------------------------------------------


def _message_id() -> str:
    b = bytearray(os.urandom(16))
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_ENDPOINT_ID = re.compile(r"[a-zA-Z0-9_\-=#;:?@&]{1,256}")  # Amazon's pattern for endpointId

ERROR_TYPES = {
    # failure kind -> (type without an endpoint, type with one)
    "unreachable": ("BRIDGE_UNREACHABLE", "ENDPOINT_UNREACHABLE"),
    "auth": ("INVALID_AUTHORIZATION_CREDENTIAL", "INVALID_AUTHORIZATION_CREDENTIAL"),
    "expired": ("EXPIRED_AUTHORIZATION_CREDENTIAL", "EXPIRED_AUTHORIZATION_CREDENTIAL"),
    "internal": ("INTERNAL_ERROR", "INTERNAL_ERROR"),
    "invalid": ("INVALID_DIRECTIVE", "INVALID_DIRECTIVE"),
}


def error_response(directive: Any, failure: Failure) -> dict[str, Any]:
    """A well-formed Alexa.ErrorResponse for `directive` (which may itself be malformed)."""
    header = directive.get("header") if isinstance(directive, dict) else None
    header = header if isinstance(header, dict) else {}
    endpoint = directive.get("endpoint") if isinstance(directive, dict) else None
    endpoint_id = endpoint.get("endpointId") if isinstance(endpoint, dict) else None
    if not (isinstance(endpoint_id, str) and _ENDPOINT_ID.fullmatch(endpoint_id)):
        endpoint_id = None  # only a well-formed id is echoed, so the answer stays valid
    if header.get("namespace") == "Alexa.Authorization":
        namespace, kind = "Alexa.Authorization", "ACCEPT_GRANT_FAILED"
    else:
        namespace = "Alexa"
        kind = ERROR_TYPES[failure.kind][1 if isinstance(endpoint_id, str) else 0]
    out_header: dict[str, Any] = {
        "namespace": namespace,
        "name": "ErrorResponse",
        "messageId": _message_id(),
        "payloadVersion": "3",
    }
    token = header.get("correlationToken")
    if isinstance(token, str) and token:
        out_header["correlationToken"] = token
    event: dict[str, Any] = {"header": out_header}
    if isinstance(endpoint_id, str) and namespace == "Alexa":
        event["endpoint"] = {"endpointId": endpoint_id}
    event["payload"] = {"type": kind, "message": failure.message[:1000]}
    return {"event": event}


def _token(directive: dict[str, Any], settings: Settings) -> str:
    if settings.token_mode == "long_lived":
        token = _creds.get("long_lived_token", "")
        if not token:
            raise Failure("internal", "no long-lived Home Assistant token is configured")
        return token
    for holder in (
        (directive.get("endpoint") or {}).get("scope"),
        (directive.get("payload") or {}).get("grantee"),
        (directive.get("payload") or {}).get("scope"),
    ):
        if isinstance(holder, dict) and isinstance(holder.get("token"), str) and holder["token"]:
            return str(holder["token"])
    raise Failure("auth", "the directive carries no access token", "no token in directive")


def _expired(token: str) -> bool:
    """Whether an HA token (a JWT) says it has expired; its signature is HA's business."""
    import base64

    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return float(claims["exp"]) < time.time()
    except Exception:
        return False


def _answer(status: int, headers: dict[str, str], data: bytes, token: str) -> dict[str, Any]:
    """HA's answer unchanged, or the Failure it amounts to."""
    if PAGE_HEADER.lower() in headers:
        text = data.decode("utf-8", "replace").strip().splitlines()
        if headers[PAGE_HEADER.lower()] == "upstream-untrusted":  # the title, then the fix
            fix = text[2] if len(text) > 2 else ""
            raise Failure("internal", f"{text[0]}: {fix}", "ha 400 untrusted proxy")
        why = " ".join(text[:2]) if text else f"status {status}"
        raise Failure(
            "unreachable",
            f"hagate refused the Lambda's request ({status}): {why}",
            f"gateway {status}",
        )
    if status == 401:
        if _expired(token):
            raise Failure(
                "expired", "Home Assistant says the access token has expired", "ha 401 expired"
            )
        raise Failure("auth", "Home Assistant refused the access token", "ha 401")
    if status == 403:
        raise Failure(
            "unreachable",
            "Home Assistant refuses the Lambda's address (an IP ban? see ip_bans.yaml)",
            "ha 403",
        )
    if status == 404:
        raise Failure(
            "internal",
            "Home Assistant has no Alexa endpoint: add `alexa: smart_home:` to its configuration",
            "ha 404",
        )
    if status == 400 and data.strip() == b"400: Bad Request":
        raise Failure(
            "internal",
            "Home Assistant answered 400, as it does when it does not trust hagate as a proxy: "
            "set http: use_x_forwarded_for: true and trusted_proxies in its configuration",
            "ha 400",
        )
    if status != 200:
        raise Failure("internal", f"Home Assistant answered {status}", f"ha {status}")
    try:
        answer = json.loads(data)
    except ValueError:
        raise Failure("internal", "Home Assistant's answer is not JSON", "not json") from None
    if not isinstance(answer, dict) or not isinstance(answer.get("event"), dict):
        raise Failure("internal", "Home Assistant's answer is not an Alexa message", "not alexa")
    return answer


def _log(record: dict[str, Any]) -> None:
    try:
        sys.stdout.write(json.dumps(record, separators=(",", ":")) + "\n")
        sys.stdout.flush()
    except Exception:
        pass


def lambda_handler(event: Any, context: Any = None) -> dict[str, Any]:
    """Lambda's entry point: the answer to one Alexa directive."""
    timing = _Timing()
    directive: Any = event.get("directive") if isinstance(event, dict) else None
    record: dict[str, Any] = {"hagate": "alexa"}
    try:
        header = directive.get("header") if isinstance(directive, dict) else None
        if not isinstance(header, dict) or header.get("payloadVersion") != "3":
            raise Failure("invalid", "not an Alexa payloadVersion 3 directive", "invalid directive")
        record["directive"] = f"{header.get('namespace')}.{header.get('name')}"
        endpoint = directive.get("endpoint")
        if isinstance(endpoint, dict) and isinstance(endpoint.get("endpointId"), str):
            record["endpoint"] = endpoint["endpointId"]
        settings = _setup()
        token = _token(directive, settings)
        body = json.dumps(event, separators=(",", ":")).encode()
        status, headers, data = _post(settings, body, token, timing)
        record["status"] = status
        result = _answer(status, headers, data, token)
        answer_header = (result.get("event") or {}).get("header") or {}
        record["outcome"] = str(answer_header.get("name", "?"))
    except Failure as f:
        result = error_response(directive, f)
        record["outcome"] = result["event"]["payload"]["type"]
        record["reason"] = f.log_reason
    except Exception as e:  # never raise into Lambda: an invalid answer is worse than an error
        result = error_response(
            directive, Failure("internal", f"hagate's handler failed: {type(e).__name__}")
        )
        record["outcome"] = "INTERNAL_ERROR"
        record["reason"] = f"{type(e).__name__}"
    record.update(
        total_ms=timing.ms(),
        connect_ms=timing.connect_ms,
        tls_ms=timing.tls_ms,
        reused=timing.reused,
        retried=timing.retried,
    )
    _log(record)
    return result
