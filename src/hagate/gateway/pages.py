"""The gateway's own responses: small, clear pages that say why, in user terms."""

from __future__ import annotations

import html

REASONS = {
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Content Too Large",
    417: "Expectation Failed",
    421: "Misdirected Request",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
    505: "HTTP Version Not Supported",
}

_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{status} {title}</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:36em;margin:4em auto;padding:0 1em}}
h1{{font-size:1.4em}} .id{{color:#777;font-size:.85em}}</style></head>
<body><h1>{title}</h1><p>{message}</p>{hint}
<p class="id">hagate · request {request_id}</p></body></html>
"""


def response(
    status: int,
    content_type: str,
    body: bytes,
    request_id: str,
    keep_alive: bool,
    kind: str,
    headers: tuple[tuple[str, str], ...] = (),
    body_allowed: bool = True,
) -> bytes:
    """A complete HTTP/1.1 response of the gateway's own (its enrolment pages and files)."""
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers)
    head = (
        f"HTTP/1.1 {status} {reason_phrase(status)}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
        "Cache-Control: no-store\r\nReferrer-Policy: no-referrer\r\n"
        "X-Content-Type-Options: nosniff\r\n"
        f"{extra}X-Request-Id: {request_id}\r\nX-Hagate-Page: {kind}\r\n"
        f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n"
    ).encode()
    return head + (body if body_allowed else b"")


def reason_phrase(status: int) -> str:
    return REASONS.get(status, "Error")


def page(
    status: int,
    title: str,
    message: str,
    request_id: str,
    as_html: bool,
    keep_alive: bool,
    hint: str = "",
    body_allowed: bool = True,
    kind: str = "refused",
) -> bytes:
    """A complete HTTP/1.1 response. Its `X-Hagate-Page` header (`blocked`, `refused`,
    `wrong-host`, `upstream`) tells a program, such as the Alexa handler, that the gateway
    answered and why, not Home Assistant."""
    if as_html:
        body = _HTML.format(
            status=status,
            title=html.escape(title),
            message=html.escape(message),
            hint=f"<p>{html.escape(hint)}</p>" if hint else "",
            request_id=html.escape(request_id),
        ).encode()
        ctype = "text/html; charset=utf-8"
    else:
        text = f"{title}\n{message}\n" + (f"{hint}\n" if hint else "") + f"request {request_id}\n"
        body = text.encode()
        ctype = "text/plain; charset=utf-8"
    head = (
        f"HTTP/1.1 {status} {reason_phrase(status)}\r\n"
        f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
        f"Cache-Control: no-store\r\nX-Request-Id: {request_id}\r\nX-Hagate-Page: {kind}\r\n"
        f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n"
    ).encode()
    return head + (body if body_allowed else b"")


# -- the wording of each of the gateway's answers ---------------------------------------------


def refused(status: int, reason: str, request_id: str, as_html: bool) -> bytes:
    """A request refused before the rules (malformed, too large, too slow): closes."""
    return page(status, reason_phrase(status), reason, request_id, as_html, keep_alive=False)


CERT_TITLES = {  # the block page's title, by the presented certificate's standing
    "none": "A client certificate is required",
    "revoked": "This certificate has been revoked",
    "expired": "This certificate has expired",
    "not-yet-valid": "This certificate is not valid yet",
    "unknown": "This certificate is not recognised",
}


def blocked(
    status: int,
    rule_name: str,
    custom: str | None,
    cert_problem: str | None,
    cert_standing: str,
    request_id: str,
    as_html: bool,
    keep_alive: bool,
    body_allowed: bool,
) -> bytes:
    """A rule blocked the request. `cert_problem` when the rule reads the client certificate
    and the certificate is missing or not good; `custom` is the rule's own response text."""
    if status == 429:
        title, message, hint = "Too many requests", "Slow down and try again in a while.", ""
    elif cert_problem:
        title = CERT_TITLES.get(cert_standing, "This certificate is not accepted")
        message = (
            f"This Home Assistant only lets in devices holding a valid client "
            f"certificate, and {cert_problem}."
        )
        hint = (
            "Install your certificate on this device and reload."
            if cert_standing == "none"
            else "Ask whoever runs it for a new certificate, install it, and reload."
        )
    else:
        title, message, hint = "Blocked", f'This request was blocked by the rule "{rule_name}".', ""
    if custom:
        message, hint = custom, ""
    return page(
        status, title, message, request_id, as_html, keep_alive, hint, body_allowed, "blocked"
    )


def upstream_failed(status: int, request_id: str, as_html: bool) -> bytes:
    """Home Assistant could not be reached (502) or did not answer in time (504): closes."""
    title = (
        "Home Assistant is not answering" if status == 504 else "Home Assistant cannot be reached"
    )
    return page(
        status,
        title,
        "The gateway could not get an answer from Home Assistant. Try again in a moment.",
        request_id,
        as_html,
        keep_alive=False,
        kind="upstream",
    )


# What Home Assistant answers a proxied request when it does not trust the proxy (http:
# use_x_forwarded_for and trusted_proxies): aiohttp's bare HTTPBadRequest.
HA_UNTRUSTED_PROXY = b"400: Bad Request"


def untrusted_proxy(
    gateway_ip: str, request_id: str, as_html: bool, keep_alive: bool, body_allowed: bool
) -> bytes:
    """Home Assistant answered its bare 400, which it gives a request forwarded by a proxy
    it does not trust: say what to change."""
    return page(
        400,
        "Home Assistant does not trust the gateway as a proxy",
        "Home Assistant answered 400 Bad Request, which it does to every request forwarded by "
        f"a proxy it does not trust (it sees the gateway at {gateway_ip}).",
        request_id,
        as_html,
        keep_alive,
        "In Home Assistant's configuration.yaml, under http:, set use_x_forwarded_for: true "
        f"and trusted_proxies: [{gateway_ip}], then restart Home Assistant.",
        body_allowed,
        kind="upstream-untrusted",
    )


def wrong_host(
    expected: str, got: str, request_id: str, as_html: bool, body_allowed: bool
) -> bytes:
    """421: the Host (or the TLS name) is not the one this gateway serves: closes."""
    return page(
        421,
        "Wrong address",
        f"This connection was made for {expected}, not {got}.",
        request_id,
        as_html,
        keep_alive=False,
        body_allowed=body_allowed,
        kind="wrong-host",
    )
