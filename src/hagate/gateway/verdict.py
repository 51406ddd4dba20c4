"""The gateway's verdict on one parsed request, from facts alone: no sockets, no I/O.

Rules:
  1. The checks run in one fixed order, and the first that says no decides: the name (the
     Host and, when sent, the TLS name must both be the one the gateway serves), the
     gateway's own paths (`/.hagate/...`, before the rules: the enrolment link works without a
     certificate, and nothing there is ever Home Assistant's), the declared body size, then
     the rule set.
  2. The verdict depends only on its arguments (the time the rules see among them), so a test
     can pin each outcome down without a connection.
"""

from __future__ import annotations

import enum
import ipaddress
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hagate.enrol.answer import is_gateway_path
from hagate.gateway.identity import CertState
from hagate.geoip import Location
from hagate.http1.heads import RequestHead
from hagate.rules.request import request_fields
from hagate.rules.ruleset import Decision, RuleSet


class Outcome(enum.Enum):
    FORWARD = "forward"  # to Home Assistant; `decision` says whether a skip rule let it in
    WRONG_HOST = "wrong_host"  # 421
    GATEWAY_PATH = "gateway_path"  # /.hagate/...: answered by the gateway, never forwarded
    TOO_LARGE = "too_large"  # 413, before any byte of the body is read
    BLOCK = "block"  # a rule blocked it; `decision` has the rule and status


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    decision: Decision | None = None
    reason: str = ""


def judge(
    head: RequestHead,
    sni: str | None,
    hostname: str,
    max_body_bytes: int,
    ruleset: RuleSet,
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address,
    port: int,
    location: Location,
    cert: CertState,
    now: int | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Verdict:
    """What the gateway does with `head`, which parse_request_head has already vetted."""
    if head.host_name != hostname or (sni is not None and sni.lower().rstrip(".") != hostname):
        return Verdict(
            Outcome.WRONG_HOST,
            reason=f"Host {head.host!r} does not match the TLS name {hostname!r}",
        )
    if is_gateway_path(head.target.path):
        return Verdict(Outcome.GATEWAY_PATH, reason="the gateway's own path")
    if max_body_bytes and (head.content_length or 0) > max_body_bytes:
        return Verdict(Outcome.TOO_LARGE, reason="the request body is too large")
    decision = decide(ruleset, head, ip, port, location, cert, now, extra)
    return Verdict(Outcome.BLOCK if decision.blocked else Outcome.FORWARD, decision)


def decide(
    ruleset: RuleSet,
    head: RequestHead,
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address,
    port: int,
    location: Location,
    cert: CertState,
    now: int | None = None,
    extra: Mapping[str, Any] | None = None,
    count: bool = True,
) -> Decision:
    """The rule set's verdict on one request (only the fields its rules read are made);
    `extra`: hagate's own fields (a credential carried without a certificate); without
    `count`, a question asked of the rules that rate limits do not count."""
    if ruleset.reads_certificate_only:  # the certificate's fields are all the rules see
        return ruleset.evaluate(cert.fields) if count else ruleset.explain(cert.fields)[1]
    values = request_fields(
        client_ip=ip,
        method=head.method,
        host=head.host,
        target=head.target.uri,
        headers=head.headers,
        version=head.version,
        port=port,
        asn=location.asn,
        country=location.country,
        continent=location.continent,
        tls={**cert.fields, **extra} if extra else cert.fields,
        timestamp=int(time.time()) if now is None else now,
        only=ruleset.fields_used,
    )
    return ruleset.evaluate(values) if count else ruleset.explain(values)[1]
