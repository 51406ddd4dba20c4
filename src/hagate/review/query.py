"""Reading the event log: one filter, turned into SQL that the store's indexes serve.

Rules:
  1. The store is opened read-only (SQLite's WAL lets readers and the writer proceed together),
     so reading never blocks the gateway's event writer and never changes the file.
  2. Every filter is a bound parameter, never text pasted into SQL.
  3. The columns a filter or a grouping may name are a fixed table here; anything else is an
     error before SQLite sees it.
"""

from __future__ import annotations

import ipaddress
import re
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hagate.errors import HagateError

# `hagate events top --by X` -> the column counted
GROUPS = {
    "asn": "asn",
    "country": "country",
    "ip": "client_ip",
    "path": "path",
    "ua": "user_agent",
    "rule": "rule",
    "cert": "cert_name",
    "status": "status",
    "action": "action",
}
_DURATION = re.compile(r"(\d+)\s*([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_time(text: str, now: float | None = None) -> float:
    """`24h`, `7d`, `30m`, `2w` (that long ago) or an ISO date or time (UTC unless it says)."""
    now = time.time() if now is None else now
    m = _DURATION.fullmatch(text.strip().lower())
    if m:
        return now - int(m.group(1)) * _UNITS[m.group(2)]
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise HagateError(
            f"{text!r} is not a time: use 24h, 7d, 30m, 2w, or a date like 2026-12-01 or"
            " 2026-12-01T08:00:00Z"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


@dataclass(frozen=True)
class EventFilter:
    since: float | None = None
    until: float | None = None
    action: str | None = None
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    asn: int | None = None
    country: str | None = None
    path_prefix: str | None = None
    rule: str | None = None  # a part of the rule's description
    cert: str | None = None
    status: int | None = None
    ua: str | None = None  # a part of the user agent
    after_id: int | None = None  # for following the log
    before_id: int | None = None  # for the next page of a listing

    def where(self) -> tuple[str, list[Any]]:
        """The WHERE clause (possibly empty) and its parameters."""
        parts: list[str] = []
        params: list[Any] = []

        def add(sql: str, *values: Any) -> None:
            parts.append(sql)
            params.extend(values)

        if self.since is not None:
            add("time >= ?", self.since)
        if self.until is not None:
            add("time < ?", self.until)
        if self.action is not None:
            add("action = ?", self.action)
        if self.network is not None:
            if self.network.num_addresses == 1:
                add("client_ip = ?", str(self.network.network_address))
            else:
                add("hagate_in_network(client_ip, ?)", str(self.network))
        if self.asn is not None:
            add("asn = ?", self.asn)
        if self.country is not None:
            add("country = ?", self.country.upper())
        if self.path_prefix is not None:
            # A range, so the path index serves it: every string that starts with the prefix
            # sorts between the prefix and the prefix followed by the highest code point.
            add("path >= ? AND path < ?", self.path_prefix, self.path_prefix + "\U0010ffff")
        if self.rule is not None:
            add("instr(rule, ?) > 0", self.rule)
        if self.cert is not None:
            add("cert_name = ?", self.cert)
        if self.status is not None:
            add("status = ?", self.status)
        if self.ua is not None:
            add("instr(user_agent, ?) > 0", self.ua)
        if self.after_id is not None:
            add("id > ?", self.after_id)
        if self.before_id is not None:
            add("id < ?", self.before_id)
        return (" AND ".join(parts), params)


def parse_network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise HagateError(f"--ip {text!r} is not an address or a network (CIDR)") from None


@dataclass
class _Networks:
    cache: dict[str, ipaddress.IPv4Network | ipaddress.IPv6Network] = field(default_factory=dict)

    def contains(self, ip: str | None, network: str) -> bool:
        if ip is None:
            return False
        net = self.cache.get(network)
        if net is None:
            net = self.cache[network] = ipaddress.ip_network(network)
        try:
            return ipaddress.ip_address(ip) in net
        except ValueError:
            return False


def has_events(db: sqlite3.Connection) -> bool:
    """Whether the log has its table yet (a file the writer has only just made may not)."""
    found = db.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'events'"
    ).fetchone()
    return found is not None


def open_log(path: Path) -> sqlite3.Connection:
    """The event log, read-only; a missing file is a plain error."""
    if not path.exists():
        raise HagateError(f"no event log at {path} yet: it appears once the gateway has run")
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10, check_same_thread=False)
    db.row_factory = sqlite3.Row
    networks = _Networks()
    db.create_function("hagate_in_network", 2, networks.contains, deterministic=True)
    return db


def _select(f: EventFilter, order: str, limit: int | None) -> tuple[str, list[Any]]:
    where, params = f.where()
    sql = "SELECT * FROM events" + (f" WHERE {where}" if where else "") + f" ORDER BY {order}"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    return sql, params


def recent(db: sqlite3.Connection, f: EventFilter, limit: int = 50) -> list[dict[str, Any]]:
    """The newest rows that match, newest first."""
    sql, params = _select(f, "time DESC, id DESC", limit)
    return [dict(r) for r in db.execute(sql, params)]


def rows(db: sqlite3.Connection, f: EventFilter) -> Iterator[dict[str, Any]]:
    """Every row that matches, oldest first (for export and following)."""
    sql, params = _select(f, "id", None)
    for r in db.execute(sql, params):
        yield dict(r)


@dataclass(frozen=True)
class Count:
    key: Any
    count: int
    sample_ip: str | None  # one client address of the group, for naming its AS and country
    last: float


def top(db: sqlite3.Connection, f: EventFilter, by: str, limit: int = 20) -> list[Count]:
    """The most frequent values of `by` among the matching rows."""
    column = GROUPS.get(by)
    if column is None:
        raise HagateError(f"--by must be one of {', '.join(GROUPS)}")
    where, params = f.where()
    sql = (
        f"SELECT {column} AS key, count(*) AS n, min(client_ip) AS ip, max(time) AS last"
        f" FROM events {'WHERE ' + where if where else ''}"
        f" GROUP BY {column} ORDER BY n DESC, key LIMIT ?"
    )
    return [Count(r["key"], r["n"], r["ip"], r["last"]) for r in db.execute(sql, [*params, limit])]


def last_id(db: sqlite3.Connection) -> int:
    value = db.execute("SELECT max(id) FROM events").fetchone()[0]
    return int(value or 0)


# -- evidence for suggestions (hagate.review.suggest reads the log only through these) ----


def blocked_app_requests(db: sqlite3.Connection, since: float) -> list[tuple[int, str, str, int]]:
    """(asn, user agent, client, count) of requests without a certificate that were blocked
    and whose user agent names Home Assistant."""
    return [
        tuple(r)
        for r in db.execute(
            "SELECT asn, user_agent, client_ip, count(*) FROM events WHERE time >= ?"
            " AND action = 'block' AND cert_name IS NULL"
            " AND instr(user_agent, 'Home Assistant') > 0 GROUP BY asn, user_agent, client_ip",
            (since,),
        )
    ]


def blocked_webhook_calls(db: sqlite3.Connection, since: float) -> list[tuple[str, str, int]]:
    """(reason, client, count) of blocked requests to a webhook that the gateway found in Home
    Assistant's list (their reason names its integration)."""
    return [
        tuple(r)
        for r in db.execute(
            "SELECT reason, client_ip, count(*) FROM events WHERE time >= ? AND action = 'block'"
            " AND path = '/api/webhook/…' AND instr(reason, 'registered in Home Assistant') > 0"
            " GROUP BY reason, client_ip",
            (since,),
        )
    ]


def certificate_networks(db: sqlite3.Connection, since: float) -> set[int]:
    """The ASNs certificate holders were let in from."""
    return {
        r[0]
        for r in db.execute(
            "SELECT DISTINCT asn FROM events WHERE time >= ? AND cert_name IS NOT NULL"
            " AND action IN ('allow', 'skip') AND asn IS NOT NULL",
            (since,),
        )
    }


def allowed_networks(db: sqlite3.Connection, since: float) -> set[int]:
    """The ASNs anything was let in from."""
    return {
        r[0]
        for r in db.execute(
            "SELECT DISTINCT asn FROM events WHERE time >= ? AND action IN ('allow', 'skip')",
            (since,),
        )
    }


def blocked_posts(
    db: sqlite3.Connection, since: float, asns: tuple[int, ...], paths: tuple[str, ...]
) -> list[tuple[str, int, int]]:
    """(path, requests, addresses) of blocked POSTs to `paths` from `asns`."""
    marks, path_marks = ",".join("?" * len(asns)), ",".join("?" * len(paths))
    return [
        tuple(r)
        for r in db.execute(
            f"SELECT path, count(*), count(DISTINCT client_ip) FROM events WHERE time >= ?"
            f" AND action = 'block' AND method = 'POST' AND asn IN ({marks})"
            f" AND path IN ({path_marks}) GROUP BY path ORDER BY path",
            (since, *asns, *paths),
        )
    ]


def never_let_in(
    db: sqlite3.Connection, since: float, is_probe: Callable[[str | None], bool]
) -> list[tuple[str, int | None, int, int]]:
    """(client, asn, requests, probes) of addresses never let in that sent at least one
    request `is_probe` says is a probe, most requests first.

    In steps, each a pass SQLite does quickly: the period's distinct paths are judged in
    Python (a few hundred, not a row each); then the addresses that sent one of the probe
    paths; then only their rows are counted, through the address index."""
    paths = [
        r[0]
        for r in db.execute(
            "SELECT DISTINCT path FROM events WHERE time >= ? AND path IS NOT NULL", (since,)
        )
    ]
    db.execute("CREATE TEMP TABLE IF NOT EXISTS hagate_probe_paths (path TEXT PRIMARY KEY)")
    db.execute("CREATE TEMP TABLE IF NOT EXISTS hagate_probers (ip TEXT PRIMARY KEY)")
    try:
        db.executemany(
            "INSERT OR IGNORE INTO hagate_probe_paths VALUES (?)",
            [(p,) for p in paths if is_probe(p)],
        )
        db.execute(
            "INSERT OR IGNORE INTO hagate_probers SELECT client_ip FROM events"
            " WHERE time >= ? AND client_ip IS NOT NULL AND path IN hagate_probe_paths",
            (since,),
        )
        return [
            tuple(r)
            for r in db.execute(
                "SELECT client_ip, asn, count(*) AS n, sum(path IN hagate_probe_paths) AS probes"
                " FROM events WHERE client_ip IN hagate_probers AND time >= ?"
                " GROUP BY client_ip HAVING sum(action IN ('allow', 'skip')) = 0 AND probes > 0"
                " ORDER BY n DESC, client_ip",
                (since,),
            )
        ]
    finally:
        db.execute("DELETE FROM hagate_probe_paths")
        db.execute("DELETE FROM hagate_probers")


def used_certificates(db: sqlite3.Connection, since: float) -> set[str]:
    return {
        r[0]
        for r in db.execute(
            "SELECT DISTINCT cert_name FROM events WHERE time >= ? AND cert_name IS NOT NULL",
            (since,),
        )
    }


def matched_rules(db: sqlite3.Connection, since: float) -> set[str]:
    """The rule texts in the log: one description, or several joined by "; "."""
    return {
        r[0]
        for r in db.execute(
            "SELECT DISTINCT rule FROM events WHERE time >= ? AND rule IS NOT NULL", (since,)
        )
    }
