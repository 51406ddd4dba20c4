"""Pending enrolments on disk: only hashes are kept, one download per link even when two
processes race for it, files gone after use or expiry, and the server fingerprint shown only
while the certificate is hagate's own."""

from __future__ import annotations

import hashlib
import multiprocessing
import time
from pathlib import Path

import pytest

from hagate.acme.store import AcmeFiles
from hagate.enrol import mobileconfig
from hagate.enrol.issue import enrol, new_password, server_fingerprint
from hagate.enrol.store import EnrolmentStore
from hagate.pki.authority import Authority
from hagate.pki.certs import cert_pem, issue_server, key_pem
from hagate.state import StateDir
from tests.conftest import run_hagate


@pytest.fixture
def state(tmp_path: Path) -> StateDir:
    path = tmp_path / "state"
    r = run_hagate(
        "init", "--hostname", "ha.test", "--upstream", "http://127.0.0.1:8123", state=path
    )
    assert r.code == 0, r.err
    return StateDir(path)


def test_only_the_tokens_hash_is_stored(state: StateDir) -> None:
    link = enrol(state, "phone", None, 600)
    token = link.url.rsplit("/", 1)[1]
    on_disk = b"".join(p.read_bytes() for p in (state.path / "enrol").rglob("*") if p.is_file())
    assert token.encode() not in on_disk
    assert hashlib.sha256(token.encode()).hexdigest().encode() in on_disk
    assert len(token) == 32  # 192 bits, URL-safe
    for p in (state.path / "enrol").rglob("*"):
        assert p.stat().st_mode & 0o077 == 0, p  # nothing readable by others


def test_the_password_is_typeable_and_random() -> None:
    words = {new_password() for _ in range(50)}
    assert len(words) == 50
    for w in words:
        assert len(w) == 19 and w.count("-") == 3 and not set(w) & set("01ilo")


def _take(path: str, token: str, out: object) -> None:
    got = EnrolmentStore(StateDir(Path(path))).take(token, "p12")
    out.put(got is not None)  # type: ignore[attr-defined]


def test_two_processes_racing_for_one_link_get_one_download(state: StateDir) -> None:
    link = enrol(state, "phone", None, 600)
    token = link.url.rsplit("/", 1)[1]
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    procs = [ctx.Process(target=_take, args=(str(state.path), token, results)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    got = sorted(results.get(timeout=5) for _ in procs)
    assert got == [False, False, False, True]
    assert not (state.path / "enrol" / link.enrolment.digest).exists()


def test_a_new_link_for_the_same_name_ends_the_old_one(state: StateDir) -> None:
    first = enrol(state, "phone", None, 600)
    second = enrol(state, "phone", None, 600)
    store = EnrolmentStore(state)
    assert store.find(first.url.rsplit("/", 1)[1]) is None
    assert store.find(second.url.rsplit("/", 1)[1]) is not None
    assert second.replaced is not None and second.replaced.sha256 == first.record.sha256
    records = {r.sha256: r for r in Authority(state).records()}
    assert records[first.record.sha256].revoked and not records[second.record.sha256].revoked


def test_expired_links_lose_their_files(state: StateDir) -> None:
    short = enrol(state, "short", None, 5)
    store = EnrolmentStore(state)
    token = short.url.rsplit("/", 1)[1]
    assert store.find(token) is not None
    assert store.find(token, now=time.time() + 6) is None
    time.sleep(5.2)
    assert store.take(token, "p12") is None
    enrol(state, "other", None, 600)  # any change prunes what expired
    assert not (state.path / "enrol" / short.enrolment.digest).exists()


def test_the_fingerprint_and_the_ca_only_while_the_server_certificate_is_hagates(
    state: StateDir,
) -> None:
    assert server_fingerprint(state) is not None
    link = enrol(state, "mac", "macos", 600)
    assert link.enrolment.server_sha256 == server_fingerprint(state)
    # With ACME serving, devices check the certificate themselves: no fingerprint, no root.
    other = Authority.initialise(StateDir(state.path.parent / "public"), "public.test")
    leaf = issue_server(other.ca(), "ha.test")
    AcmeFiles(state).write_certificate(key_pem(leaf.key), cert_pem(leaf.cert))
    with state.config_path.open("a") as f:
        f.write("tls:\n  acme:\n    email: me@example.com\n")
    assert server_fingerprint(state) is None
    link = enrol(state, "mac2", "macos", 600)
    assert link.enrolment.server_sha256 is None
    profile = mobileconfig.profile("ha.test", "mac2", b"p12", None)
    assert b"com.apple.security.root" not in profile
