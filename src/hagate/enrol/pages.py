"""The enrolment pages: small, readable on a phone, one line of script (the reload after a
download) and nothing the page needs it for (pure HTML builders)."""

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


# What the page calls the device it is on.
DEVICE_WORDS = {
    Device.IOS: "iPhone or iPad",
    Device.MACOS: "Mac",
    Device.ANDROID: "Android device",
    Device.WINDOWS: "Windows PC",
    Device.LINUX: "Linux computer",
    Device.OTHER: "device",
}
PUBLIC_CERT_FIX = (
    "docs/certificates.md, “A public certificate from Let's Encrypt” (<code>tls: acme:</code> "
    "in hagate.yaml)"
)


def _steps(platform: Platform, name: str, hostname: str, with_ca: bool, first: str) -> list[str]:
    """The steps on the device, each an <li>'s content; `first` is the download step."""
    d = platform.device
    if d is Device.IOS:
        trust = (
            [
                "Settings → General → About → <b>Certificate Trust Settings</b>: turn on full "
                f"trust for <i>hagate CA for {hostname}</i>."
            ]
            if with_ca
            else []
        )
        return [
            first,
            "Open Settings → <b>Profile Downloaded</b> → <b>Install</b>; enter your passcode, "
            "then the <b>bundle password</b> shown in the terminal.",
            *trust,
            "Safari now offers the certificate for this site. In the Home Assistant app: "
            "Settings → Companion App → your server → <b>Client certificate</b> → "
            f"{name}.",
        ]
    if d is Device.MACOS:
        trust = (
            [
                "Keychain Access → System → <i>hagate CA for "
                f"{hostname}</i> → Trust → <b>Always Trust</b>."
            ]
            if with_ca
            else []
        )
        return [
            first,
            "System Settings → Privacy &amp; Security → <b>Profiles</b> (or General → "
            "Device Management) → double-click the profile → <b>Install</b>; enter the "
            "<b>bundle password</b> shown in the terminal.",
            *trust,
            "Safari and Chrome offer the certificate when the site asks.",
        ]
    if d is Device.ANDROID:
        app = (
            "Chrome asks which certificate to use on the first visit: choose "
            f"<b>{name}</b>. The Home Assistant app cannot connect yet: Android apps do not "
            "trust a CA installed by hand, and this gateway's certificate is from its own CA. "
            f"Whoever runs the gateway can give it a public certificate: {PUBLIC_CERT_FIX}."
            if with_ca
            else "In the Home Assistant app, the first connection asks which certificate to "
            f"use: choose <b>{name}</b>. Chrome asks the same."
        )
        return [
            first,
            "Settings → Security → Encryption &amp; credentials → <b>Install a "
            "certificate</b> → <b>VPN &amp; app user certificate</b> → pick "
            f"<code>{name}.p12</code>; enter the <b>bundle password</b> shown in the terminal.",
            app,
        ]
    if d is Device.WINDOWS:
        return [
            first + " Open the file.",
            "Store location <b>Current User</b> → Next → enter the <b>bundle password</b> → "
            "<b>Place all certificates in the following store</b>: Personal → Finish.",
            "Edge and Chrome offer the certificate when the site asks.",
        ]
    return [
        first,
        f"Linux (Chromium, Firefox): <code>pk12util -d sql:$HOME/.pki/nssdb -i {name}.p12"
        "</code> and enter the <b>bundle password</b>.",
        "Other systems: import it as a personal certificate (PKCS#12).",
    ]


def _ol(steps: list[str]) -> str:
    return "<ol>" + "".join(f"<li>{s}</li>" for s in steps) + "</ol>"


def enrol_page(
    token: str,
    name: str,
    hostname: str,
    platform: Platform,
    server_sha256: str | None,
    with_ca: bool,
) -> bytes:
    """The page of a live link: the download as the first step. After the download it loads
    again, and then shows that it was downloaded and the next steps."""
    base = f"/.hagate/enrol/{token}"
    if platform.device.apple:
        download = f'<a class=button href="{base}/mobileconfig">Download profile</a>'
    else:
        primary = "legacy.p12" if platform.legacy else "p12"
        # The one script of the page: once the file is on its way, the page loads again and
        # shows the next steps (a meta refresh would be cancelled by the download itself).
        download = (
            f'<a class=button href="{base}/{primary}" onclick="{RELOAD}">Download certificate</a>'
        )
        if platform.device in (Device.WINDOWS, Device.OTHER, Device.LINUX) or not platform.legacy:
            other = "p12" if platform.legacy else "legacy.p12"
            download += (
                f'<p class=small>Older system that refuses it? <a href="{base}/{other}" '
                f'onclick="{RELOAD}">'
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
    word = DEVICE_WORDS[platform.device]
    first = ("Tap" if platform.device in (Device.IOS, Device.ANDROID) else "Click") + (
        f" this button:<br>{download}"
    )
    steps = _steps(platform, html.escape(name), html.escape(hostname), with_ca, first)
    body = (
        f"<h1>Certificate for {html.escape(name)}</h1>"
        f"<p>This puts the certificate <b>{html.escape(name)}</b> on this {word}, so it can "
        f"reach Home Assistant at <b>{html.escape(hostname)}</b>. The link works for one "
        f"download.</p>{fingerprint}{_ol(steps)}"
    )
    return _page(f"{name}: certificate", body)


RELOAD = "setTimeout(function(){location.reload()},2000)"


def downloaded_page(name: str, hostname: str, platform: Platform, with_ca: bool, at: str) -> bytes:
    """The same link once its file was downloaded: what to do next, and what to do if the
    download was not yours."""
    done = f"Downloaded at {html.escape(at)} UTC. ✓"
    steps = _steps(platform, html.escape(name), html.escape(hostname), with_ca, done)
    body = (
        f"<h1>Certificate for {html.escape(name)}: downloaded</h1>"
        f"<p>Now install it on this {DEVICE_WORDS[platform.device]}:</p>{_ol(steps)}"
        "<p class=small>The link is used up. If you did not download it, tell whoever runs "
        f"the gateway: <code>hagate cert revoke {html.escape(name)}</code> stops that "
        "certificate.</p>"
    )
    return _page(f"{name}: downloaded", body)
