"""What the console shows, as plain objects: the same for its pages and its API, and the same
as the CLI's `--json` where the CLI has one (events, cert list, audit, events suggest).

Rules:
  1. This module reads; changing anything is in `changes`.
  2. Every query is bounded (a period, a LIMIT); nothing reads the whole log to draw a page.
"""

from __future__ import annotations

import contextlib
import ipaddress
import sqlite3
import threading
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from hagate import config
from hagate.errors import HagateError
from hagate.events.store import ACTIONS, EVENTS_NAME
from hagate.geoip import GeoIP
from hagate.review import query
from hagate.review.devices import device_summaries
from hagate.state import StateDir

HOUR = 3600.0
DAY = 86400.0
LET_IN = ("allow", "skip", "log")
BLOCKED = ("block", "refused")
PAGE_SIZE = 50
PAGE_MAX = 500
AUDIT_FOR = 60.0  # seconds an audit is shown before it is run again
# The filters of `hagate events`, by the names its options have (--path-prefix: path_prefix).
FILTERS = (
    *("since", "until", "action", "ip", "asn", "country"),
    *("path_prefix", "rule", "cert", "status", "ua"),
)


class BadQuery(HagateError):
    """A filter or parameter a person (or a script) got wrong: answered 400 with these words."""


def event_filter(params: Mapping[str, str]) -> query.EventFilter:
    """The filters of `hagate events`, from a query string (empty values are no filter)."""
    p = {k: v.strip() for k, v in params.items() if k in FILTERS and v.strip()}

    def integer(name: str, low: int, high: int) -> int | None:
        if name not in p:
            return None
        try:
            value = int(p[name].removeprefix("AS").removeprefix("as"))
        except ValueError:
            raise BadQuery(f"{name}: {p[name]!r} is not a number") from None
        if not low <= value <= high:
            raise BadQuery(f"{name}: {value} is out of range ({low} to {high})")
        return value

    if "action" in p and p["action"] not in ACTIONS:
        raise BadQuery(f"action: {p['action']!r} is not one of {', '.join(ACTIONS)}")
    try:
        since = query.parse_time(p["since"]) if "since" in p else None
        until = query.parse_time(p["until"]) if "until" in p else None
        network = query.parse_network(p["ip"]) if "ip" in p else None
    except HagateError as e:
        raise BadQuery(str(e)) from None
    return query.EventFilter(
        since=since,
        until=until,
        action=p.get("action"),
        network=network,
        asn=integer("asn", 0, 2**32 - 1),
        country=p.get("country"),
        path_prefix=p.get("path_prefix"),
        rule=p.get("rule"),
        cert=p.get("cert"),
        status=integer("status", 100, 599),
        ua=p.get("ua"),
    )


def _log(state: StateDir) -> sqlite3.Connection | None:
    """The event log, or None before the gateway has made it (the file, then its table)."""
    path = state / EVENTS_NAME
    if not path.exists():
        return None
    db = query.open_log(path)
    if not query.has_events(db):
        db.close()
        return None
    return db


# -- overview -----------------------------------------------------------------------------


def hourly(db: sqlite3.Connection, now: float, hours: int) -> list[dict[str, Any]]:
    """Requests let in and blocked in each of the last `hours` hours (the current one last)."""
    start = (now // HOUR) * HOUR - (hours - 1) * HOUR
    counts = {i: [0, 0] for i in range(hours)}
    sql = (
        "SELECT CAST((time - ?) / 3600 AS INTEGER) AS b,"
        f" sum(action IN {LET_IN!r}), sum(action IN {BLOCKED!r})"
        " FROM events WHERE time >= ? GROUP BY b"
    )
    for b, let_in, blocked in db.execute(sql, (start, start)):
        if b in counts:
            counts[b] = [let_in or 0, blocked or 0]
    return [{"start": start + i * HOUR, "let_in": c[0], "blocked": c[1]} for i, c in counts.items()]


def top_blocked(
    db: sqlite3.Connection, geo: GeoIP, since: float, limit: int = 10
) -> list[dict[str, Any]]:
    out = []
    for c in query.top(db, query.EventFilter(since=since, action="block"), "ip", limit):
        ip = str(c.key or "")
        org, country = geo.describe(ip) if ip else ("", "")
        asn = geo.lookup(ipaddress.ip_address(ip)).asn if ip else None
        out.append(
            {
                "ip": ip,
                "count": c.count,
                "last": c.last,
                "asn": asn,
                "as_name": org,
                "country_name": country,
            }
        )
    return out


def recent_alerts(state: StateDir, limit: int = 10) -> list[dict[str, Any]]:
    from hagate.watch.ledger import LEDGER_NAME

    path = state / LEDGER_NAME
    if not path.exists():
        return []
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            rows = db.execute(
                "SELECT kind, subject, at FROM sent ORDER BY at DESC LIMIT ?", (limit,)
            ).fetchall()
        finally:
            db.close()
    except sqlite3.Error:
        return []
    return [{"kind": k, "subject": s, "at": at} for k, s, at in rows]


def processes(state: StateDir) -> list[dict[str, Any]]:
    """The gateway processes running on this state directory (serve or connect)."""
    from hagate.watch.status import read_statuses

    return [
        {"pid": s.pid, "role": s.role, "started": s.started, "updated": s.updated}
        for s in read_statuses(state)
    ]


def relays(state: StateDir) -> list[dict[str, Any]]:
    """Each relay the running connector keeps a link to: up or down, and since when."""
    from hagate.watch.status import read_statuses

    merged: dict[str, tuple[bool, float]] = {}
    for status in read_statuses(state):
        for relay, (up, since) in status.relays.items():
            if relay not in merged or (up and not merged[relay][0]):
                merged[relay] = (up, since)
    return [{"relay": r, "up": up, "since": since} for r, (up, since) in sorted(merged.items())]


class AuditCache:
    """The audit, run at most once a minute (it reads the whole setup), without the probe, and
    again as soon as hagate.yaml changes."""

    def __init__(self, state: StateDir) -> None:
        self.state = state
        self._at = -AUDIT_FOR
        self._report: dict[str, Any] | None = None
        self._stamp: tuple[int, int] | None = None
        self._lock = threading.Lock()

    def _stale(self) -> bool:
        """Older than AUDIT_FOR, or hagate.yaml changed since (a rule fixed or added)."""
        return time.monotonic() - self._at >= AUDIT_FOR or self._config_stamp() != self._stamp

    def _config_stamp(self) -> tuple[int, int] | None:
        try:
            st = self.state.config_path.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    def get(self, fresh: bool = False) -> dict[str, Any]:
        from hagate.watch.audit import run_audit

        with self._lock:
            if fresh or self._report is None or self._stale():
                stamp = self._config_stamp()
                self._report = run_audit(self.state, probe=False).to_json()
                self._at, self._stamp = time.monotonic(), stamp
            return self._report

    def counts(self) -> dict[str, int] | None:
        """The kept report's counts by severity, never waiting: None before the first report
        (one is then run in the background); a stale one is shown while the next is run."""
        with self._lock:
            report, stale = self._report, self._stale()
        if report is None or stale:
            threading.Thread(target=self._quietly, name="hagate-audit", daemon=True).start()
        return None if report is None else dict(report["counts"])

    def _quietly(self) -> None:
        if not self._lock.acquire(blocking=False):
            return  # one is being run
        self._lock.release()
        with contextlib.suppress(Exception):  # a broken config is the audit page's to report
            self.get()


class SuggestionCache:
    """`events suggest` reads a month of the log (seconds on a busy home's): the console keeps
    the last answer and works out the next in the background, at most every REFRESH seconds.
    Pages never wait for it (peek: they show what is kept and look again by themselves); the
    API and an apply do (get)."""

    REFRESH = 60.0

    def __init__(self, state: StateDir, since: str = "30d") -> None:
        self.state = state
        self.since = since
        self._found: list[dict[str, Any]] | None = None
        self._at = 0.0
        self._lock = threading.Lock()
        self._working = False
        self._done = threading.Event()

    def _work(self) -> None:
        try:
            found = suggestions(self.state, self.since)
        except Exception:
            found = None  # a broken config or log is the pages' to report
        with self._lock:
            self._working = False
            if found is not None:
                self._found, self._at = found, time.time()
        self._done.set()

    def refresh(self) -> None:
        """Work out the suggestions again in a thread, unless that is under way."""
        with self._lock:
            if self._working:
                return
            self._working = True
            self._done.clear()
        threading.Thread(target=self._work, name="hagate-suggest", daemon=True).start()

    def get(self, fresh: bool = False) -> tuple[list[dict[str, Any]], float]:
        """The suggestions and when they were worked out; the first call (or a `fresh` one)
        waits for them."""
        with self._lock:
            found, at, working = self._found, self._at, self._working
        if found is None and working and not fresh:
            self._done.wait(60)  # the work under way, rather than the same work twice
            with self._lock:
                found, at = self._found, self._at
        if found is None or fresh:
            found = suggestions(self.state, self.since)
            with self._lock:
                self._found, self._at = found, time.time()
            return found, self._at
        if time.time() - at >= self.REFRESH:
            self.refresh()
        return found, at

    def peek(self, fresh: bool = False) -> tuple[list[dict[str, Any]] | None, float, bool]:
        """What is kept now (None before the first answer), when it was worked out, and
        whether a new answer is being worked out; never waits. `fresh` asks for one."""
        with self._lock:
            found, at = self._found, self._at
        if fresh or found is None or time.time() - at >= self.REFRESH:
            self.refresh()
        with self._lock:
            return found, at, self._working

    def wait(self, timeout: float) -> None:
        """Until the work under way is done, for at most `timeout` seconds."""
        with self._lock:
            working = self._working
        if working:
            self._done.wait(timeout)

    def forget(self) -> None:
        """After a change to the rules: the next answer is worked out afresh."""
        with self._lock:
            self._found = None


def overview(state: StateDir, audit: AuditCache, now: float | None = None) -> dict[str, Any]:
    now = time.time() if now is None else now
    cfg = config.load_config(state.config_path)
    geo = GeoIP(cfg.asn_db, cfg.country_db)
    db = _log(state)
    try:
        day = hourly(db, now, 24) if db else []
        week = hourly(db, now, 24 * 7) if db else []
        blocked = top_blocked(db, geo, now - DAY) if db else []
    finally:
        if db:
            db.close()
    return {
        "hostname": cfg.hostname,
        "processes": processes(state),
        "relays": relays(state),
        "hourly_24h": day,
        "hourly_7d": week,
        "top_blocked_24h": blocked,
        "alerts": recent_alerts(state),
        "audit": audit.counts(),
    }


def summary(state: StateDir, audit: AuditCache, now: float | None = None) -> dict[str, Any]:
    """What Home Assistant's integration shows, in one call: the relays, the last hour's
    requests, today's distinct blocked sources (since local midnight), the audit's high
    findings with their fixes, and each certificate's status and last use."""
    now = time.time() if now is None else now
    cfg = config.load_config(state.config_path)
    midnight = time.mktime((*time.localtime(now)[:3], 0, 0, 0, 0, 0, -1))
    let_in = blocked = sources = 0
    db = _log(state)
    if db is not None:
        try:
            let_in, blocked = db.execute(
                f"SELECT sum(action IN {LET_IN!r}), sum(action IN {BLOCKED!r})"
                " FROM events WHERE time >= ?",
                (now - HOUR,),
            ).fetchone()
            (sources,) = db.execute(
                f"SELECT count(DISTINCT client_ip) FROM events WHERE action IN {BLOCKED!r}"
                " AND time >= ?",
                (midnight,),
            ).fetchone()
        finally:
            db.close()
    report = audit.get()
    return {
        "hostname": cfg.hostname,
        "relays": relays(state),
        "last_hour": {"let_in": let_in or 0, "blocked": blocked or 0},
        "blocked_sources_today": sources or 0,
        "audit": {
            "counts": report["counts"],
            "high": [f for f in report["findings"] if f["severity"] == "high"],
        },
        "devices": [
            {k: d[k] for k in ("name", "status", "not_after", "last_used", "admin")}
            for d in devices(state)
        ],
    }


# -- events -------------------------------------------------------------------------------


def events(
    state: StateDir,
    f: query.EventFilter,
    limit: int = PAGE_SIZE,
    before: int | None = None,
    after: int | None = None,
) -> dict[str, Any]:
    """A page of matching rows, newest first (the `hagate events --json` rows); `before` an id
    for the next page, `after` an id for the rows that came since (the live tail)."""
    if not 1 <= limit <= PAGE_MAX:
        raise BadQuery(f"limit: between 1 and {PAGE_MAX}")
    db = _log(state)
    if db is None:
        return {"events": [], "next_before": None, "last_id": 0}
    try:
        last = query.last_id(db)
        if after is not None:
            found = query.recent(db, replace(f, after_id=after), limit)
        else:
            found = query.recent(db, replace(f, before_id=before), limit + 1)
    finally:
        db.close()
    more = after is None and len(found) > limit
    found = found[:limit]
    return {
        "events": found,
        "next_before": found[-1]["id"] if more and found else None,
        "last_id": last,
    }


def event(state: StateDir, event_id: int) -> dict[str, Any] | None:
    db = _log(state)
    if db is None:
        return None
    try:
        row = db.execute("SELECT * FROM events WHERE id = ?", (event_id,)).fetchone()
    finally:
        db.close()
    return dict(row) if row is not None else None


def explain_event(state: StateDir, row: Mapping[str, Any]) -> str | None:
    """How today's rules decide a request like the one in `row` (`hagate rules explain` on
    its fields); None for rows that were not requests (refused connections, ACME, ...)."""
    from hagate.pki.authority import Authority
    from hagate.rules.explain import render
    from hagate.rules.request import issued_certificate_fields, request_fields
    from hagate.rules.ruleset import ruleset_from_config
    from hagate.rules.types import to_bytes_str

    if not row.get("method") or not row.get("client_ip"):
        return None
    cfg = config.load_config(state.config_path)
    ruleset = ruleset_from_config(cfg)
    host = str(row.get("host") or row.get("sni") or cfg.hostname)
    headers = [("Host", host)]
    if row.get("user_agent"):
        headers.append(("User-Agent", str(row["user_agent"])))
    tls: dict[str, Any] = {}
    cert_text = "no certificate"
    if row.get("cert_sha256"):
        authority = Authority(state)
        record = next((r for r in authority.records() if r.sha256 == row["cert_sha256"]), None)
        if record is not None:
            tls = issued_certificate_fields(authority, record)
            cert_text = f"certificate {record.name} ({record.status()} now)"
    ip = ipaddress.ip_address(str(row["client_ip"]))
    values = request_fields(
        client_ip=ip,
        method=str(row["method"]),
        host=to_bytes_str(host),
        target=to_bytes_str(str(row.get("path") or "/")),
        headers=[(to_bytes_str(k), to_bytes_str(v)) for k, v in headers],
        asn=int(row.get("asn") or 0),
        country=str(row.get("country") or ""),
        continent=GeoIP(cfg.asn_db, cfg.country_db).lookup(ip).continent or "",
        tls=tls,
    )
    outcomes, decision = ruleset.explain(values)
    line = (
        f"Request: {row['method']} https://{host}{row.get('path') or '/'} "
        f"from {row['client_ip']}, {cert_text}; with today's rules:"
    )
    return render(outcomes, decision, line)


# -- devices, suggestions, audit -------------------------------------------------------------


def devices(state: StateDir) -> list[dict[str, Any]]:
    """The `hagate cert list --json` objects: each certificate, and whether it is marked as
    admin (it may open the console through the gateway)."""
    from hagate.console.access import ConsoleAccess

    admins = ConsoleAccess(state).admins()
    return [{**d, "admin": d["sha256"] in admins} for d in device_summaries(state)]


def suggestions(state: StateDir, since: str = "30d") -> list[dict[str, Any]]:
    """The `hagate events suggest --json` objects, numbered as `--apply` takes them."""
    return [{"number": n, **s.to_json()} for n, s in enumerate(found_suggestions(state, since), 1)]


def found_suggestions(state: StateDir, since: str) -> list[Any]:
    from hagate.pki.authority import Authority
    from hagate.review.suggest import suggest

    cfg = config.load_config(state.config_path)
    described = [str(r.get("description") or f"#{i + 1}") for i, r in enumerate(cfg.rules)]
    live = [r.name for r in Authority(state).records() if r.status() in ("valid", "expiring")]
    db = _log(state)
    if db is None:
        return []
    try:
        return suggest(
            db, query.parse_time(since), described, live, "asn_db" in cfg.geoip_databases
        )
    finally:
        db.close()
