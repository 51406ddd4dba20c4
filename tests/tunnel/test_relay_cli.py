"""The relay's commands: init, token, revoke-token (no running relay needed)."""

from __future__ import annotations

import hashlib
import json
import stat
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from hagate.tunnel import token as tokens
from tests.conftest import run_hagate


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_init_writes_private_keys_0600_and_prints_the_certificate_fingerprint(
    tmp_path: Path,
) -> None:
    state = tmp_path / "relay"
    r = run_hagate("relay", "init", "--hostname", "Relay.Example.net", state=state)
    assert r.code == 0, r.err
    assert mode(state) == 0o700
    assert mode(state / "relay-signing.key") == 0o600 and mode(state / "relay.key") == 0o600
    cert = x509.load_pem_x509_certificate((state / "relay.crt").read_bytes())
    der = cert.public_bytes(Encoding.DER)
    assert r.out.strip().splitlines()[-1] == hashlib.sha256(der).hexdigest()
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["relay.example.net"]


def test_init_never_replaces_an_existing_relay(tmp_path: Path) -> None:
    state = tmp_path / "relay"
    assert run_hagate("relay", "init", "--hostname", "relay.example.net", state=state).code == 0
    key = (state / "relay-signing.key").read_bytes()
    again = run_hagate("relay", "init", "--hostname", "other.example.net", state=state)
    assert again.code == 1 and "already holds a relay" in again.err
    assert (state / "relay-signing.key").read_bytes() == key


def test_token_is_alone_on_stdout_and_valid_for_the_days_asked(tmp_path: Path) -> None:
    state = tmp_path / "relay"
    assert run_hagate("relay", "init", "--hostname", "relay.example.net", state=state).code == 0
    r = run_hagate("relay", "token", "--hostname", "HA.example.com", "--days", "7", state=state)
    assert r.code == 0 and r.out.count("\n") == 1
    claim = tokens.read_claim(r.out.strip())
    assert claim.hostname == "ha.example.com"
    assert abs(claim.expires - (time.time() + 7 * 86400)) < 60
    assert claim.id in r.err  # the id, to revoke it later, goes to stderr


def test_revoke_takes_an_id_or_the_token_and_refuses_a_mistyped_id(tmp_path: Path) -> None:
    state = tmp_path / "relay"
    assert run_hagate("relay", "init", "--hostname", "relay.example.net", state=state).code == 0
    first = run_hagate("relay", "token", "--hostname", "ha.example.com", state=state).out.strip()
    second = run_hagate("relay", "token", "--hostname", "ha.example.com", state=state).out.strip()
    first_id, second_id = tokens.read_claim(first).id, tokens.read_claim(second).id
    assert run_hagate("relay", "revoke-token", first_id, state=state).code == 0
    assert run_hagate("relay", "revoke-token", second, state=state).code == 0  # the token itself
    for typo in (first_id[:-1], first_id.upper() + "x", "hg1.not-a.token"):
        bad = run_hagate("relay", "revoke-token", typo, state=state)
        assert bad.code == 1 and bad.err.startswith("error: ")
    revoked = json.loads((state / "revoked-tokens.json").read_text())
    assert sorted(revoked) == sorted([first_id, second_id])
