"""Named, narrow rules for the Home Assistant integrations that get in without a certificate.

Rules:
  1. A preset names the method, the exact paths and the networks it opens; none opens every
     path of a whole cloud (AS16509, AS15169).
  2. A preset that trusts the owner's own networks (the companion apps) takes those networks
     from the caller: it has no default ASN.
  3. Each is a `skip` rule, to go above the certificate rule.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hagate.errors import HagateError

AMAZON_ASNS = (16509, 14618)
GOOGLE_ASNS = (15169,)
APPLE_OSES = ("iOS", "iPadOS", "macOS", "watchOS", "visionOS")


@dataclass(frozen=True)
class Preset:
    name: str
    summary: str
    description: str  # the rule's description in hagate.yaml
    needs_asns: bool
    default_asns: tuple[int, ...] = ()
    takes_domains: bool = False  # limited to named Home Assistant integrations on request

    def expression(self, asns: tuple[int, ...] = (), domains: tuple[str, ...] = ()) -> str:
        if domains and not self.takes_domains:
            raise HagateError(f"the {self.name} preset takes no --domain")
        if domains:
            bad = [d for d in domains if not _DOMAIN.fullmatch(d)]
            if bad:
                raise HagateError(
                    f"{bad[0]!r} is not an integration's domain (lower-case letters, digits"
                    " and _, as in telegram_bot)"
                )
            names = " ".join(f'"{d}"' for d in sorted(set(domains)))
            return EXPRESSIONS[self.name + "/domains"].format(domains=names)
        if self.needs_asns and not asns:
            raise HagateError(
                f"the {self.name} preset needs the networks your devices use: --asn N (repeat"
                " it), e.g. your home and mobile providers' ASNs (`hagate events top --by asn`)"
            )
        if asns and "{asns}" not in EXPRESSIONS[self.name]:
            raise HagateError(f"the {self.name} preset names no networks: it takes no --asn")
        # The caller's networks sorted and once each; the preset's own in their stated order.
        nets = " ".join(str(a) for a in (sorted(set(asns)) if asns else self.default_asns))
        return EXPRESSIONS[self.name].format(asns=nets)

    def rule(self, asns: tuple[int, ...] = (), domains: tuple[str, ...] = ()) -> dict[str, str]:
        return {
            "description": self.description,
            "expression": self.expression(asns, domains),
            "action": "skip",
        }


_DOMAIN = re.compile(r"[a-z0-9_]{1,64}")
_APPLE = " or ".join(f'http.user_agent contains "; {os} "' for os in APPLE_OSES)
EXPRESSIONS = {
    "ios-companion": (
        '(http.user_agent contains "(io.robbie.HomeAssistant; build:" and (' + _APPLE + ")"
        " and ip.src.asnum in {{{asns}}})"
    ),
    "android-companion": (
        '(http.user_agent contains "Home Assistant/" and http.user_agent contains "(Android "'
        " and ip.src.asnum in {{{asns}}})"
    ),
    "alexa-account-linking": (
        '(http.request.method eq "POST" and http.request.uri.path eq "/auth/token"'
        " and ip.src.asnum in {{{asns}}})"
    ),
    "bound-apps": (
        "(hagate.credential.bound and ("
        '(hagate.credential.kind eq "access_token" and starts_with(http.request.uri.path, "/api/"))'
        ' or (hagate.credential.kind eq "websocket" and http.request.uri.path eq "/api/websocket")'
        ' or (hagate.credential.kind eq "webhook"'
        ' and starts_with(http.request.uri.path, "/api/webhook/"))'
        ' or (hagate.credential.kind eq "refresh_token" and http.request.method eq "POST"'
        ' and http.request.uri.path eq "/auth/token")))'
    ),
    # The companion apps' own webhooks are left to bound-apps (bound to their certificate).
    "ha-webhooks": '(hagate.webhook.registered and hagate.webhook.domain ne "mobile_app")',
    "ha-webhooks/domains": "(hagate.webhook.registered and hagate.webhook.domain in {{{domains}}})",
    "google-assistant": (
        '(http.request.method eq "POST" and http.request.uri.path in'
        ' {{"/api/google_assistant" "/auth/token"}} and ip.src.asnum in {{{asns}}})'
    ),
}

PRESETS = {
    p.name: p
    for p in (
        Preset(
            "ios-companion",
            "the companion app on iPhone, iPad, Mac, Watch and Vision, from your own networks",
            "iOS companion app from your networks (preset ios-companion)",
            needs_asns=True,
        ),
        Preset(
            "android-companion",
            "the Android companion app from your own networks (when it cannot present its"
            " certificate)",
            "Android companion app from your networks (preset android-companion)",
            needs_asns=True,
        ),
        Preset(
            "bound-apps",
            "the companion apps' calls without a certificate (watch, widgets, background) that"
            " carry Home Assistant credentials a certificate earned, on the apps' paths only",
            "Companion apps: credentials bound to a certificate (preset bound-apps)",
            needs_asns=False,
        ),
        Preset(
            "ha-webhooks",
            "the webhooks Home Assistant registered for calls from outside (Telegram, Netatmo,"
            " OwnTracks, webhook triggers...), from anywhere; --domain limits it to integrations",
            "Webhooks Home Assistant registered for outside calls (preset ha-webhooks)",
            needs_asns=False,
            takes_domains=True,
        ),
        Preset(
            "alexa-account-linking",
            "Amazon's servers at POST /auth/token (Alexa with HA account linking), nothing else",
            "Alexa account linking: Amazon refreshes tokens (preset alexa-account-linking)",
            needs_asns=False,
            default_asns=AMAZON_ASNS,
        ),
        Preset(
            "google-assistant",
            "Google's servers at POST /api/google_assistant and POST /auth/token, nothing else",
            "Google Assistant: Google's servers (preset google-assistant)",
            needs_asns=False,
            default_asns=GOOGLE_ASNS,
        ),
    )
}


def rule_yaml(rule: dict[str, str]) -> str:
    """A rule as an item of `rules:` in hagate.yaml. Single-quoted YAML scalars hold any
    one-line text (a description with ": ", an expression's double quotes) as it is; only a
    single quote is doubled."""

    def quoted(text: str) -> str:
        return "'" + text.replace("'", "''") + "'"

    return (
        f"  - description: {quoted(rule['description'])}\n"
        f"    expression: {quoted(rule['expression'])}\n"
        f"    action: {rule['action']}\n"
    )


def preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise HagateError(f"no preset {name!r}; the presets are {', '.join(PRESETS)}") from None
