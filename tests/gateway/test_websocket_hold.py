"""A websocket held for its first message (gateway/credentials.py), with the bindings file
failing: the connection is refused in words, not left to an error (a small fake injects the
failure; the real flows are in tests/e2e/test_bound_apps.py)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sqlite3
from types import SimpleNamespace
from typing import Any

import pytest

from hagate.credentials.extract import Credential
from hagate.gateway.channel import Channel
from hagate.gateway.credentials import Claim, Refused, websocket_hold
from hagate.gateway.identity import NO_CERT
from hagate.http1.heads import parse_request_head


def masked(payload: bytes) -> bytes:
    key = os.urandom(4)
    return (
        bytes([0x81, 0x80 | len(payload)])
        + key
        + bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    )


class Failing:
    async def find(self, credential: Credential) -> Any:
        raise sqlite3.OperationalError("database is locked")


def test_a_bindings_file_that_cannot_be_read_refuses_the_websocket_in_words() -> None:
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    token = f"{b64(b'{}')}.{b64(json.dumps({'iss': 'a' * 32}).encode())}.{b64(b's')}"
    message = json.dumps({"type": "auth", "access_token": token}).encode()
    head = parse_request_head(
        b"GET /api/websocket HTTP/1.1\r\nHost: ha.test\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: x\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    gw: Any = SimpleNamespace(binder=Failing(), setup=SimpleNamespace(ruleset=None))
    conn: Any = SimpleNamespace()
    rhead: Any = SimpleNamespace(get=lambda name: None)

    async def run() -> None:
        client = Channel(asyncio.get_running_loop())
        client.data_received(masked(message))
        hold = websocket_hold(gw, head, conn, NO_CERT, Claim())
        with pytest.raises(Refused, match="the bindings could not be read"):
            await hold(client, rhead)

    asyncio.run(run())
