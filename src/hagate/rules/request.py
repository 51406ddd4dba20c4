"""Field values for a request: from an HTTP request, a client certificate, or JSON.

The gateway and `hagate rules explain` build fields the same way, so what explain shows is what
the gateway decides.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Collection, Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from cryptography import x509
from cryptography.x509.oid import NameOID

from hagate.errors import HagateError
from hagate.rules import fields
from hagate.rules.types import Kind, Type, to_bytes_str

if TYPE_CHECKING:
    from hagate.pki.authority import Authority, CertRecord

_OID_SHORT = {
    NameOID.COMMON_NAME: "CN",
    NameOID.COUNTRY_NAME: "C",
    NameOID.STATE_OR_PROVINCE_NAME: "ST",
    NameOID.LOCALITY_NAME: "L",
    NameOID.ORGANIZATION_NAME: "O",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "OU",
}


def _cf_time(t: datetime.datetime) -> str:
    return f"{t:%b} {t.day:2d} {t:%H:%M:%S %Y} GMT"


def _text(value: str | bytes) -> str:
    return value if isinstance(value, str) else value.hex()


def _legacy_dn(name: x509.Name) -> str:
    return "".join(
        f"/{_OID_SHORT.get(a.oid, a.oid.dotted_string)}={_text(a.value)}"
        for rdn in name.rdns
        for a in rdn
    )


def _ski(cert: x509.Certificate) -> str:
    try:
        return (
            cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
            .value.digest.hex()
            .upper()
        )
    except x509.ExtensionNotFound:
        return ""


def certificate_fields(
    cert: x509.Certificate | None,
    verified: bool,
    revoked: bool,
    issuer: x509.Certificate | None = None,
) -> dict[str, Any]:
    """The `cf.tls_client_auth.*` fields, formatted as Cloudflare formats them.

    hagate treats a revoked certificate as not verified (Cloudflare needs an extra
    `or cf.tls_client_auth.cert_revoked` for that); `cert_revoked` still tells them apart.
    """
    if cert is None:
        return {}
    from cryptography.hazmat.primitives import hashes

    p = "cf.tls_client_auth."
    out: dict[str, Any] = {
        p + "cert_presented": True,
        p + "cert_verified": verified and not revoked,
        p + "cert_revoked": revoked,
        p + "cert_fingerprint_sha1": cert.fingerprint(hashes.SHA1()).hex(),
        p + "cert_fingerprint_sha256": cert.fingerprint(hashes.SHA256()).hex(),
        p + "cert_subject_dn": cert.subject.rfc4514_string(),
        p + "cert_issuer_dn": cert.issuer.rfc4514_string(),
        p + "cert_subject_dn_rfc2253": cert.subject.rfc4514_string(),
        p + "cert_issuer_dn_rfc2253": cert.issuer.rfc4514_string(),
        p + "cert_subject_dn_legacy": _legacy_dn(cert.subject),
        p + "cert_issuer_dn_legacy": _legacy_dn(cert.issuer),
        p + "cert_serial": f"{cert.serial_number:X}",
        p + "cert_ski": _ski(cert),
        p + "cert_not_before": _cf_time(cert.not_valid_before_utc),
        p + "cert_not_after": _cf_time(cert.not_valid_after_utc),
    }
    if issuer is not None:
        out[p + "cert_issuer_serial"] = f"{issuer.serial_number:X}"
        out[p + "cert_issuer_ski"] = _ski(issuer)
    return {k: to_bytes_str(v) if isinstance(v, str) else v for k, v in out.items()}


_NEEDS_HEADER_MAP = frozenset(
    {
        "http.user_agent",
        "http.referer",
        "http.cookie",
        "http.x_forwarded_for",
        "http.request.headers",
        "http.request.cookies",
    }
)
_NEEDS_ARGS = frozenset(
    {"http.request.uri.args", "http.request.uri.args.names", "http.request.uri.args.values"}
)


def issued_certificate_fields(authority: Authority, record: CertRecord) -> dict[str, Any]:
    """The certificate fields of one of hagate's issued certificates (a pki CertRecord of
    `authority`) as it stands now: verified while valid or expiring, revoked once revoked."""
    standing = record.status()
    return certificate_fields(
        authority.certificate(record),
        verified=standing in ("valid", "expiring"),
        revoked=record.revoked,
        issuer=authority.ca_cert(),
    )


def request_fields(
    *,
    client_ip: str | ipaddress.IPv4Address | ipaddress.IPv6Address,
    method: str = "GET",
    host: str = "",
    target: str = "/",
    headers: Iterable[tuple[str, str]] = (),
    version: str = "HTTP/1.1",
    port: int = 443,
    asn: int = 0,
    country: str = "",
    continent: str = "",
    tls: Mapping[str, Any] | None = None,
    timestamp: int = 0,
    only: Collection[str] | None = None,
) -> dict[str, Any]:
    """Fields for one request. Strings are taken as bytes in Latin-1 form (as on the wire).

    With `only`, fields outside it may be left out (the costly ones are): the gateway passes
    the fields its rules read. A left-out field reads as missing, so `only` must cover every
    field a rule reads.
    """
    ip = ipaddress.ip_address(client_ip) if isinstance(client_ip, str) else client_ip
    path, _, query = target.partition("?")
    out: dict[str, Any] = {
        "ip.src": ip,
        "ip.src.asnum": asn,
        "ip.src.country": country,
        "ip.src.continent": continent,
        "http.request.method": method,
        "http.request.uri": target,
        "http.request.uri.path": path,
        "http.request.uri.query": query,
        "http.request.version": version,
        "http.request.timestamp.sec": timestamp,
        "cf.edge.server_port": port,
        "ssl": True,
    }
    wanted: Collection[str] = fields.FIELDS if only is None else only
    header_list = headers if isinstance(headers, list) else list(headers)
    if not host or not _NEEDS_HEADER_MAP.isdisjoint(wanted):
        by_name: dict[str, list[str]] = {}
        for name, value in header_list:
            by_name.setdefault(name.lower(), []).append(value)
        if not host:
            host = by_name.get("host", [""])[0]
        out["http.user_agent"] = by_name.get("user-agent", [""])[0]
        out["http.referer"] = by_name.get("referer", [""])[0]
        out["http.cookie"] = "; ".join(by_name.get("cookie", []))
        out["http.x_forwarded_for"] = ", ".join(by_name.get("x-forwarded-for", []))
        out["http.request.headers"] = by_name
        if "http.request.cookies" in wanted:
            cookies: dict[str, list[str]] = {}
            for header in by_name.get("cookie", []):
                for part in header.split(";"):
                    k, sep, v = part.strip().partition("=")
                    if sep:
                        cookies.setdefault(k, []).append(v)
            out["http.request.cookies"] = cookies
    out["http.host"] = host
    if "http.request.full_uri" in wanted:
        out["http.request.full_uri"] = f"https://{host}{target}"
    if "http.request.uri.path.extension" in wanted:
        last = path.rsplit("/", 1)[-1]
        out["http.request.uri.path.extension"] = (
            last.rsplit(".", 1)[-1].lower() if "." in last else ""
        )
    if not _NEEDS_ARGS.isdisjoint(wanted):
        args: dict[str, list[str]] = {}
        for k, v in parse_qsl(query, keep_blank_values=True, encoding="latin-1"):
            args.setdefault(k, []).append(v)
        out["http.request.uri.args"] = args
        out["http.request.uri.args.names"] = [k for k, vs in args.items() for _ in vs]
        out["http.request.uri.args.values"] = [v for vs in args.values() for v in vs]
    if "http.request.headers.names" in wanted:
        out["http.request.headers.names"] = [n for n, _ in header_list]
    if "http.request.headers.values" in wanted:
        out["http.request.headers.values"] = [v for _, v in header_list]
    if tls:
        if only is None or len(only) >= len(tls):
            out.update(tls)
        else:  # the gateway's rules read a field or two of the sixteen: those only
            for name in only:
                if name in tls:
                    out[name] = tls[name]
    return out


# -- JSON input (hagate rules eval --fields) ----------------------------------------------


def _convert(name: str, t: Type, value: Any) -> Any:
    kind = t.kind
    bad = HagateError(f"field {name} is {t}; {json_repr(value)} does not fit")
    if kind is Kind.BOOL:
        if not isinstance(value, bool):
            raise bad
        return value
    if kind is Kind.INT:
        if not isinstance(value, int) or isinstance(value, bool):
            raise bad
        return value
    if kind is Kind.STRING:
        if not isinstance(value, str):
            raise bad
        return to_bytes_str(value)
    if kind is Kind.IP:
        try:
            return ipaddress.ip_address(value)
        except (ValueError, TypeError):
            raise bad from None
    if kind is Kind.ARRAY:
        if not isinstance(value, list):
            raise bad
        return [_convert(name, t.element(), v) for v in value]
    if not isinstance(value, dict):
        raise bad
    return {to_bytes_str(str(k)): _convert(name, t.element(), v) for k, v in value.items()}


def json_repr(value: Any) -> str:
    import json

    return json.dumps(value)[:60]


def fields_from_json(data: Any) -> dict[str, Any]:
    """Field values given as JSON: IPs as strings, headers as a map of lists."""
    if not isinstance(data, dict):
        raise HagateError("--fields must be a JSON object of field names to values")
    out: dict[str, Any] = {}
    for name, value in data.items():
        fdef = fields.lookup(name)
        if fdef is None:
            hint = fields.nearest(name)
            raise HagateError(
                f"unknown field {name!r} in --fields"
                + (f" (did you mean {hint!r}?)" if hint else "")
            )
        out[fdef.name] = _convert(name, fdef.type, value)
    return out
