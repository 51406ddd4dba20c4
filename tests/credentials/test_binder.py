"""One process's bindings on the request path: writes throttled and off the loop, lookups
only while the certificate holding them is valid."""

from __future__ import annotations

import asyncio
from pathlib import Path

from hagate.credentials.binder import Binder, candidate_fields
from hagate.credentials.bindings import Bindings
from hagate.credentials.extract import ACCESS_TOKEN, WEBHOOK, Credential, digest
from hagate.state import StateDir

LOGIN = Credential(ACCESS_TOKEN, digest("login", "a" * 32))
HOOK = Credential(WEBHOOK, digest("webhook", "hook"))


def binder(tmp_path: Path, valid: dict[str, str]) -> tuple[Binder, Bindings, list[str]]:
    state = StateDir(tmp_path)
    store = Bindings(state)
    asked: list[str] = []

    def holder(sha256: str) -> str | None:
        asked.append(sha256)
        return valid.get(sha256)

    return Binder(store, holder, lambda: sorted(valid.values())), store, asked


def test_a_verified_request_binds_once_an_hour_and_a_lookup_needs_a_valid_holder(
    tmp_path: Path,
) -> None:
    valid = {"sha-phone": "phone"}
    b, store, asked = binder(tmp_path, valid)

    async def run() -> None:
        b.seen_with([LOGIN, HOOK], "sha-phone", "phone")
        await asyncio.sleep(0.2)  # the executor's write
        first = {x.digest: x.seen for x in store.of_certificate("sha-phone")}
        assert set(first) == {LOGIN.digest, HOOK.digest}
        b.seen_with([LOGIN], "sha-phone", "phone")  # within the hour: not written again
        await asyncio.sleep(0.2)
        assert {x.digest: x.seen for x in store.of_certificate("sha-phone")} == first
        store.unbind("sha-phone")  # `hagate cert unbind`, in another process
        await asyncio.sleep(1.1)  # the marker is looked at once a second
        b.seen_with([LOGIN], "sha-phone", "phone")  # so the next one binds again
        await asyncio.sleep(0.2)
        assert [x.digest for x in store.of_certificate("sha-phone")] == [LOGIN.digest]
        store.unbind("sha-phone")
        b.seen_with([LOGIN], "sha-tablet", "tablet")  # another certificate: asked of the store
        await asyncio.sleep(0.2)
        found = await b.find(LOGIN)
        assert not found.bound and found.fields()["hagate.credential.bound"] is False
        valid["sha-tablet"] = "tablet"
        found = await b.find(LOGIN)
        assert found.bound and found.cert_name == "tablet"
        assert found.fields()["hagate.credential.kind"] == "access_token"
        assert "bound to the certificate 'tablet'" in found.words()
        assert LOGIN.digest not in found.words() and LOGIN.digest[:8] in found.words()
        del valid["sha-tablet"]  # revoked: no longer counts, before anything deletes it
        assert not (await b.find(LOGIN)).bound

    asyncio.run(run())
    assert "sha-tablet" in asked


def test_a_use_without_the_certificate_is_noted_once_a_minute(tmp_path: Path) -> None:
    b, store, _ = binder(tmp_path, {"sha-phone": "phone"})

    async def run() -> None:
        b.seen_with([HOOK], "sha-phone", "phone")
        await asyncio.sleep(0.2)
        found = await b.find(HOOK)
        b.used(found, "198.51.100.7", 64500, "NL")
        b.used(found, "203.0.113.1", 64501, "US")  # within the minute: not written
        await asyncio.sleep(0.2)

    asyncio.run(run())
    (kept,) = store.of_certificate("sha-phone")
    assert (kept.used_ip, kept.used_asn, kept.used_country) == ("198.51.100.7", 64500, "NL")


def test_a_held_websocket_is_asked_about_for_each_valid_certificate() -> None:
    fields = candidate_fields("websocket", ["phone", "watch"])
    assert [f["hagate.credential.cert_name"] for f in fields] == ["phone", "watch"]
    assert all(f["hagate.credential.bound"] is True for f in fields)


def test_the_first_binding_of_a_process_deletes_the_expired_ones(tmp_path: Path) -> None:
    import sqlite3
    import time

    b, store, _ = binder(tmp_path, {"sha-phone": "phone"})
    assert store.bind(HOOK, "sha-phone", "phone", now=time.time() - 91 * 86400)

    async def run() -> None:
        b.seen_with([LOGIN], "sha-phone", "phone")
        await asyncio.sleep(0.3)

    asyncio.run(run())
    db = sqlite3.connect(store.path)
    kept = [row[0] for row in db.execute("SELECT digest FROM bindings")]
    db.close()
    assert kept == [LOGIN.digest]
