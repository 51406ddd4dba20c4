"""What a connection carries after one exchange: the one keep-alive and reuse decision.

Both of the gateway's connections of a request go through the same decision: the client's
(may it send another request?) and Home Assistant's (may it go back to the pool?). A
connection carries another message only when both messages of this exchange ended exactly at
their framing and both ends asked to keep it; anything else (a body not read to its end, a
protocol switch, a side that said `close`, a gateway shutting down) closes it, so no byte of
one message is ever taken for the start of the next. As httpcore's HTTPConnectionState, the
answer is a state, not a flag.
"""

from __future__ import annotations

import enum


class ConnState(enum.Enum):
    IDLE = "idle"  # between messages: the next request may come (or the pool may lend it)
    CLOSED = "closed"  # carries nothing more


def after_exchange(
    *,
    request_keep_alive: bool,
    response_keep_alive: bool,
    request_body_done: bool,
    response_body_done: bool = True,
    upgraded: bool = False,
    closing: bool = False,
) -> ConnState:
    """The connection's state once one request and its response are over.

    `request_keep_alive`/`response_keep_alive`: what each message's Connection field (and
    version) asked; `*_body_done`: whether that body was read or sent exactly to its end;
    `upgraded`: a protocol switch was asked or made (the bytes after it are not HTTP);
    `closing`: the gateway is shutting down.
    """
    if (
        request_keep_alive
        and response_keep_alive
        and request_body_done
        and response_body_done
        and not upgraded
        and not closing
    ):
        return ConnState.IDLE
    return ConnState.CLOSED
