"""Every command the audit, the alerts and the suggestions print as a fix is one that runs.

The findings are made by the real checks (every kind that names a command), the commands
are read out of their text (a command is written between backticks) and each is run, as
printed, against a real state directory.
"""

from __future__ import annotations

import datetime as dt
import re
import shlex
import time
from pathlib import Path

import pytest

from hagate.config import parse_config
from hagate.errors import HagateError
from hagate.events.store import EVENTS_NAME, append
from hagate.pki.authority import CertRecord, read_inventory
from hagate.rules.presets import PRESETS
from hagate.rules.ruleset import ruleset_from_config
from hagate.state import INVENTORY_NAME, StateDir
from hagate.watch import certcheck, periodic, rulecheck, status
from hagate.watch.certcheck import AcmeState, RevokedUse, ServerCertificate
from tests.conftest import init_state, run_hagate
from tests.geo import write_asn_db
from tests.net import free_port

NOW = time.time()
DAY = 86400.0
COMMAND = re.compile(r"`(hagate [^`]*)`")
# A hagate command outside backticks: "hagate" then one of its commands as a word.
BARE = re.compile(
    r"(?<!`)\bhagate (?:init|serve|connect|cert|rules|events|audit|acme|relay|geoip|alexa)\b(?!')"
)
RULES = {
    "skips everything": "  - {description: Everyone, expression: ssl, action: skip}\n",
    "skips with no limit": (
        "  - {description: Any Mozilla, expression: 'http.request.method eq \"GET\"', "
        "action: skip}\n"
    ),
    "a cloud network": (
        "  - {description: Amazon, expression: 'ip.src.asnum in {16509}', action: skip}\n"
    ),
    "a disabled certificate rule": (
        "  - {description: Require a client certificate, expression: "
        "'(not cf.tls_client_auth.cert_verified)', action: block, enabled: false}\n"
    ),
    "no certificate rule": "  - {description: Nothing, expression: 'ip.src eq 10.1.1.1', "
    "action: log}\n",
    "a quiet rule": "  - {description: Old app, expression: 'http.user_agent eq \"x\"', "
    "action: log}\n",
}
CERT_RULE = (
    "  - {description: Require a client certificate, expression: "
    "'(not cf.tls_client_auth.cert_verified)', action: block}\n"
)


def record(name: str, ends_in_days: float) -> CertRecord:
    start = dt.datetime.fromtimestamp(NOW - 200 * DAY, dt.UTC)
    return CertRecord(
        name=name,
        serial=1,
        sha256=f"sha-{name}",
        sha1=f"sha1-{name}",
        not_before=start,
        not_after=dt.datetime.fromtimestamp(NOW + ends_in_days * DAY, dt.UTC),
    )


def fix_texts(state: Path) -> list[str]:
    """The fix of every finding and alert kind that can name a command."""
    texts = []
    phone = record("phone", 10)
    texts += [f.fix for f in certcheck.check_client_certificates([phone], {}, NOW)]
    texts += [
        f.fix
        for f in certcheck.check_revoked_uses(
            [RevokedUse("tablet", 2, NOW - 60, "198.51.100.9", NOW - DAY)], NOW
        )
    ]
    failing = AcmeState(3, "connection refused", None)
    for source in ("acme", "hagate-ca"):
        server = ServerCertificate(source, NOW + 3 * DAY, "its issuer")
        texts += [f.fix for f in certcheck.check_server_certificate(server, failing, NOW)]
    for rules in RULES.values():
        cfg = parse_config(
            f"hostname: ha.test\nupstream: http://127.0.0.1:8123\nrules:\n{rules}"
            + ("" if "enabled: false" in rules else CERT_RULE),
            "hagate.yaml",
        )
        found = rulecheck.check_rules(
            ruleset_from_config(cfg), "ha.test", set(), 100 * DAY, NOW, geoip=set()
        )
        texts += [f.fix for f in found]
    relay_down = status.ProcessStatus(1, "connect", 0.0, NOW, 0, 3, {"r.test:443": (False, 0.0)})
    texts += [f.fix for f in status.judge_statuses([relay_down], NOW)]
    # The alerts: certificates about to expire (the client's and the server's).
    live = next(r for r in read_inventory(state / INVENTORY_NAME) if r.name == "phone")
    near = live.not_after.timestamp() - 2 * DAY
    texts += [a.message for a in periodic.expiry_alerts(StateDir(state), near)]
    with pytest.raises(HagateError) as needs:  # a preset's own error names a command too
        PRESETS["ios-companion"].expression()
    texts.append(str(needs.value))
    return texts


@pytest.fixture
def state(tmp_path: Path) -> Path:
    path = init_state(tmp_path / "state")
    for name in ("phone", "tablet"):
        assert run_hagate("cert", "issue", name, state=path).code == 0
    tablet = next(r for r in read_inventory(path / INVENTORY_NAME) if r.name == "tablet")
    assert run_hagate("cert", "revoke", "tablet", state=path).code == 0
    row = {"time": NOW - 60, "request_id": "r1", "action": "block", "client_ip": "198.51.100.9"}
    append(path / EVENTS_NAME, {**row, "cert_name": "tablet", "cert_sha256": tablet.sha256})
    # The presets read ip.src.asnum: they are added only with an ASN database.
    asn_db = write_asn_db(path.parent / "asn.mmdb", {"198.51.100.0/24": 64500})
    cfg = path / "hagate.yaml"
    cfg.write_text(cfg.read_text().replace("  asn_db:\n", f"  asn_db: {asn_db}\n"))
    # ACME's findings come with ACME configured: here with a CA that does not answer.
    cfg = path / "hagate.yaml"
    directory = f"https://127.0.0.1:{free_port()}/dir"
    cfg.write_text(cfg.read_text() + f"\ntls:\n  acme:\n    directory: {directory}\n")
    return path


def test_every_fix_names_its_commands_and_each_runs_as_printed(state: Path, tmp_path: Path) -> None:
    texts = fix_texts(state)
    kinds = {t.split(":")[0] for t in texts}
    assert len(texts) >= 15 and kinds, texts
    for text in texts:
        assert not BARE.search(COMMAND.sub("", text)), f"a command outside backticks: {text}"
    commands = sorted({c for t in texts for c in COMMAND.findall(t)})
    assert {
        "hagate events --cert tablet --since 7d",
        "hagate rules check",
        "hagate geoip update",
    } <= set(commands)
    relay = tmp_path / "relay"
    assert run_hagate("relay", "init", "--hostname", "r.test", state=relay).code == 0
    for command in commands:
        argv = shlex.split(command)
        assert argv[0] == "hagate"
        where = relay if argv[1] == "relay" else state
        r = run_hagate(*argv[1:], state=where)
        said = r.out + r.err
        assert "Usage:" not in said and "No such" not in said, f"{command}: {said}"
        if argv[1:3] in (["acme", "renew"], ["relay", "status"], ["geoip", "update"]):
            # Here the ACME CA does not answer, no relay runs and the internet is out of
            # reach: they say so plainly.
            assert r.code == 1 and r.err.startswith("error: "), f"{command}: {said}"
        else:
            assert r.code == 0, f"{command}: {said}"
        if "--cert" in argv:
            assert "198.51.100.9" in r.out  # where the revoked certificate was presented
