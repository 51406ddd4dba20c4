"""The page a browser gets at the relay's own name: which homes are connected and which are
not. A browser that visits a home's name while it is down cannot be answered (the relay holds
no key for that name), so this is where a person can look.

Pure: the decision (is this a browser?) and the bytes of the answer.
"""

from __future__ import annotations

import html
import time

HTTP_ALPN = ("http/1.1", "h2")  # a browser or curl; a connector offers no ALPN


def offers_http(alpn: tuple[str, ...]) -> bool:
    return any(p in alpn for p in HTTP_ALPN)


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(t))


def relay_page(
    relay_name: str,
    up: dict[str, int],
    down_since: dict[str, float],
    head_only: bool = False,
) -> bytes:
    """A complete HTTP/1.1 response (it closes). `up`: hostname -> connectors; `down_since`:
    hostname -> when its last connector went (homes seen since the relay started)."""
    rows = [
        f"<li><b>{html.escape(h)}</b>: connected ({n} connector{'s' if n != 1 else ''})</li>"
        for h, n in sorted(up.items())
    ]
    rows += [
        f"<li><b>{html.escape(h)}</b>: <b>not connected</b> since {_when(t)}: its home "
        "cannot be reached now (is the home's <code>hagate connect</code> running?)</li>"
        for h, t in sorted(down_since.items())
        if h not in up
    ]
    listed = f"<ul>{''.join(rows)}</ul>" if rows else "<p>No home has connected yet.</p>"
    body = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>hagate relay {html.escape(relay_name)}</title></head><body>"
        f"<h1>hagate relay {html.escape(relay_name)}</h1>"
        "<p>This is the relay itself, not a home: it passes each home's encrypted traffic "
        "through unread. The homes it has seen since it started:</p>"
        f"{listed}</body></html>\n"
    ).encode()
    head = (
        "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nCache-Control: no-store\r\n"
        "X-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n"
    ).encode()
    return head if head_only else head + body
