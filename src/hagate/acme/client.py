"""Obtaining one certificate from an ACME CA with the `acme` library (blocking; run it in a
thread). The caller holds the renewal lock.

Rules:
  1. Every failure becomes `AcmeFailure`, in plain words, with the CA's `Retry-After` when
     it gave one; nothing else escapes, so the current certificate always keeps serving.
  2. The account is registered once per directory and reused; a CA that no longer knows it
     gets a new registration with the same key.
  3. The validation certificate is published only while the order is open.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import josepy as jose
import requests
from acme import client as acme_client
from acme import crypto_util, errors, messages
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

import hagate
from hagate.acme.challenge import TLSALPN01
from hagate.acme.store import AcmeFailure, AcmeFiles
from hagate.config import AcmeSettings

ORDER_TIMEOUT = 90.0
NETWORK_TIMEOUT = 30
ACCOUNT_GONE = "urn:ietf:params:acme:error:accountDoesNotExist"
RATE_LIMITED = "urn:ietf:params:acme:error:rateLimited"


@dataclass(frozen=True)
class Issued:
    key_pem: bytes
    chain_pem: bytes


class _Network(acme_client.ClientNetwork):
    """The library's network client, remembering the last response so a refusal's
    Retry-After can be read (the library raises the problem document without it)."""

    last: requests.Response | None = None

    def _send_request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:
        self.last = None
        response = super()._send_request(method, url, *args, **kwargs)
        self.last = response
        return response

    def retry_after(self) -> float | None:
        if self.last is None or self.last.status_code not in (429, 503):
            return None
        return parse_retry_after(self.last.headers.get("Retry-After"))


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from now that a `Retry-After` value (seconds or an HTTP date) asks for."""
    if not value:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():  # "¹" is a digit to str.isdigit, not to int()
        return float(int(text))
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    base = dt.datetime.now(dt.UTC).timestamp() if now is None else now
    return max(0.0, when.timestamp() - base)


def obtain(
    files: AcmeFiles,
    settings: AcmeSettings,
    name: str,
    say: Callable[[str], None] = lambda _: None,
) -> Issued:
    """A new certificate for `name` (not yet written: the caller writes it)."""
    net = _Network(
        key=jose.jwk.JWKEC(key=files.account_key()),
        alg=jose.jwa.ES256,
        verify_ssl=settings.ca_bundle or True,  # type: ignore[arg-type]  # requests takes a CA bundle path
        user_agent=f"hagate/{hagate.__version__}",
        timeout=NETWORK_TIMEOUT,
    )
    try:
        return _obtain(net, files, settings, name, say)
    except AcmeFailure:
        raise
    except messages.Error as e:
        raise AcmeFailure(_problem(e), net.retry_after()) from None
    except errors.ValidationError as e:
        raise AcmeFailure(_validation_failure(e, name)) from None
    except errors.TimeoutError:
        raise AcmeFailure(f"the CA did not finish the order within {ORDER_TIMEOUT:.0f}s") from None
    except errors.ClientError as e:
        raise AcmeFailure(
            f"the CA's answer was not understood: {_client_error(e)}", net.retry_after()
        ) from None
    except requests.exceptions.SSLError as e:
        raise AcmeFailure(
            f"cannot verify the CA's HTTPS certificate ({_short(e)}); for a private CA set "
            "tls.acme.ca_bundle"
        ) from None
    except requests.exceptions.RequestException as e:
        raise AcmeFailure(f"cannot reach the CA at {settings.directory}: {_short(e)}") from None
    except (jose.errors.DeserializationError, ValueError, KeyError) as e:
        raise AcmeFailure(f"the CA's answer was not understood: {e}") from None
    finally:
        files.withdraw_challenge(name)


def _obtain(
    net: _Network, files: AcmeFiles, settings: AcmeSettings, name: str, say: Callable[[str], None]
) -> Issued:
    directory = acme_client.ClientV2.get_directory(settings.directory, net)
    client = acme_client.ClientV2(directory, net)
    _account(client, net, files, settings)
    key = ec.generate_private_key(ec.SECP256R1())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    csr = crypto_util.make_csr(key_pem, [name])
    try:
        order = client.new_order(csr)
    except messages.Error as e:
        if e.typ != ACCOUNT_GONE:
            raise
        say("the CA no longer knows our account: registering again")
        _register(client, net, files, settings)
        order = client.new_order(csr)
    assert net.key is not None
    for authz in order.authorizations:
        if authz.body.status == messages.STATUS_VALID:
            continue
        challenge = next((c for c in authz.body.challenges if isinstance(c.chall, TLSALPN01)), None)
        if challenge is None:
            offered = ", ".join(c.chall.typ for c in authz.body.challenges)
            raise AcmeFailure(f"the CA offers no tls-alpn-01 challenge for {name} (only {offered})")
        assert isinstance(challenge.chall, TLSALPN01)
        response, pem = challenge.chall.response_and_validation(net.key, domain=name)
        files.publish_challenge(name, pem)
        say(f"answering the CA's tls-alpn-01 challenge for {name}")
        client.answer_challenge(challenge, response)
    deadline = dt.datetime.now() + dt.timedelta(seconds=ORDER_TIMEOUT)
    done = client.poll_and_finalize(order, deadline)
    if not done.fullchain_pem:
        raise AcmeFailure("the CA finished the order without a certificate")
    return Issued(key_pem, done.fullchain_pem.encode())


def _account(
    client: acme_client.ClientV2, net: _Network, files: AcmeFiles, settings: AcmeSettings
) -> None:
    stored = files.account(settings.directory)
    if stored is not None:
        net.account = messages.RegistrationResource(
            uri=stored["uri"], body=messages.Registration.from_json(stored.get("body") or {})
        )
        return
    _register(client, net, files, settings)


def _register(
    client: acme_client.ClientV2, net: _Network, files: AcmeFiles, settings: AcmeSettings
) -> None:
    net.account = None
    registration = messages.NewRegistration.from_data(
        email=settings.email, terms_of_service_agreed=True
    )
    try:
        account = client.new_account(registration)
    except errors.ConflictError as e:  # the key already has an account: use it
        account = messages.RegistrationResource(uri=e.location, body=messages.Registration())
    net.account = account
    files.save_account(settings.directory, account.uri, account.body.to_json())


def _problem(e: messages.Error) -> str:
    kind = (e.typ or "").rsplit(":", 1)[-1] or "error"
    detail = e.detail or e.title or "no detail given"
    if e.typ == RATE_LIMITED:
        return f"the CA's rate limit: {detail}"
    return f"the CA refused ({kind}): {detail}"


def _validation_failure(e: errors.ValidationError, name: str) -> str:
    for authz in e.failed_authzrs:
        for challenge in authz.body.challenges:
            if challenge.error is not None:
                return (
                    f"the CA could not validate {name} with tls-alpn-01: "
                    f"{challenge.error.detail or challenge.error.typ} (is the gateway reachable "
                    f"from the internet as {name}:443?)"
                )
    return f"the CA could not validate {name}"


def _client_error(e: errors.ClientError) -> str:
    arg = e.args[0] if e.args else None
    if isinstance(arg, requests.Response):
        return f"HTTP {arg.status_code} from {arg.url}"
    if isinstance(arg, tuple) and arg and isinstance(arg[0], requests.Response):
        return f"HTTP {arg[0].status_code} from {arg[0].url}"
    return str(e)


def _short(e: Exception) -> str:
    text = str(e)
    return text if len(text) < 200 else text[:200] + "..."
