"""The one keep-alive and reuse decision: a connection carries another message only when
both messages ended at their framing and both ends asked to keep it."""

from __future__ import annotations

import itertools

from hagate.http1.state import ConnState, after_exchange


def test_only_a_clean_exchange_both_sides_kept_leaves_the_connection_idle() -> None:
    names = (
        "request_keep_alive",
        "response_keep_alive",
        "request_body_done",
        "response_body_done",
        "upgraded",
        "closing",
    )
    for values in itertools.product((False, True), repeat=len(names)):
        facts = dict(zip(names, values, strict=True))
        state = after_exchange(**facts)
        clean = all(values[:4]) and not any(values[4:])
        assert state is (ConnState.IDLE if clean else ConnState.CLOSED), facts
