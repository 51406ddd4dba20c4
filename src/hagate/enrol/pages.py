"""The enrolment pages: small, no JavaScript, readable on a phone (pure HTML builders)."""

from __future__ import annotations

import html

from hagate.enrol.platform import Device, Platform

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:34em;margin:1.5em auto;padding:0 1em;"
    "line-height:1.45;color:#222}h1{font-size:1.35em}a.button{display:inline-block;"
    "padding:.7em 1.1em;background:#03a9f4;color:#fff;border-radius:6px;text-decoration:none;"
    "font-weight:600;margin:.4em 0}code{word-break:break-all;background:#f3f3f3;padding:0 .2em}"
    "li{margin:.35em 0}.small{font-size:.9em;color:#555}"
)


def _page(title: str, body: str) -> bytes:
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body>{body}</body></html>"
    ).encode()


def not_found() -> bytes:
    return _page(
        "Not found",
        "<h1>Not found</h1><p>This link is not valid: it was used already, it expired, or it "
        "was mistyped. Ask for a new one (<code>hagate cert enrol</code>).</p>",
    )


def too_many() -> bytes:
    return _page("Too many tries", "<h1>Too many tries</h1><p>Wait ten minutes.</p>")


def _steps(platform: Platform, name: str, hostname: str, with_ca: bool) -> str:
    d = platform.device
    if d is Device.IOS:
        trust = (
            "<li>Settings → General → About → <b>Certificate Trust Settings</b>: turn on full "
            f"trust for <i>hagate CA for {hostname}</i>.</li>"
            if with_ca
            else ""
        )
        return (
            "<ol><li>Tap <b>Download profile</b> below, then <b>Allow</b>.</li>"
            "<li>Open Settings → <b>Profile Downloaded</b> → <b>Install</b>; enter your passcode, "
            "then the <b>bundle password</b> shown in the terminal.</li>"
            f"{trust}"
            "<li>Safari now offers the certificate for this site. In the Home Assistant app: "
            "Settings → Companion App → your server → <b>Client certificate</b> → "
            f"{name}.</li></ol>"
        )
    if d is Device.MACOS:
        trust = (
            "<li>Keychain Access → System → <i>hagate CA for "
            f"{hostname}</i> → Trust → <b>Always Trust</b>.</li>"
            if with_ca
            else ""
        )
        return (
            "<ol><li>Click <b>Download profile</b> below.</li>"
            "<li>System Settings → Privacy &amp; Security → <b>Profiles</b> (or General → "
            "Device Management) → double-click the profile → <b>Install</b>; enter the "
            "<b>bundle password</b> shown in the terminal.</li>"
            f"{trust}<li>Safari and Chrome offer the certificate when the site asks.</li></ol>"
        )
    if d is Device.ANDROID:
        return (
            "<ol><li>Tap <b>Download certificate</b> below.</li>"
            "<li>Settings → Security → Encryption &amp; credentials → <b>Install a "
            "certificate</b> → <b>VPN &amp; app user certificate</b> → pick "
            f"<code>{name}.p12</code>; enter the <b>bundle password</b> shown in the terminal.</li>"
            "<li>In the Home Assistant app, the first connection asks which certificate to use: "
            f"choose <b>{name}</b>. Chrome asks the same.</li></ol>"
        )
    if d is Device.WINDOWS:
        return (
            "<ol><li>Click <b>Download certificate</b> below and open the file.</li>"
            "<li>Store location <b>Current User</b> → Next → enter the <b>bundle password</b> → "
            "<b>Place all certificates in the following store</b>: Personal → Finish.</li>"
            "<li>Edge and Chrome offer the certificate when the site asks.</li></ol>"
        )
    return (
        "<ol><li>Download the certificate below.</li>"
        f"<li>Linux (Chromium, Firefox): <code>pk12util -d sql:$HOME/.pki/nssdb -i {name}.p12"
        "</code> and enter the <b>bundle password</b>.</li>"
        "<li>Other systems: import it as a personal certificate (PKCS#12).</li></ol>"
    )


def enrol_page(
    token: str,
    name: str,
    hostname: str,
    platform: Platform,
    server_sha256: str | None,
    with_ca: bool,
) -> bytes:
    base = f"/.hagate/enrol/{token}"
    if platform.device.apple:
        download = f'<a class=button href="{base}/mobileconfig">Download profile</a>'
    else:
        primary = "legacy.p12" if platform.legacy else "p12"
        download = f'<a class=button href="{base}/{primary}">Download certificate</a>'
        if platform.device in (Device.WINDOWS, Device.OTHER, Device.LINUX) or not platform.legacy:
            other = "p12" if platform.legacy else "legacy.p12"
            download += (
                f'<p class=small>Older system that refuses it? <a href="{base}/{other}">'
                f"The {'modern' if platform.legacy else 'compatible (3DES)'} file</a>.</p>"
            )
    fingerprint = ""
    if server_sha256:
        pairs = ":".join(server_sha256[i : i + 2] for i in range(0, len(server_sha256), 2))
        fingerprint = (
            "<p class=small>Your browser warned about this site's certificate because it is "
            "signed by your own hagate CA. Go on only if this SHA-256 is the one the terminal "
            f"showed:<br><code>{html.escape(pairs.upper())}</code></p>"
        )
    body = (
        f"<h1>Certificate for {html.escape(name)}</h1>"
        f"<p>This puts the certificate <b>{html.escape(name)}</b> on this "
        f"{html.escape(platform.device.value)} device, so it can reach Home Assistant at "
        f"<b>{html.escape(hostname)}</b>. The link works for one download.</p>"
        f"{fingerprint}{download}"
        f"{_steps(platform, html.escape(name), html.escape(hostname), with_ca)}"
    )
    return _page(f"{name}: certificate", body)
