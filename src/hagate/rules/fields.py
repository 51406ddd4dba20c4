"""The fields a rule can read, with Cloudflare's names, types and defaults.

A field absent from a request takes its default (false, "", 0, empty), as in Cloudflare.
`ip.src` has no default: a request always has a source address.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from hagate.rules.types import (
    ARRAY_STRING,
    BOOL,
    INT,
    IP,
    MAP_ARRAY_STRING,
    STRING,
    Type,
)


@dataclass(frozen=True)
class FieldDef:
    name: str
    type: Type
    default: object
    doc: str


_TLS = "cf.tls_client_auth."
_DEFS = [
    FieldDef(_TLS + "cert_presented", BOOL, False, "a client certificate was presented"),
    FieldDef(_TLS + "cert_verified", BOOL, False, "it chains to hagate's CA and is in date"),
    FieldDef(_TLS + "cert_revoked", BOOL, False, "it is valid but revoked"),
    FieldDef(_TLS + "cert_fingerprint_sha1", STRING, "", "SHA-1 fingerprint, lower-case hex"),
    FieldDef(_TLS + "cert_fingerprint_sha256", STRING, "", "SHA-256 fingerprint, lower-case hex"),
    FieldDef(_TLS + "cert_subject_dn", STRING, "", "subject DN, e.g. CN=phone"),
    FieldDef(_TLS + "cert_issuer_dn", STRING, "", "issuer DN"),
    FieldDef(_TLS + "cert_subject_dn_rfc2253", STRING, "", "subject DN in RFC 2253 form"),
    FieldDef(_TLS + "cert_issuer_dn_rfc2253", STRING, "", "issuer DN in RFC 2253 form"),
    FieldDef(_TLS + "cert_subject_dn_legacy", STRING, "", "subject DN, /C=../CN=.. form"),
    FieldDef(_TLS + "cert_issuer_dn_legacy", STRING, "", "issuer DN, /C=../CN=.. form"),
    FieldDef(_TLS + "cert_serial", STRING, "", "serial, upper-case hex"),
    FieldDef(_TLS + "cert_issuer_serial", STRING, "", "the issuer's serial, upper-case hex"),
    FieldDef(_TLS + "cert_ski", STRING, "", "subject key identifier, upper-case hex"),
    FieldDef(_TLS + "cert_issuer_ski", STRING, "", "issuer key identifier, upper-case hex"),
    FieldDef(_TLS + "cert_not_before", STRING, "", 'e.g. "Dec 22 19:39:00 2018 GMT"'),
    FieldDef(_TLS + "cert_not_after", STRING, "", 'e.g. "Dec 22 19:39:00 2020 GMT"'),
    FieldDef("http.host", STRING, "", "the Host header"),
    FieldDef("http.user_agent", STRING, "", "the User-Agent header"),
    FieldDef("http.referer", STRING, "", "the Referer header"),
    FieldDef("http.cookie", STRING, "", "the Cookie header"),
    FieldDef("http.x_forwarded_for", STRING, "", "the X-Forwarded-For header as sent"),
    FieldDef("http.request.method", STRING, "", "GET, POST, ..."),
    FieldDef("http.request.uri", STRING, "", "path and query"),
    FieldDef("http.request.uri.path", STRING, "", "the normalised path"),
    FieldDef("http.request.uri.path.extension", STRING, "", "the path's extension, lower-case"),
    FieldDef("http.request.uri.query", STRING, "", "the query, without ?"),
    FieldDef("http.request.uri.args", MAP_ARRAY_STRING, {}, "query arguments"),
    FieldDef("http.request.uri.args.names", ARRAY_STRING, (), "query argument names"),
    FieldDef("http.request.uri.args.values", ARRAY_STRING, (), "query argument values"),
    FieldDef("http.request.full_uri", STRING, "", "https://host/path?query"),
    FieldDef("http.request.version", STRING, "", 'e.g. "HTTP/1.1"'),
    FieldDef("http.request.headers", MAP_ARRAY_STRING, {}, "headers by lower-case name"),
    FieldDef("http.request.headers.names", ARRAY_STRING, (), "header names as sent"),
    FieldDef("http.request.headers.values", ARRAY_STRING, (), "header values"),
    FieldDef("http.request.headers.truncated", BOOL, False, "too many headers to list"),
    FieldDef("http.request.cookies", MAP_ARRAY_STRING, {}, "cookies by name"),
    FieldDef("http.request.timestamp.sec", INT, 0, "request time, Unix seconds"),
    FieldDef("ip.src", IP, None, "the client's address"),
    FieldDef("ip.src.asnum", INT, 0, "the client's autonomous system number"),
    FieldDef("ip.src.country", STRING, "", "ISO 3166-1 alpha-2 country code"),
    FieldDef("ip.src.continent", STRING, "", "continent code: AF AN AS EU NA OC SA"),
    FieldDef("ip.src.is_in_european_union", BOOL, False, "the country is in the EU"),
    FieldDef("cf.edge.server_port", INT, 0, "the port the client connected to"),
    FieldDef("ssl", BOOL, False, "the client connection is encrypted"),
    # hagate's own: a Home Assistant credential carried without a certificate
    FieldDef(
        "hagate.credential.bound",
        BOOL,
        False,
        "it is bound to a valid certificate (it came with it before)",
    ),
    FieldDef("hagate.credential.cert_name", STRING, "", "the certificate it is bound to"),
    FieldDef(
        "hagate.credential.kind",
        STRING,
        "",
        "access_token, refresh_token, webhook or websocket",
    ),
    FieldDef(
        "hagate.webhook.registered",
        BOOL,
        False,
        "a webhook Home Assistant registered, callable from outside, with this method",
    ),
    FieldDef("hagate.webhook.domain", STRING, "", "the integration the webhook belongs to"),
]

FIELDS: dict[str, FieldDef] = {f.name: f for f in _DEFS}

# Deprecated names Cloudflare still accepts; they read the same value.
ALIASES: dict[str, str] = {
    "ip.geoip.asnum": "ip.src.asnum",
    "ip.geoip.country": "ip.src.country",
    "ip.geoip.continent": "ip.src.continent",
    "ip.geoip.is_in_european_union": "ip.src.is_in_european_union",
}


# The GeoIP database (its key under `geoip:` in hagate.yaml) that gives each field its value.
# Without it the field keeps its default (0, "", false): a rule comparing it never matches.
GEOIP_DATABASE: dict[str, str] = {
    "ip.src.asnum": "asn_db",
    "ip.src.country": "country_db",
    "ip.src.continent": "country_db",
    "ip.src.is_in_european_union": "country_db",
}


CREDENTIAL_FIELDS = frozenset(
    {"hagate.credential.bound", "hagate.credential.cert_name", "hagate.credential.kind"}
)


WEBHOOK_FIELDS = frozenset({"hagate.webhook.registered", "hagate.webhook.domain"})


def reads_credentials(names: frozenset[str] | None) -> bool:
    """Whether rules reading these fields need a credential looked up (None: any field)."""
    return names is None or not CREDENTIAL_FIELDS.isdisjoint(names)


def reads_webhooks(names: frozenset[str] | None) -> bool:
    """Whether rules reading these fields need Home Assistant's webhook list."""
    return names is None or not WEBHOOK_FIELDS.isdisjoint(names)


def databases_read(names: frozenset[str] | None) -> set[str]:
    """The GeoIP databases (asn_db, country_db) that these fields need."""
    return {GEOIP_DATABASE[n] for n in names or () if n in GEOIP_DATABASE}


def lookup(name: str) -> FieldDef | None:
    return FIELDS.get(ALIASES.get(name, name))


def nearest(name: str) -> str | None:
    matches = difflib.get_close_matches(name, [*FIELDS, *ALIASES], n=1, cutoff=0.6)
    return matches[0] if matches else None
