"""The renewal decision, the shared status and the files, without a CA: `obtain` is replaced
by a stand-in that fails or succeeds on demand (the real exchange is in test_pebble.py)."""

from __future__ import annotations

import multiprocessing
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hagate.acme import renewal
from hagate.acme.client import Issued
from hagate.acme.follow import FollowedContext
from hagate.acme.schedule import BACKOFF_START
from hagate.acme.store import AcmeFailure, AcmeFiles, RenewalBusy
from hagate.config import acme_settings
from hagate.pki import certs
from hagate.pki.authority import Authority
from hagate.state import StateDir
from tests.conftest import run_hagate

SETTINGS = acme_settings("https://ca.test/dir", "me@example.com", None, False)


@pytest.fixture
def files(tmp_path: Path) -> AcmeFiles:
    state = StateDir(tmp_path / "state")
    state.create()
    return AcmeFiles(state)


def pair(tmp_path: Path, name: str = "ha.test") -> Issued:
    """A certificate for `name` from a throwaway CA, as an ACME CA would return it."""
    authority = Authority.initialise(StateDir(tmp_path / f"ca-{time.monotonic_ns()}"), "ca.test")
    issued = certs.issue_server(authority.ca(), name)
    return Issued(
        certs.key_pem(issued.key), certs.cert_pem(issued.cert) + certs.cert_pem(authority.ca().cert)
    )


def test_account_key_is_created_once_0600_and_reused(files: AcmeFiles) -> None:
    first = files.account_key()
    path = files.dir / "account.key"
    assert path.stat().st_mode & 0o777 == 0o600
    assert files.account_key().private_numbers() == first.private_numbers()
    files.save_account("https://ca.test/dir", "https://ca.test/acct/1", {"status": "valid"})
    assert files.account("https://ca.test/dir")["uri"] == "https://ca.test/acct/1"  # type: ignore[index]
    assert files.account("https://other.test/dir") is None  # another CA: register there


def test_failure_records_error_and_backoff_and_keeps_the_certificate(
    files: AcmeFiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = pair(tmp_path)
    files.write_certificate(good.key_pem, good.chain_pem)
    before = files.certificate_path.read_bytes()

    def refuse(*_: object, **__: object) -> Issued:
        raise AcmeFailure("the CA refused (serverInternal): down", retry_after=None)

    monkeypatch.setattr(renewal, "obtain", refuse)
    attempt = renewal.renew(files, SETTINGS, "ha.test", force=True)
    assert attempt.outcome is renewal.Outcome.FAILED
    assert files.certificate_path.read_bytes() == before
    status = files.status()
    assert status.failures == 1 and status.last_error and "serverInternal" in status.last_error
    assert status.not_before is not None and status.last_attempt is not None
    assert status.not_before - status.last_attempt >= BACKOFF_START
    # Due (a certificate for another name is wanted) but not forced: inside the backoff
    # nobody asks the CA.
    waiting = renewal.renew(files, SETTINGS, "other.test")
    assert waiting.outcome is renewal.Outcome.WAITING and "backing off" in waiting.message


def test_force_skips_our_backoff_but_never_the_cas_retry_after(
    files: AcmeFiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[float] = []

    def limited(*_: object, **__: object) -> Issued:
        calls.append(time.time())
        raise AcmeFailure("the CA's rate limit: slow down", retry_after=3600)

    monkeypatch.setattr(renewal, "obtain", limited)
    assert renewal.renew(files, SETTINGS, "ha.test").outcome is renewal.Outcome.FAILED
    forced = renewal.renew(files, SETTINGS, "ha.test", force=True)
    assert forced.outcome is renewal.Outcome.WAITING and "the CA asked" in forced.message
    assert len(calls) == 1
    assert files.status().told_until is not None


def test_success_writes_one_0600_file_and_clears_the_error(
    files: AcmeFiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = pair(tmp_path)
    outcomes: Iterator[AcmeFailure | Issued] = iter([AcmeFailure("no"), good])

    def sometimes(*_: object, **__: object) -> Issued:
        got = next(outcomes)
        if isinstance(got, AcmeFailure):
            raise got
        return got

    monkeypatch.setattr(renewal, "obtain", sometimes)
    renewal.renew(files, SETTINGS, "ha.test")
    attempt = renewal.renew(files, SETTINGS, "ha.test", force=True)
    assert attempt.outcome is renewal.Outcome.RENEWED
    assert files.certificate_path.stat().st_mode & 0o777 == 0o600
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(files.certificate_path)  # key and chain in one file, matching
    status = files.status()
    assert status.last_error is None and status.failures == 0 and status.not_before is None
    assert [h["outcome"] for h in status.history] == ["failed", "renewed"]
    # Now not due: a second call does nothing.
    assert renewal.renew(files, SETTINGS, "ha.test").outcome is renewal.Outcome.NOT_DUE


def _hold_lock(path: str, ready: object, release: object) -> None:
    files = AcmeFiles(StateDir(Path(path)))
    with files.renewal_lock():
        ready.set()  # type: ignore[attr-defined]
        release.wait(10)  # type: ignore[attr-defined]


def test_one_renewer_at_a_time_across_processes(files: AcmeFiles) -> None:
    ctx = multiprocessing.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    other = ctx.Process(target=_hold_lock, args=(str(files.dir.parent), ready, release))
    other.start()
    try:
        assert ready.wait(20)
        with pytest.raises(RenewalBusy), files.renewal_lock():
            pass
    finally:
        release.set()
        other.join(10)
    with files.renewal_lock():
        pass


def test_a_damaged_status_file_reads_as_empty(files: AcmeFiles) -> None:
    files.dir.mkdir(exist_ok=True)
    (files.dir / "status.json").write_text("{not json")
    assert files.status().failures == 0
    (files.dir / "status.json").write_text('{"failures": 2, "from_a_newer_version": 1}')
    assert files.status().failures == 2


def test_followed_context_takes_a_new_file_and_keeps_serving_through_bad_ones(
    files: AcmeFiles, tmp_path: Path
) -> None:
    built: list[Path | None] = []

    def build(path: Path | None) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        if path is not None:
            ctx.load_cert_chain(path)
        built.append(path)
        return ctx

    follow = FollowedContext(build, files.certificate_path)
    fallback = follow.context
    assert built == [None]  # no ACME certificate yet: the fallback
    good = pair(tmp_path)
    files.write_certificate(good.key_pem, good.chain_pem)
    follow.refresh()
    first = follow.context
    assert first is not fallback and follow.reloads == 1
    files.certificate_path.write_bytes(b"damaged by hand")
    follow.refresh()
    assert follow.context is first  # a file that does not load changes nothing
    files.certificate_path.unlink()
    follow.refresh()
    assert follow.context is first
    other = pair(tmp_path)
    files.write_certificate(other.key_pem, other.chain_pem)
    follow.refresh()
    assert follow.context is not first and follow.reloads == 2


def test_cli_errors_are_plain(tmp_path: Path) -> None:
    state = tmp_path / "state"
    r = run_hagate(
        "init", "--hostname", "ha.test", "--upstream", "http://127.0.0.1:8123", state=state
    )
    assert r.code == 0, r.err
    r = run_hagate("acme", "status", state=state)
    assert r.code == 1 and "no tls.acme section" in r.err
    with (state / "hagate.yaml").open("a") as f:
        f.write("tls:\n  acme:\n    email: me@example.com\n")
    r = run_hagate("acme", "status", state=state)
    assert r.code == 0 and "none from the CA yet" in r.out and "letsencrypt.org" in r.out
    r = run_hagate("acme", "renew", state=state)
    assert r.code == 1 and "start hagate serve or hagate connect first" in r.err
    r = run_hagate("acme", "status", state=tmp_path / "nothing")
    assert r.code == 1 and "neither a gateway nor a relay" in r.err
    r = run_hagate(
        "relay",
        "init",
        "--hostname",
        "relay.test",
        "--acme-email",
        "a@b.test",
        state=tmp_path / "relay",
    )
    assert r.code == 1 and "need --acme" in r.err
    r = run_hagate(
        "relay",
        "init",
        "--hostname",
        "relay.test",
        "--acme",
        "--acme-email",
        "nope",
        state=tmp_path / "relay",
    )
    assert r.code == 1 and "bad email address" in r.err


def test_alexa_bundle_carries_hagates_ca_only_while_the_gateway_serves_its_certificate(
    tmp_path: Path,
) -> None:
    from hagate.alexa.bundle import server_ca

    state = tmp_path / "state"
    r = run_hagate(
        "init", "--hostname", "ha.test", "--upstream", "http://127.0.0.1:8123", state=state
    )
    assert r.code == 0, r.err
    sd = StateDir(state)
    assert server_ca(sd) is not None  # hagate's CA signed what the gateway serves
    files = AcmeFiles(sd)
    public = pair(tmp_path)  # stands for a public CA's certificate
    files.write_certificate(public.key_pem, public.chain_pem)
    assert server_ca(sd) is not None  # a file left over, but tls.acme is not configured
    with (state / "hagate.yaml").open("a") as f:
        f.write("tls:\n  acme:\n    email: me@example.com\n")
    assert server_ca(sd) is None


def test_alexa_handler_trusts_public_cas_beside_the_bundled_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bundle made before the gateway switched to ACME still connects afterwards: the
    handler trusts the system's CAs (here SSL_CERT_FILE, as OpenSSL reads it) and the CA in
    the bundle together."""
    from cryptography import x509

    from hagate.alexa import lambda_function

    def ca_of(issued: Issued) -> bytes:
        return certs.cert_pem(x509.load_pem_x509_certificates(issued.chain_pem)[1])

    def leaf_of(issued: Issued) -> bytes:
        return certs.cert_pem(x509.load_pem_x509_certificates(issued.chain_pem)[0])

    hagate_ca, public = ca_of(pair(tmp_path)), ca_of(pair(tmp_path))
    system = tmp_path / "system-cas.pem"
    system.write_bytes(public)
    monkeypatch.setenv("SSL_CERT_FILE", str(system))
    client = pair(tmp_path)
    creds = {
        "ca": hagate_ca.decode(),
        "client_cert": leaf_of(client).decode(),
        "client_key": client.key_pem.decode(),
    }
    ctx = lambda_function._ssl_context(creds)
    trusted = {int(str(c["serialNumber"]), 16) for c in ctx.get_ca_certs()}
    for pem in (hagate_ca, public):
        assert x509.load_pem_x509_certificate(pem).serial_number in trusted
