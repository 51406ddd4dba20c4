"""The gateway's TLS: the server certificate, and a client certificate requested, not required.

Expired client certificates are let through the handshake (OpenSSL's NO_CHECK_TIME) so the
gateway can tell their holder in plain words, on a page, that the certificate expired; the
gateway then treats them as not verified. A certificate from another CA fails the handshake.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from hagate.acme.follow import FollowedContext
from hagate.state import CA_CERT, SERVER_CERT, SERVER_KEY, StateDir

X509_V_FLAG_NO_CHECK_TIME = 0x200000  # OpenSSL's flag; Python's ssl has no name for it
# TLS 1.2 with forward secrecy and AEAD only: no CBC suites (LUCKY13), no RSA key exchange.
# TLS 1.3's suites are all AEAD and are not set by this list.
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"
SNI_ATTR = "hagate_sni"


def _remember_sni(sock: ssl.SSLObject, server_name: str | None, _ctx: ssl.SSLContext) -> None:
    setattr(sock, SNI_ATTR, server_name)


def server_context(
    state: StateDir, cert: Path | None = None, key: Path | None = None
) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(TLS12_CIPHERS)
    ctx.load_cert_chain(cert or state / SERVER_CERT, key or state / SERVER_KEY)
    ctx.load_verify_locations(cafile=str(state / CA_CERT))
    ctx.verify_mode = ssl.CERT_OPTIONAL
    ctx.verify_flags |= X509_V_FLAG_NO_CHECK_TIME
    ctx.set_alpn_protocols(["http/1.1"])
    # OpenSSL sends two TLS 1.3 session tickets by default; each costs about 180 µs of the
    # handshake. One is enough for the client's next connection to resume.
    ctx.num_tickets = 1
    ctx.sni_callback = _remember_sni
    return ctx


def server_contexts(state: StateDir, acme_certificate: Path | None) -> FollowedContext:
    """The gateway's TLS context for new connections: the ACME certificate once there is one
    (followed on disk), else hagate's CA's server certificate."""
    return FollowedContext(
        lambda path: server_context(state, path, path) if path else server_context(state),
        acme_certificate,
    )


UNTRUSTED = (
    "the device does not trust the gateway's certificate (install hagate's CA on it, "
    "or configure ACME for a public certificate)"
)
# The alert a device sends when it ends the handshake (OpenSSL's words) -> plain words.
ALERTS = {
    "certificate unknown": UNTRUSTED,
    "unknown ca": UNTRUSTED,
    "bad certificate": UNTRUSTED,
    "certificate expired": "the device says the gateway's certificate has expired "
    "(`hagate audit` says how to renew it)",
    "certificate revoked": "the device says the gateway's certificate was revoked",
    "unsupported certificate": "the device cannot use the gateway's kind of certificate",
    "protocol version": "the device and the gateway have no TLS version in common",
    "handshake failure": "the device and the gateway have no TLS parameters in common",
    "insufficient security": "the device and the gateway have no TLS parameters in common",
    "unrecognized name": "the device does not accept the name the gateway answers for",
    "decrypt error": "the device could not check the gateway's handshake (a proxy between?)",
}


def _alert_reason(reason: str) -> str:
    """`sslv3 alert certificate unknown` and the like, in plain words."""
    said = reason.split("alert", 1)[1].strip()
    return ALERTS.get(said, f"the device ended the TLS handshake ({said})")


def handshake_reason(exc: BaseException) -> str:
    """A short, plain description of why a TLS handshake failed."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        message = str(exc.verify_message)
        if "issuer" in message or "self-signed" in message or "self signed" in message:
            return "client certificate refused: not issued by this hagate CA"
        return f"client certificate refused: {message}"
    if isinstance(exc, ssl.SSLError):
        reason = (exc.reason or str(exc)).lower().replace("_", " ")
        if "alert" in reason:  # the device ended the handshake, and said why
            return _alert_reason(reason)
        if "certificate verify failed" in reason:
            return "client certificate refused: not issued by this hagate CA"
        if "no shared cipher" in reason or "version" in reason:
            return f"no common TLS parameters ({reason})"
        if "wrong version number" in reason or "http request" in reason:
            return "not TLS (plain HTTP sent to the TLS port?)"
        return reason
    if isinstance(exc, TimeoutError) or "taking longer than" in str(exc):
        return "TLS handshake timed out"
    if isinstance(exc, ConnectionError | EOFError):
        return "the client closed the connection during the TLS handshake"
    return type(exc).__name__ + (f": {exc}" if str(exc) else "")
