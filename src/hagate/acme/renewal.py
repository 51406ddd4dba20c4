"""One renewal decision and attempt, under the lock: the part every process shares.

`renew()` is called by the gateway's renewer task (in a thread) and by `hagate acme renew`.
Rules:
  1. It holds the renewal lock for the whole attempt and reads the certificate and status
     again under it: a process that waited for another's renewal finds nothing left to do.
  2. Success writes the certificate (key and chain, one atomic file) before the status;
     failure writes only the status. The current certificate keeps serving either way.
  3. `force` renews a certificate that is not due and skips hagate's own backoff, but never
     asks the CA sooner than its Retry-After.
"""

from __future__ import annotations

import enum
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hagate.acme import schedule
from hagate.acme.store import AcmeFailure, AcmeFiles, CertificateInfo, utc
from hagate.config import AcmeSettings

if TYPE_CHECKING:
    from hagate.acme.client import Issued


class Outcome(enum.Enum):
    RENEWED = "renewed"
    FAILED = "failed"
    NOT_DUE = "not due"
    WAITING = "waiting"  # a backoff or the CA's Retry-After is not over


@dataclass(frozen=True)
class Attempt:
    outcome: Outcome
    message: str
    certificate: CertificateInfo | None = None
    not_before: float | None = None


def obtain(
    files: AcmeFiles, settings: AcmeSettings, name: str, say: Callable[[str], None]
) -> Issued:
    """One order at the CA. The ACME client (with requests and josepy) loads only when an
    order is due: a gateway without ACME, or between renewals, does not carry it in memory."""
    from hagate.acme.client import obtain as order

    return order(files, settings, name, say)


def renew_at(name: str, cert: CertificateInfo | None) -> float | None:
    """When `cert` is due for renewal; None when there is no usable one for `name`."""
    if cert is None or name not in cert.names:
        return None
    return schedule.renewal_time(cert.not_before, cert.not_after, bytes.fromhex(cert.sha256))


def next_action(files: AcmeFiles, name: str, now: float) -> float:
    """When this process should next look (read without the lock: a hint, checked again)."""
    status = files.status()
    return schedule.due(now, renew_at(name, files.certificate()), status.not_before)


def renew(
    files: AcmeFiles,
    settings: AcmeSettings,
    name: str,
    *,
    force: bool = False,
    say: Callable[[str], None] = lambda _: None,
) -> Attempt:
    """Renew if due (or forced) and allowed; RenewalBusy if another process is at it."""
    with files.renewal_lock():
        now = time.time()
        status = files.status()
        cert = files.certificate()
        when = renew_at(name, cert)
        if not force and when is not None and now < when:
            return Attempt(Outcome.NOT_DUE, f"not due before {utc(when)}", cert)
        wait_until = status.told_until if force else status.not_before
        if wait_until is not None and now < wait_until:
            who = "the CA asked" if wait_until == status.told_until else "backing off"
            return Attempt(
                Outcome.WAITING,
                f"not asking the CA before {utc(wait_until)} ({who}; last error: "
                f"{status.last_error or '-'})",
                cert,
                wait_until,
            )
        status.name, status.directory = name, settings.directory
        status.last_attempt = now
        status.attempts += 1
        try:
            issued = obtain(files, settings, name, say)
        except AcmeFailure as e:
            # A Retry-After counts from when the answer came, not from when we began asking.
            failed_at = time.time()
            status.failures += 1
            status.last_error = str(e)
            status.not_before = schedule.next_attempt(failed_at, status.failures, e.retry_after)
            status.told_until = failed_at + e.retry_after if e.retry_after is not None else None
            status.history.append(
                {"time": now, "outcome": "failed", "error": str(e), "pid": os.getpid()}
            )
            files.save_status(status)
            return Attempt(Outcome.FAILED, str(e), cert, status.not_before)
        files.write_certificate(issued.key_pem, issued.chain_pem)
        new = files.certificate()
        status.failures = 0
        status.last_error = None
        status.not_before = status.told_until = None
        status.last_success = time.time()
        status.renewed_by = os.getpid()
        status.history.append(
            {
                "time": now,
                "outcome": "renewed",
                "sha256": new.sha256 if new else None,
                "pid": os.getpid(),
            }
        )
        files.save_status(status)
        until = f", valid until {utc(new.not_after)}" if new else ""
        return Attempt(Outcome.RENEWED, f"new certificate for {name}{until}", new)
