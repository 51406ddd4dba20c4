"""`hagate.yaml`: loading, validation with file:line errors, and the commented template.

Every value read from YAML keeps the line it came from (`ConfigSource.line`), so a mistake
anywhere, including inside a rule, is reported as `hagate.yaml:LINE: key: what is wrong`.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from hagate.errors import HagateError
from hagate.front.accept import Network, parse_networks

Path_ = tuple[str | int, ...]

DEFAULT_LISTEN = "0.0.0.0:8443"
DEFAULT_RETENTION_DAYS = 30
DEFAULT_RULE: dict[str, Any] = {
    "description": "Require a client certificate",
    "expression": "(not cf.tls_client_auth.cert_verified)",
    "action": "block",
}

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


class ConfigError(HagateError):
    """A mistake in the config file, located by file and line."""


@dataclass
class ConfigSource:
    """Where a config came from, and the line of every key in it."""

    name: str
    lines: dict[Path_, int] = field(default_factory=dict)

    def line(self, path: Path_) -> int | None:
        # Fall back to the nearest enclosing key that has a line.
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get(())

    def error(self, path: Path_, message: str) -> ConfigError:
        line = self.line(path)
        where = f"{self.name}:{line}" if line else self.name
        key = format_path(path)
        return ConfigError(f"{where}: {key + ': ' if key else ''}{message}")


def format_path(path: Path_) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


@dataclass(frozen=True)
class GatewaySettings:
    """Timeouts (seconds) and limits of the gateway; every one has a safe default."""

    header_timeout: float = 10.0  # a request head must arrive within this (slowloris)
    idle_timeout: float = 75.0  # keep-alive connections idle longer are closed
    connect_timeout: float = 5.0  # connecting to Home Assistant
    # Home Assistant's response head (and first body piece) by then, once the body is sent
    response_timeout: float = 60.0
    body_timeout: float = 60.0  # the longest wait between two reads of a request body (nginx's)
    drain_timeout: float = 10.0  # SIGTERM: in-flight requests get this long to finish
    max_header_bytes: int = 16384
    max_headers: int = 100
    max_body_bytes: int = 0  # 0: no limit (bodies are streamed, never held in memory)
    max_connections: int = 1000  # open client connections in total (per worker); 0: no limit
    max_connections_per_ip: int = 100  # open client connections from one address; 0: no limit
    # `proxy_protocol.trusted`: the fronts (TCP proxies passing TLS through) whose PROXY
    # protocol header names the client; a connection from one must send it, no other may.
    proxy_trusted: tuple[Network, ...] = ()


LETSENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"
LETSENCRYPT_STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory"
ACME_KEYS = ("directory", "email", "ca_bundle", "staging")


@dataclass(frozen=True)
class AcmeSettings:
    """`tls.acme`: where the server certificate comes from when it is not hagate's CA's."""

    directory: str = LETSENCRYPT
    email: str | None = None
    ca_bundle: str | None = None  # trust for the ACME server's own HTTPS (a private CA)
    staging: bool = False


DEFAULT_ADMIN_LISTEN = "127.0.0.1:9464"


@dataclass(frozen=True)
class AuditSettings:
    """`audit`: findings silenced on purpose, and where Home Assistant's own config is."""

    ignore: tuple[str, ...] = ()
    home_assistant_config: str | None = None  # HA's configuration.yaml, when readable here


SUPERVISOR_INGRESS = "172.30.32.2"  # the Supervisor's ingress proxy, on the hassio network


@dataclass(frozen=True)
class IngressSettings:
    """`admin.ingress`: the console for Home Assistant's ingress (the app's sidebar panel):
    a listener that answers only the Supervisor's proxy."""

    listen: str
    trusted: tuple[str, ...] = (SUPERVISOR_INGRESS,)


@dataclass(frozen=True)
class AdminSettings:
    """`admin`: the metrics and console listener (off unless configured)."""

    listen: str = DEFAULT_ADMIN_LISTEN
    ingress: IngressSettings | None = None


@dataclass(frozen=True)
class HomeAssistantSettings:
    """`home_assistant`: how hagate reaches Home Assistant's own API (alerts, the audit, the
    list of webhooks it registered)."""

    url: str  # its API base as this host reaches it (the upstream unless given)
    token_file: str  # a long-lived access token, read at start and on reload


def read_token(path: str, user: str) -> str:
    """The long-lived access token in `path`, for `user` (who says what it is for)."""
    try:
        token = open(path, encoding="utf-8").read().strip()  # noqa: SIM115
    except OSError as e:
        raise HagateError(f"{user}: cannot read the token file {path}: {e.strerror}") from None
    if not token or any(c.isspace() for c in token):
        raise HagateError(
            f"{user}: the token file {path} must hold one long-lived access token "
            "(Home Assistant: your profile, Security, Long-lived access tokens)"
        )
    return token


ALERT_KEYS = (
    "home_assistant",
    "repeat_after",
    "queue",
    "blocked_burst",
    "cut_off_after",
    "checks_every",
)


@dataclass(frozen=True)
class AlertSettings:
    """`alerts`: events fired on Home Assistant's event bus for what needs a person."""

    url: str  # Home Assistant, as this host reaches it (the upstream unless given)
    token_file: str  # a long-lived access token, read at start and on reload
    repeat_after: float = 3600.0  # one alert per kind and subject in this many seconds
    queue: int = 100  # alerts held while Home Assistant is unreachable (oldest dropped)
    burst_requests: int = 20  # blocked requests from one source within burst_seconds ...
    burst_seconds: float = 60.0  # ... make a burst
    cut_off_after: float = 300.0  # every relay lost for this long is an alert
    checks_every: float = 3600.0  # certificates near expiry and the audit, checked this often


GATEWAY_KEYS = {  # the numbers under `gateway:`; `proxy_protocol` is a mapping of its own
    f: type(getattr(GatewaySettings(), f))
    for f in GatewaySettings.__dataclass_fields__
    if f != "proxy_trusted"
}
GATEWAY_SECTIONS = ("proxy_protocol",)


@dataclass
class Config:
    hostname: str
    upstream: str
    listen: str = DEFAULT_LISTEN
    asn_db: str | None = None
    country_db: str | None = None
    retention_days: int = DEFAULT_RETENTION_DAYS
    rules: list[dict[str, Any]] = field(default_factory=lambda: [dict(DEFAULT_RULE)])
    rate_limits: list[dict[str, Any]] = field(default_factory=list)
    lists: dict[str, list[Any]] = field(default_factory=dict)
    gateway: GatewaySettings = field(default_factory=GatewaySettings)
    acme: AcmeSettings | None = None
    audit: AuditSettings = field(default_factory=AuditSettings)
    admin: AdminSettings | None = None
    alerts: AlertSettings | None = None
    home_assistant: HomeAssistantSettings | None = None
    source: ConfigSource = field(default_factory=lambda: ConfigSource("<defaults>"))

    @property
    def geoip_databases(self) -> set[str]:
        """The GeoIP databases configured: asn_db, country_db."""
        return {k for k, v in (("asn_db", self.asn_db), ("country_db", self.country_db)) if v}


# What a running gateway cannot take on at SIGHUP: the name it serves and is registered
# under, the socket it listens on, the event store's retention (its writer process holds it)
# and the admin listener. Everything else is applied by the reload.
RESTART_TO_APPLY = {  # Config's field: its name in hagate.yaml
    "hostname": "hostname",
    "listen": "listen",
    "retention_days": "events.retention_days",
    "admin": "admin",
}


def needs_restart(before: Config, after: Config, *, listening: bool = True) -> list[str]:
    """The settings changed between two configs that a reload cannot apply (`listen` only
    matters to a gateway on its own listener)."""
    return [
        key
        for name, key in RESTART_TO_APPLY.items()
        if (listening or name != "listen") and getattr(before, name) != getattr(after, name)
    ]


# -- validators shared with `hagate init` -------------------------------------------------


def validate_hostname(value: str) -> str:
    """A DNS name as clients will send it in SNI: lower-case labels, no IP addresses."""
    host = value.strip().rstrip(".").lower()
    if not host or len(host) > 253:
        raise HagateError(f"bad hostname {value!r}: expected a DNS name like ha.example.com")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        raise HagateError(
            f"bad hostname {value!r}: clients send a DNS name in TLS, not an IP address"
        )
    if not all(_LABEL.match(label) for label in host.split(".")):
        raise HagateError(f"bad hostname {value!r}: expected a DNS name like ha.example.com")
    return host


def validate_upstream(value: str) -> str:
    """Home Assistant's URL as the gateway reaches it, e.g. http://127.0.0.1:8123."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError as e:
        raise HagateError(f"bad upstream URL {value!r}: {e}") from e
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise HagateError(
            f"bad upstream URL {value!r}: expected http://HOST:PORT, e.g. http://127.0.0.1:8123"
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise HagateError(f"bad upstream URL {value!r}: give only scheme, host and port")
    if port == 0:
        raise HagateError(f"bad upstream URL {value!r}: port 0")
    return f"{parts.scheme}://{parts.netloc}"


def validate_api_url(value: str) -> str:
    """Home Assistant's API base for alerts: an upstream URL, or one with a path prefix such
    as the Supervisor's proxy (http://supervisor/core, whose /api/... is Home Assistant's)."""
    try:
        parts = urlsplit(value.strip())
    except ValueError as e:
        raise HagateError(f"bad URL {value!r}: {e}") from e
    prefix = parts.path.rstrip("/")
    if prefix and not re.fullmatch(r"(/[A-Za-z0-9._~-]+)+", prefix):
        raise HagateError(f"bad URL {value!r}: a path prefix of plain segments, like /core")
    base = validate_upstream(parts._replace(path="").geturl())
    return base + prefix


def validate_email(value: str) -> str:
    email = value.strip()
    if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email):
        raise HagateError(f"bad email address {value!r}: expected name@example.com")
    return email


def validate_directory(value: str) -> str:
    """An ACME directory URL: https, with a host."""
    try:
        parts = urlsplit(value.strip())
    except ValueError as e:
        raise HagateError(f"bad ACME directory URL {value!r}: {e}") from e
    if parts.scheme != "https" or not parts.hostname:
        raise HagateError(
            f"bad ACME directory URL {value!r}: expected https://..., e.g. {LETSENCRYPT}"
        )
    return value.strip()


def acme_settings(
    directory: str | None, email: str | None, ca_bundle: str | None, staging: bool
) -> AcmeSettings:
    """Checked ACME settings; `staging` picks Let's Encrypt's staging directory unless a
    directory is given."""
    if directory is None:
        directory = LETSENCRYPT_STAGING if staging else LETSENCRYPT
    return AcmeSettings(
        directory=validate_directory(directory),
        email=validate_email(email) if email else None,
        ca_bundle=ca_bundle or None,
        staging=staging,
    )


def parse_listen(value: str) -> tuple[str, int]:
    """`HOST:PORT` or `[IPv6]:PORT` into (host, port)."""
    text = value.strip()
    m = re.fullmatch(r"\[([0-9a-fA-F:.]+)\]:(\d{1,5})|([^:\[\]]*):(\d{1,5})", text)
    if not m:
        raise HagateError(f"bad listen address {value!r}: expected HOST:PORT, e.g. 0.0.0.0:8443")
    host = m.group(1) or m.group(3) or "0.0.0.0"
    port = int(m.group(2) or m.group(4))
    if not 0 < port < 65536:
        raise HagateError(f"bad listen address {value!r}: port must be 1-65535")
    return host, port


# -- loading ------------------------------------------------------------------------------


def _to_python(node: yaml.Node, path: Path_, src: ConfigSource) -> Any:
    src.lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            if not isinstance(key_node, yaml.ScalarNode) or not isinstance(key, str):
                raise src.error(path, "keys must be plain names")
            if key in out:
                src.lines[(*path, key)] = key_node.start_mark.line + 1
                raise src.error((*path, key), "duplicate key")
            out[key] = _to_python(value_node, (*path, key), src)
            src.lines[(*path, key)] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(item, (*path, i), src) for i, item in enumerate(node.value)]
    # Scalars: PyYAML's safe constructor resolves the tag (int, bool, null, str, ...).
    return yaml.constructor.SafeConstructor().construct_object(node)


def parse_yaml(text: str, name: str) -> tuple[Any, ConfigSource]:
    """YAML text into plain Python values plus the line of every key."""
    src = ConfigSource(name)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = f":{mark.line + 1}" if mark else ""
        raise ConfigError(f"{name}{line}: invalid YAML: {e.problem or e.context}") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"{name}: invalid YAML: {e}") from e
    if node is None:
        return None, src
    return _to_python(node, (), src), src


_TOP_KEYS = {
    "hostname",
    "upstream",
    "listen",
    "geoip",
    "events",
    "tls",
    "rules",
    "rate_limits",
    "lists",
    "gateway",
    "audit",
    "admin",
    "alerts",
    "home_assistant",
}


def _typed(src: ConfigSource, path: Path_, value: Any, kind: type, what: str) -> Any:
    if kind is int and isinstance(value, bool):
        raise src.error(path, f"expected {what}, got {_describe(value)}")
    if not isinstance(value, kind):
        raise src.error(path, f"expected {what}, got {_describe(value)}")
    return value


def _describe(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int):
        return f"number {value}"
    if isinstance(value, str):
        return f"text {value!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _checked(src: ConfigSource, path: Path_, fn: Any, value: Any) -> Any:
    try:
        return fn(value)
    except HagateError as e:
        raise src.error(path, str(e)) from None


def _optional_str(src: ConfigSource, path: Path_, value: Any) -> str | None:
    if value is None or value == "":
        return None
    return str(_typed(src, path, value, str, "a file path"))


def parse_config(text: str, name: str) -> Config:
    """Validate config text; every error names the key and the line."""
    data, src = parse_yaml(text, name)
    if data is None:
        raise ConfigError(f"{name}: the file is empty")
    if not isinstance(data, dict):
        raise src.error((), "expected a mapping of settings at the top level")
    for key in data:
        if key not in _TOP_KEYS:
            raise src.error((key,), f"unknown key (known: {', '.join(sorted(_TOP_KEYS))})")
    for key in ("hostname", "upstream"):
        if key not in data:
            raise src.error((), f"missing required key {key!r}")

    hostname = _checked(
        src,
        ("hostname",),
        validate_hostname,
        _typed(src, ("hostname",), data["hostname"], str, "a hostname"),
    )
    upstream = _checked(
        src,
        ("upstream",),
        validate_upstream,
        _typed(src, ("upstream",), data["upstream"], str, "a URL"),
    )
    listen = data.get("listen", DEFAULT_LISTEN)
    _typed(src, ("listen",), listen, str, "HOST:PORT")
    _checked(src, ("listen",), parse_listen, listen)

    geoip = data.get("geoip") or {}
    _typed(src, ("geoip",), geoip, dict, "a mapping with asn_db and country_db")
    for key in geoip:
        if key not in ("asn_db", "country_db"):
            raise src.error(("geoip", key), "unknown key (known: asn_db, country_db)")
    asn_db = _optional_str(src, ("geoip", "asn_db"), geoip.get("asn_db"))
    country_db = _optional_str(src, ("geoip", "country_db"), geoip.get("country_db"))

    events = data.get("events") or {}
    _typed(src, ("events",), events, dict, "a mapping with retention_days")
    for key in events:
        if key != "retention_days":
            raise src.error(("events", key), "unknown key (known: retention_days)")
    retention = events.get("retention_days", DEFAULT_RETENTION_DAYS)
    _typed(src, ("events", "retention_days"), retention, int, "a number of days")
    if retention < 1:
        raise src.error(("events", "retention_days"), "must be at least 1")

    rules = data.get("rules", [])
    if rules is None:
        rules = []
    _typed(src, ("rules",), rules, list, "a list of rules")
    for i, rule in enumerate(rules):
        _typed(src, ("rules", i), rule, dict, "a rule (description, expression, action)")

    rate_limits = data.get("rate_limits") or []
    _typed(src, ("rate_limits",), rate_limits, list, "a list of rate limiting rules")
    for i, rule in enumerate(rate_limits):
        _typed(src, ("rate_limits", i), rule, dict, "a rate limiting rule")

    lists = data.get("lists") or {}
    _typed(src, ("lists",), lists, dict, "a mapping of list names to items")
    for list_name, items in lists.items():
        if not re.fullmatch(r"[a-z0-9_]{1,50}", list_name):
            raise src.error(
                ("lists", list_name),
                "list names use lower-case letters, digits and _ only (as in Cloudflare)",
            )
        _typed(src, ("lists", list_name), items, list, "a list of items")

    gateway_raw = data.get("gateway") or {}
    _typed(src, ("gateway",), gateway_raw, dict, "a mapping of gateway settings")
    settings: dict[str, Any] = {}
    for key, value in gateway_raw.items():
        if key == "proxy_protocol":
            settings["proxy_trusted"] = _parse_proxy_protocol(src, value)
            continue
        if key not in GATEWAY_KEYS:
            known = sorted([*GATEWAY_KEYS, *GATEWAY_SECTIONS])
            raise src.error(("gateway", key), f"unknown key (known: {', '.join(known)})")
        kind = GATEWAY_KEYS[key]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise src.error(("gateway", key), f"expected a number, got {_describe(value)}")
        if value < 0 or (kind is float and value == 0):
            raise src.error(("gateway", key), "must be positive")
        settings[key] = kind(value)

    base = Path(name).parent
    home_assistant = None
    if data.get("home_assistant") is not None:
        home_assistant = _parse_home_assistant(
            src, ("home_assistant",), data["home_assistant"], base, upstream
        )
    return Config(
        gateway=GatewaySettings(**settings),
        audit=_parse_audit(src, data.get("audit"), base),
        admin=_parse_admin(src, data.get("admin"), "admin" in data),
        alerts=_parse_alerts(src, data.get("alerts"), base, upstream, home_assistant),
        home_assistant=home_assistant,
        acme=_parse_tls(src, data.get("tls"), base),
        hostname=hostname,
        upstream=upstream,
        listen=listen,
        asn_db=asn_db,
        country_db=country_db,
        retention_days=retention,
        rules=rules,
        rate_limits=rate_limits,
        lists=lists,
        source=src,
    )


def _parse_proxy_protocol(src: ConfigSource, raw: Any) -> tuple[Network, ...]:
    path: Path_ = ("gateway", "proxy_protocol")
    section = _keys(src, path, raw, ("trusted",))
    trusted = section.get("trusted")
    if trusted is None:
        raise src.error(path, "missing key 'trusted': the fronts' addresses or networks (CIDR)")
    if not isinstance(trusted, list) or not trusted:
        raise src.error(
            (*path, "trusted"), "expected a list of addresses or networks, e.g. [127.0.0.1/32]"
        )
    networks: list[Network] = []
    for i, value in enumerate(trusted):
        if not isinstance(value, str):
            raise src.error(
                (*path, "trusted", i), f"expected an address or CIDR, got {_describe(value)}"
            )
        try:
            networks += parse_networks([value])
        except ValueError as e:
            raise src.error((*path, "trusted", i), str(e)) from None
    return tuple(networks)


def _parse_tls(src: ConfigSource, tls: Any, base: Path) -> AcmeSettings | None:
    if tls is None:
        return None
    _typed(src, ("tls",), tls, dict, "a mapping with acme")
    for key in tls:
        if key != "acme":
            raise src.error(("tls", key), "unknown key (known: acme)")
    acme = tls.get("acme")
    if acme is None:
        return None
    _typed(src, ("tls", "acme"), acme, dict, f"a mapping with {', '.join(ACME_KEYS)}")
    for key in acme:
        if key not in ACME_KEYS:
            raise src.error(("tls", "acme", key), f"unknown key (known: {', '.join(ACME_KEYS)})")
    staging = acme.get("staging", False)
    if staging is None:
        staging = False
    if not isinstance(staging, bool):
        raise src.error(
            ("tls", "acme", "staging"), f"expected true or false, got {_describe(staging)}"
        )
    directory = acme.get("directory")
    if directory is not None:
        _typed(src, ("tls", "acme", "directory"), directory, str, "a URL")
        _checked(src, ("tls", "acme", "directory"), validate_directory, directory)
    email = acme.get("email")
    if email is not None:
        _typed(src, ("tls", "acme", "email"), email, str, "an email address")
        _checked(src, ("tls", "acme", "email"), validate_email, email)
    bundle = _optional_str(src, ("tls", "acme", "ca_bundle"), acme.get("ca_bundle"))
    if bundle is not None:
        path = (base / Path(bundle).expanduser()).resolve()
        if not path.is_file():
            raise src.error(("tls", "acme", "ca_bundle"), f"no such file: {path}")
        bundle = str(path)
    return acme_settings(directory, email, bundle, staging)


def _keys(src: ConfigSource, path: Path_, value: Any, known: tuple[str, ...]) -> dict[str, Any]:
    _typed(src, path, value, dict, f"a mapping with {', '.join(known)}")
    for key in value:
        if key not in known:
            raise src.error((*path, key), f"unknown key (known: {', '.join(known)})")
    return dict(value)


def _file(src: ConfigSource, path: Path_, value: Any, base: Path, what: str) -> str:
    text = _typed(src, path, value, str, what)
    resolved = (base / Path(text).expanduser()).resolve()
    if not resolved.is_file():
        raise src.error(path, f"no such file: {resolved}")
    return str(resolved)


def _number(src: ConfigSource, path: Path_, value: Any, kind: type, low: float, what: str) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise src.error(path, f"expected {what}, got {_describe(value)}")
    if kind is int and not isinstance(value, int):
        raise src.error(path, f"expected a whole number, got {value}")
    if value < low:
        raise src.error(path, f"must be at least {low:g}")
    return kind(value)


def _parse_audit(src: ConfigSource, raw: Any, base: Path) -> AuditSettings:
    if raw is None:
        return AuditSettings()
    audit = _keys(src, ("audit",), raw, ("ignore", "home_assistant_config"))
    ignore = audit.get("ignore") or []
    _typed(
        src, ("audit", "ignore"), ignore, list, "a list of finding ids (hagate audit shows them)"
    )
    for i, item in enumerate(ignore):
        _typed(src, ("audit", "ignore", i), item, str, "a finding id")
    ha_config = audit.get("home_assistant_config")
    if ha_config is not None:
        ha_config = _file(
            src, ("audit", "home_assistant_config"), ha_config, base, "a path to configuration.yaml"
        )
    return AuditSettings(tuple(ignore), ha_config)


def _parse_admin(src: ConfigSource, raw: Any, present: bool) -> AdminSettings | None:
    if not present:
        return None
    admin = _keys(src, ("admin",), raw or {}, ("listen", "ingress"))
    listen = admin.get("listen", DEFAULT_ADMIN_LISTEN)
    _typed(src, ("admin", "listen"), listen, str, "HOST:PORT")
    _checked(src, ("admin", "listen"), parse_listen, listen)
    ingress = None
    if admin.get("ingress") is not None:
        path: Path_ = ("admin", "ingress")
        raw_ingress = _keys(src, path, admin["ingress"], ("listen", "trusted"))
        if "listen" not in raw_ingress:
            raise src.error(path, "missing key 'listen' (HOST:PORT, the app's ingress_port)")
        ingress_listen = raw_ingress["listen"]
        _typed(src, (*path, "listen"), ingress_listen, str, "HOST:PORT")
        _checked(src, (*path, "listen"), parse_listen, ingress_listen)
        trusted = raw_ingress.get("trusted", [SUPERVISOR_INGRESS])
        _typed(src, (*path, "trusted"), trusted, list, "a list of addresses")
        for i, address in enumerate(trusted):
            _typed(src, (*path, "trusted", i), address, str, "an IP address")
            try:
                ipaddress.ip_address(address)
            except ValueError:
                raise src.error(
                    (*path, "trusted", i), f"{address!r} is not an IP address"
                ) from None
        ingress = IngressSettings(ingress_listen, tuple(trusted))
    return AdminSettings(listen, ingress)


def _parse_home_assistant(
    src: ConfigSource, path: Path_, raw: Any, base: Path, upstream: str
) -> HomeAssistantSettings:
    ha = _keys(src, path, raw, ("url", "token_file"))
    if "token_file" not in ha:
        raise src.error(path, "missing key 'token_file': a file holding a long-lived token")
    token_file = _file(src, (*path, "token_file"), ha["token_file"], base, "a file path")
    url = upstream
    if ha.get("url") is not None:
        url = _checked(
            src,
            (*path, "url"),
            validate_api_url,
            _typed(src, (*path, "url"), ha["url"], str, "a URL"),
        )
    return HomeAssistantSettings(url, token_file)


def _parse_alerts(
    src: ConfigSource,
    raw: Any,
    base: Path,
    upstream: str,
    home_assistant: HomeAssistantSettings | None,
) -> AlertSettings | None:
    if raw is None:
        return None
    alerts = _keys(src, ("alerts",), raw, ALERT_KEYS)
    if "home_assistant" in alerts:  # its own connection (before the top-level section was)
        ha_path: Path_ = ("alerts", "home_assistant")
        connection = _parse_home_assistant(src, ha_path, alerts["home_assistant"], base, upstream)
    elif home_assistant is not None:
        connection = home_assistant
    else:
        raise src.error(
            ("alerts",),
            "no Home Assistant to send them to: add a top-level home_assistant section"
            " (with url and token_file)",
        )
    url, token_file = connection.url, connection.token_file
    burst = alerts.get("blocked_burst") or {}
    burst = _keys(src, ("alerts", "blocked_burst"), burst, ("requests", "seconds"))
    numbers: dict[str, Any] = {}
    for name, (path, kind, what) in _ALERT_NUMBERS.items():
        within = burst if path[0] == "blocked_burst" else alerts
        value = within.get(path[-1], getattr(AlertSettings("", ""), name))
        numbers[name] = _number(src, ("alerts", *path), value, kind, 1, what)
    return AlertSettings(url=url, token_file=token_file, **numbers)


# AlertSettings field -> (where under alerts:, type, what it is)
_ALERT_NUMBERS: dict[str, tuple[tuple[str, ...], type, str]] = {
    "repeat_after": (("repeat_after",), float, "a number of seconds"),
    "queue": (("queue",), int, "a number of alerts"),
    "burst_requests": (("blocked_burst", "requests"), int, "a number of requests"),
    "burst_seconds": (("blocked_burst", "seconds"), float, "a number of seconds"),
    "cut_off_after": (("cut_off_after",), float, "a number of seconds"),
    "checks_every": (("checks_every",), float, "a number of seconds"),
}


def load_config(path: Path) -> Config:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise HagateError(f"no config at {path}: run hagate init first") from None
    except (OSError, UnicodeDecodeError) as e:
        raise HagateError(f"cannot read {path}: {e}") from e
    return parse_config(text, str(path))


def render_template(hostname: str, upstream: str, listen: str) -> str:
    """The commented `hagate.yaml` that `hagate init` writes."""
    return f"""\
# hagate configuration. Edit, then check it with: hagate rules check
# Documentation: docs/rules.md (rules), docs/certificates.md (the server certificate, hagate's
# CA or Let's Encrypt, and client certificates for each kind of device).

# The public name clients use for your Home Assistant (the TLS server name).
hostname: {hostname}

# Where the gateway reaches Home Assistant on your network.
upstream: {upstream}

# Address and port the gateway listens on in port-forward mode (`hagate serve`).
listen: "{listen}"

# Optional MaxMind-format databases (GeoLite2-ASN.mmdb, GeoLite2-Country.mmdb) that fill
# ip.src.asnum, ip.src.country and ip.src.continent for rules and the event log.
geoip:
  asn_db:
  country_db:

# The server certificate. Without a tls.acme section it is signed by hagate's own CA, which
# every device must trust. With it, hagate gets a public certificate from Let's Encrypt (or
# another ACME CA) through port 443 with tls-alpn-01, and renews it by itself: no port 80,
# no DNS API. See docs/certificates.md; try `staging: true` first.
# tls:
#   acme:
#     email: you@example.com
#     staging: false
#     # directory: https://acme-v02.api.letsencrypt.org/directory  (the default)
#     # ca_bundle: /path/to/private-acme-ca.pem  (only for a private ACME server)

# Metrics for Prometheus and the web console on an admin listener (off unless this section
# is here; loopback by default): GET /metrics, and /console/ behind a password (hagate
# console password). See docs/watch.md and docs/console.md.
# admin:
#   listen: 127.0.0.1:9464

# Home Assistant's own API, for the alerts and the list of webhooks it registered (the
# hagate.webhook.* rule fields, preset ha-webhooks). See docs/watch.md and docs/bound-apps.md.
# home_assistant:
#   token_file: ha-token.txt   # a long-lived access token (HA profile page, Security)
#   # url: http://127.0.0.1:8123  (the upstream unless given)

# Alerts on Home Assistant's event bus (event type hagate_alert) for what needs a person: a
# revoked certificate presented, a burst of blocked requests, the tunnel cut off, a
# certificate about to expire, a high-severity audit finding. See docs/watch.md. They go to
# the home_assistant above.
# alerts: {{}}

# `hagate audit` reviews the whole setup. Silence a finding on purpose by its id:
# audit:
#   ignore: []
#   home_assistant_config: /config/configuration.yaml  (lets it check ip_ban_enabled)

# Behind a front that passes TLS through (Tailscale Funnel, HAProxy, nginx's stream module,
# a load balancer): believe the PROXY protocol header it sends, which names each client, from
# these addresses only. See docs/fronts.md.
# gateway:
#   proxy_protocol:
#     trusted: [127.0.0.1/32]

# The event log (SQLite in the state directory) keeps this many days of events.
events:
  retention_days: {DEFAULT_RETENTION_DAYS}

# Named lists for rules, used as `ip.src in $home_networks` (Cloudflare's lists).
# lists:
#   home_networks: [203.0.113.0/24, 2001:db8::/32]
#   mobile_asns: [3320, 6805]

# Rules in the Cloudflare Rules language, evaluated in order on every request.
# action: block (ends evaluation), skip (lets the request through, skipping the remaining
# rules), or log (records the match and continues). No matching rule: the request goes through.
rules:
  - description: {DEFAULT_RULE["description"]}
    expression: "{DEFAULT_RULE["expression"]}"
    action: {DEFAULT_RULE["action"]}

# Example: let the iOS companion app in without a certificate from your own networks.
# Put it FIRST, above the certificate rule.
#  - description: iOS companion app from home and mobile networks
#    expression: >-
#      (http.user_agent contains "(io.robbie.HomeAssistant; build:"
#       and http.user_agent contains "iOS" and ip.src.asnum in {{3320 6805}})
#    action: skip

# Rate limiting (its own phase, after the rules above), as in Cloudflare:
# rate_limits:
#   - description: Slow down login attempts
#     expression: http.request.uri.path eq "/auth/login_flow"
#     characteristics: [ip.src]
#     period: 60
#     requests_per_period: 20
#     mitigation_timeout: 600
"""
