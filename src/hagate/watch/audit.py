"""`hagate audit`: gathers the facts of the whole setup and runs every check on them.

Rules:
  1. Each check is a pure function of facts (rulecheck, certcheck, hostcheck's judge_*,
     status.judge_statuses); this module only gathers the facts and joins the answers.
  2. The audit reads; it changes nothing. Its only traffic is one request to the upstream.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509

from hagate.acme.store import AcmeFiles
from hagate.config import Config, load_config
from hagate.credentials.bindings import Bindings
from hagate.credentials.webhooks import read_status as read_webhook_status
from hagate.enrol.store import FIRST_USE, EnrolmentStore
from hagate.events.store import EVENTS_NAME
from hagate.pki.authority import CertRecord, read_inventory
from hagate.review.query import has_events
from hagate.rules.ruleset import RuleSet, ruleset_from_config
from hagate.state import INVENTORY_NAME, SERVER_CERT, StateDir
from hagate.watch import certcheck, credcheck, frontcheck, hostcheck, rulecheck, status
from hagate.watch.findings import Finding, Severity, counts, split_ignored

DAY = 86400.0


@dataclass(frozen=True)
class Report:
    findings: list[Finding]  # reported, high first
    silenced: list[Finding]  # listed in audit.ignore

    @property
    def failed(self) -> bool:
        return any(f.severity >= Severity.HIGH for f in self.findings)

    def to_json(self) -> dict[str, Any]:
        """The `hagate audit --json` object (also the console API's)."""
        return {
            "findings": [f.to_json() for f in self.findings],
            "silenced": [f.to_json() for f in self.silenced],
            "counts": counts(self.findings),
        }


@dataclass(frozen=True)
class LogFacts:
    matched_rules: set[str]
    span: float  # seconds since the oldest event (0 without events)
    last_used: dict[str, float]  # certificate sha256 -> last request presenting it
    revoked_uses: list[certcheck.RevokedUse]
    recent_sources: list[str]  # client addresses of the latest requests, newest first


def log_facts(path: Path, records: list[CertRecord], now: float) -> LogFacts:
    if not path.exists():
        return LogFacts(set(), 0.0, {}, [], [])
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    if not has_events(db):  # the writer has only just made the file
        db.close()
        return LogFacts(set(), 0.0, {}, [], [])
    try:
        since = now - rulecheck.NEVER_MATCHED_DAYS * DAY
        matched = {
            r[0]
            for r in db.execute(
                "SELECT DISTINCT rule FROM events WHERE time >= ? AND rule IS NOT NULL", (since,)
            )
        }
        oldest = db.execute("SELECT min(time) FROM events").fetchone()[0]
        last_used = {
            sha: t
            for sha, t in db.execute(
                "SELECT cert_sha256, max(time) FROM events WHERE cert_sha256 IS NOT NULL"
                " GROUP BY cert_sha256"
            )
        }
        uses = []
        for r in records:
            if r.revoked_at is None:
                continue
            # Only what came after the revocation: the uses before it were the owner's.
            start = max(now - certcheck.REVOKED_SEEN_DAYS * DAY, r.revoked_at.timestamp())
            count, last = db.execute(
                "SELECT count(*), max(time) FROM events WHERE cert_sha256 = ? AND time >= ?",
                (r.sha256, start),
            ).fetchone()
            if not count:
                continue
            ip = db.execute(
                "SELECT client_ip FROM events WHERE cert_sha256 = ? AND time >= ?"
                " ORDER BY time DESC LIMIT 1",
                (r.sha256, start),
            ).fetchone()
            uses.append(
                certcheck.RevokedUse(
                    r.name, count, last, ip[0] if ip else None, r.revoked_at.timestamp()
                )
            )
        recent = [
            r[0]
            for r in db.execute(
                "SELECT client_ip FROM events WHERE path IS NOT NULL ORDER BY time DESC LIMIT ?",
                (frontcheck.RECENT_REQUESTS,),
            )
        ]
    finally:
        db.close()
    return LogFacts(matched, now - oldest if oldest else 0.0, last_used, uses, recent)


def first_use_times(state: StateDir) -> dict[str, float]:
    """Certificate sha256 -> when its first-use record was last touched (the gateway touches
    it on use, at most hourly), which outlives the event log's retention."""
    directory = EnrolmentStore(state).dir / FIRST_USE
    out = {}
    for path in directory.glob("*.json") if directory.is_dir() else []:
        with contextlib.suppress(OSError):
            out[path.stem] = path.stat().st_mtime
    return out


def server_certificate(state: StateDir, cfg: Config) -> certcheck.ServerCertificate | None:
    if cfg.acme is not None:
        info = AcmeFiles(state).certificate()
        if info is not None:
            return certcheck.ServerCertificate("acme", info.not_after, info.issuer)
    try:
        cert = x509.load_pem_x509_certificates((state / SERVER_CERT).read_bytes())[0]
    except (OSError, ValueError, IndexError):
        return None
    return certcheck.ServerCertificate(
        "hagate-ca", cert.not_valid_after_utc.timestamp(), "hagate's CA"
    )


def acme_state(state: StateDir, cfg: Config) -> certcheck.AcmeState | None:
    if cfg.acme is None:
        return None
    s = AcmeFiles(state).status()
    return certcheck.AcmeState(s.failures, s.last_error, s.last_success)


def ha_http_settings(cfg: Config) -> tuple[dict[str, object] | None, list[Finding]]:
    path = cfg.audit.home_assistant_config
    if path is None:
        return None, []
    try:
        return hostcheck.read_http_settings(Path(path)), []
    except (OSError, ValueError) as e:  # yaml errors are ValueErrors
        return {}, [
            Finding(
                "ha-config-unreadable",
                Severity.LOW,
                f"Home Assistant's configuration {path} could not be read: {e}",
                "Correct audit.home_assistant_config in hagate.yaml.",
            )
        ]


def run_audit(
    state: StateDir,
    now: float | None = None,
    probe: bool = True,
    cfg: Config | None = None,
    ruleset: RuleSet | None = None,
) -> Report:
    now = time.time() if now is None else now
    cfg = cfg or load_config(state.config_path)
    ruleset = ruleset or ruleset_from_config(cfg)
    records = read_inventory(state / INVENTORY_NAME)
    facts = log_facts(state / EVENTS_NAME, records, now)
    last_used = dict(first_use_times(state))
    for sha, t in facts.last_used.items():
        last_used[sha] = max(t, last_used.get(sha, 0.0))
    findings: list[Finding] = []
    findings += rulecheck.check_rules(
        ruleset, cfg.hostname, facts.matched_rules, facts.span, now, cfg.geoip_databases
    )
    findings += certcheck.check_client_certificates(records, last_used, now)
    findings += certcheck.check_revoked_uses(facts.revoked_uses, now)
    findings += certcheck.check_server_certificate(
        server_certificate(state, cfg), acme_state(state, cfg), now
    )
    findings += credcheck.check_bound_rules(ruleset, cfg.hostname)
    findings += credcheck.check_bindings(Bindings(state).summaries(now), records)
    findings += credcheck.check_webhook_list(
        ruleset, cfg.home_assistant is not None, read_webhook_status(state), now
    )
    extra = [Path(cfg.alerts.token_file)] if cfg.alerts is not None else []
    if cfg.home_assistant is not None:
        extra.append(Path(cfg.home_assistant.token_file))
    findings += hostcheck.judge_modes(hostcheck.gather_modes(state.path, extra), str(state.path))
    findings += hostcheck.judge_bypass(cfg.upstream, hostcheck.read_listeners())
    http, problems = ha_http_settings(cfg)
    findings += problems
    if not problems:
        findings += hostcheck.judge_ip_ban(http, cfg.audit.home_assistant_config)
    if probe:
        findings += hostcheck.judge_probe(hostcheck.probe(cfg.upstream, cfg.hostname), cfg.upstream)
    findings += status.judge_statuses(status.read_statuses(state), now)
    findings += frontcheck.judge_sources(facts.recent_sources)
    reported, silenced = split_ignored(findings, cfg.audit.ignore)
    return Report(reported, silenced)
