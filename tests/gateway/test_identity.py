"""A connection's client certificate, re-judged on every request against the inventory and
the clock (the answer is reused only while neither has changed)."""

from __future__ import annotations

import datetime as dt

from cryptography.hazmat.primitives.serialization import Encoding

from hagate.gateway.identity import ClientCertificate, Inventory
from hagate.pki.authority import Authority
from hagate.state import INVENTORY_NAME, StateDir
from tests.conftest import Setup


def test_state_follows_the_clock_and_the_inventory(setup: Setup) -> None:
    state = StateDir(setup.state)
    authority = Authority(state)
    issued, record = authority.issue("phone", days=30)
    der = issued.cert.public_bytes(Encoding.DER)
    cert = ClientCertificate(der, authority.ca_cert())
    inventory = Inventory(setup.state / INVENTORY_NAME)
    nb, na = issued.cert.not_valid_before_utc, issued.cert.not_valid_after_utc
    second = dt.timedelta(seconds=1)

    def problem(at: dt.datetime) -> str | None:
        return cert.state(inventory, at).problem

    assert problem(nb + second) is None
    assert "expired on" in str(problem(na + second))
    assert problem(na - second) is None  # back inside the validity window
    assert "not valid yet" in str(problem(nb - second))
    assert problem(nb) is None
    assert "expired on" in str(problem(na))  # not_after itself is already expired
    ok = cert.state(inventory, nb + second)
    assert ok.verified and ok.name == "phone"

    authority.revoke("phone")  # the inventory file changes: the next answer changes with it
    revoked = cert.state(inventory, nb + second)
    assert not revoked.verified
    assert "revoked" in str(revoked.problem)
    assert revoked.fields["cf.tls_client_auth.cert_revoked"] is True
    assert record.name == "phone"


def test_inside_an_event_loop_the_file_is_looked_at_once_per_turn(setup: Setup) -> None:
    """Requests handled in one loop turn all arrived before it began; the next turn sees a
    revocation made in between."""
    import asyncio

    authority = Authority(StateDir(setup.state))
    issued, _ = authority.issue("tablet")
    sha = ClientCertificate(issued.cert.public_bytes(Encoding.DER), authority.ca_cert()).sha256
    inventory = Inventory(setup.state / INVENTORY_NAME)

    async def main() -> None:
        first = inventory.lookup(sha)
        assert first is not None and not first.revoked
        authority.revoke("tablet")
        same_turn = inventory.lookup(sha)
        assert same_turn is first  # the same turn: not looked at again
        await asyncio.sleep(0)
        next_turn = inventory.lookup(sha)
        assert next_turn is not None and next_turn.revoked

    asyncio.run(main())


def test_outside_an_event_loop_every_lookup_looks_at_the_file(setup: Setup) -> None:
    authority = Authority(StateDir(setup.state))
    issued, _ = authority.issue("laptop")
    sha = ClientCertificate(issued.cert.public_bytes(Encoding.DER), authority.ca_cert()).sha256
    inventory = Inventory(setup.state / INVENTORY_NAME)
    before = inventory.lookup(sha)
    assert before is not None and not before.revoked
    authority.revoke("laptop")
    after = inventory.lookup(sha)
    assert after is not None and after.revoked
