"""The bindings store: digests only, the first certificate keeps a credential, 90 days without
a sight of it and it no longer counts, a certificate holds a bounded number, unbinding is at
once for every process."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from hagate.credentials.bindings import BINDINGS_NAME, EXPIRE_AFTER, PER_CERTIFICATE, Bindings
from hagate.credentials.extract import (
    ACCESS_TOKEN,
    WEBHOOK,
    Credential,
    digest,
)
from hagate.errors import HagateError
from hagate.state import StateDir

PHONE, WATCH = "a" * 64, "b" * 64
LOGIN = Credential(ACCESS_TOKEN, digest("login", "0" * 32))
HOOK = Credential(WEBHOOK, digest("webhook", "f" * 64))


@pytest.fixture
def store(tmp_path: Path) -> Bindings:
    return Bindings(StateDir(tmp_path))


def test_bound_found_and_kept_as_a_digest_in_a_0600_file(store: Bindings, tmp_path: Path) -> None:
    assert store.find(LOGIN.digest) is None  # no file yet: nothing, and no file made
    assert not (tmp_path / BINDINGS_NAME).exists()
    assert store.bind(LOGIN, PHONE, "phone", now=1000.0)
    found = store.find(LOGIN.digest, now=1001.0)
    assert found is not None and (found.cert_name, found.kind, found.bound) == (
        "phone",
        ACCESS_TOKEN,
        1000.0,
    )
    assert stat.S_IMODE(os.stat(tmp_path / BINDINGS_NAME).st_mode) == 0o600
    assert b"0" * 32 not in (tmp_path / BINDINGS_NAME).read_bytes()  # the value is never kept
    assert found.to_json()["digest"] == LOGIN.digest[:12]


def test_the_first_certificate_keeps_it(store: Bindings) -> None:
    assert store.bind(LOGIN, PHONE, "phone", now=1000.0)
    assert not store.bind(LOGIN, WATCH, "watch", now=2000.0)
    assert store.find(LOGIN.digest, now=2001.0).cert_name == "phone"  # type: ignore[union-attr]
    assert store.bind(LOGIN, PHONE, "phone", now=3000.0)  # seen again with its own
    assert store.find(LOGIN.digest, now=3001.0).seen == 3000.0  # type: ignore[union-attr]


def test_ninety_days_unseen_and_it_no_longer_counts(store: Bindings) -> None:
    store.bind(LOGIN, PHONE, "phone", now=0.0)
    store.bind(HOOK, PHONE, "phone", now=0.0)
    store.note_use(HOOK.digest, "198.51.100.7", 6805, "DE", now=EXPIRE_AFTER - 10)
    assert store.find(LOGIN.digest, now=EXPIRE_AFTER + 1) is None
    used = store.find(HOOK.digest, now=EXPIRE_AFTER + 1)  # a use without the certificate keeps it
    assert used is not None and (used.used_ip, used.used_asn, used.used_country) == (
        "198.51.100.7",
        6805,
        "DE",
    )
    # Expired, it may be bound again, even by another certificate.
    assert store.bind(LOGIN, WATCH, "watch", now=EXPIRE_AFTER + 2)
    assert store.expire(now=2 * EXPIRE_AFTER) == 1  # the webhook, last used at 90 days
    assert store.find(LOGIN.digest, now=2 * EXPIRE_AFTER) is not None


def test_a_certificate_holds_a_bounded_number(store: Bindings) -> None:
    for i in range(PER_CERTIFICATE + 30):
        store.bind(Credential(WEBHOOK, digest("webhook", str(i))), PHONE, "phone", now=float(i))
    held = store.of_certificate(PHONE, now=1000.0)
    assert len(held) == PER_CERTIFICATE
    assert store.find(digest("webhook", "0"), now=1000.0) is None  # the oldest went
    assert store.find(digest("webhook", str(PER_CERTIFICATE + 29)), now=1000.0) is not None


def test_unbinding_is_at_once_for_every_process(store: Bindings, tmp_path: Path) -> None:
    store.bind(LOGIN, PHONE, "phone")
    store.bind(HOOK, PHONE, "phone")
    store.bind(Credential(WEBHOOK, digest("webhook", "x")), WATCH, "watch")
    assert store.unbind(PHONE, WEBHOOK) == 1
    with pytest.raises(HagateError, match="unknown kind"):
        store.unbind(PHONE, "cookie")
    code = (
        "from pathlib import Path; from hagate.credentials.bindings import Bindings; "
        "from hagate.state import StateDir; "
        f"print(Bindings(StateDir(Path({str(tmp_path)!r}))).unbind({PHONE!r}))"
    )
    assert (
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
        == "1\n"
    )
    assert store.find(LOGIN.digest) is None
    assert [b.cert_name for b in store.of_certificate(WATCH)] == ["watch"]
