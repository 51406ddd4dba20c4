"""Home Assistant's webhook list, read without trusting its shape, and the fields it gives."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from hagate.credentials.webhooks import (
    DOMAIN,
    REGISTERED,
    Hook,
    parse_list,
    webhook_fields,
    websocket_url,
)

LISTED = [
    {"webhook_id": "tg", "domain": "telegram_bot", "name": "t", "local_only": False,
     "allowed_methods": ["POST", "PUT"]},
    {"webhook_id": "lan", "domain": "automation", "name": "l", "local_only": True,
     "allowed_methods": ["POST"]},
    {"webhook_id": "old", "domain": "ifttt", "name": "o", "local_only": None,
     "allowed_methods": ["POST"]},
]  # fmt: skip


def test_a_webhook_is_registered_only_when_outside_calls_and_the_method_are_allowed() -> None:
    hooks = parse_list(LISTED)
    assert hooks["tg"] == Hook("telegram_bot", False, frozenset({"POST", "PUT"}))
    assert webhook_fields("/api/webhook/tg", "POST", hooks) == {
        REGISTERED: True,
        DOMAIN: "telegram_bot",
    }
    assert webhook_fields("/api/webhook/tg", "GET", hooks) == {
        REGISTERED: False,
        DOMAIN: "telegram_bot",
    }
    assert webhook_fields("/api/webhook/lan", "POST", hooks)[REGISTERED] is False  # type: ignore[index]
    # local_only unset: Home Assistant still answers it, with a deprecation warning; not ours.
    assert webhook_fields("/api/webhook/old", "POST", hooks)[REGISTERED] is False  # type: ignore[index]
    assert webhook_fields("/api/webhook/nope", "POST", hooks) == {REGISTERED: False, DOMAIN: ""}
    assert webhook_fields("/api/states", "POST", hooks) is None


def test_the_websocket_is_found_directly_and_through_the_supervisor() -> None:
    assert websocket_url("http://127.0.0.1:8123") == "http://127.0.0.1:8123/api/websocket"
    assert websocket_url("http://supervisor/core") == "http://supervisor/core/websocket"
    assert websocket_url("http://supervisor/core/") == "http://supervisor/core/websocket"


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
ITEM = st.fixed_dictionaries(
    {},
    optional={
        "webhook_id": JSON | st.text(min_size=1, max_size=8),
        "domain": JSON | st.text(max_size=8),
        "local_only": JSON,
        "allowed_methods": JSON | st.lists(st.sampled_from(["POST", "get", "PUT"]), max_size=3),
    },
)


@settings(max_examples=400, deadline=None)
@given(result=JSON | st.lists(ITEM, max_size=5))
def test_any_answer_is_read_without_a_crash_and_only_well_formed_entries_count(
    result: Any,
) -> None:
    hooks = parse_list(result)
    listed = result if isinstance(result, list) else []
    ids = {repr(i.get("webhook_id")) for i in listed if isinstance(i, dict)}
    for hook_id, hook in hooks.items():
        assert repr(hook_id) in ids and isinstance(hook.domain, str)
        assert hook.local_only in (True, False, None)
    json.dumps(sorted(hooks))  # plain strings
