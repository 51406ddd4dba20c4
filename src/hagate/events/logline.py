"""The log line per request, in text or JSON, made from an event row.

The event writer process (hagate.events.writer) writes them on the gateway's stdout, so the
gateway's event loop neither formats nor writes log lines.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any

LOG_FORMATS = ("text", "json")


def json_line(row: Mapping[str, Any]) -> str:
    return json.dumps({k: v for k, v in row.items() if v is not None}) + "\n"


def text_formatter() -> Callable[[Mapping[str, Any]], str]:
    """A text line maker; it formats the timestamp once per second."""
    second, stamp = -1, ""

    def text_line(row: Mapping[str, Any]) -> str:
        nonlocal second, stamp
        if int(row["time"]) != second:
            second = int(row["time"])
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))
        rule, cert, reason = row.get("rule"), row.get("cert_name"), row.get("reason")
        extra = (
            (f' rule="{rule}"' if rule else "")
            + (f' cert_name="{cert}"' if cert else "")
            + (f' reason="{reason}"' if reason else "")
        )
        client = row.get("client_ip") or "-"  # "-": not a client's request (a renewal, say)
        return (
            f'{stamp} {client} "{row.get("method") or "-"} {row.get("path") or "-"}" '
            f"{row.get('status') or '-'} {row['action']} {row.get('bytes_out') or 0}B "
            f"{row.get('duration_ms')}ms id={row['request_id']}{extra}\n"
        )

    return text_line


def line_maker(fmt: str) -> Callable[[Mapping[str, Any]], str]:
    return json_line if fmt == "json" else text_formatter()
