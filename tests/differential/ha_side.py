"""Home Assistant's side of the differential test; runs in the Home Assistant virtualenv.

This is aiohttp as Home Assistant runs it (the version HA pins, its C parser, HA's line and
field limits), serving any method and path, with two additions:
  - every connection's bytes are recorded as they arrive (a tap on the server protocol's
    data_received), so each stream can be re-parsed offline;
  - a control listener on a second port returns the records and streams, resets them, and
    parses a stream offline with aiohttp's C parser or its pure-Python one.

Usage: python ha_side.py UPSTREAM_PORT CONTROL_PORT. Only the standard library and aiohttp.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
from typing import Any

from aiohttp import WSMsgType, web, web_protocol
from aiohttp.base_protocol import BaseProtocol
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.http_parser import HttpRequestParserPy
from aiohttp.web_exceptions import HTTPException
from aiohttp.web_request import BaseRequest
from yarl import URL

try:
    from aiohttp._http_parser import HttpRequestParser as HttpRequestParserC
except ImportError:  # pragma: no cover - HA always has the C parser
    HttpRequestParserC = None

MAX_LINE_SIZE = 24570  # homeassistant.components.http: max_line_size and max_field_size
MAX_CLIENT_SIZE = 16 * 1024 * 1024

streams: dict[int, bytearray] = {}
protocols: list[Any] = []  # kept alive so that id() stays unique while records exist
records: list[dict[str, Any]] = []
switched: set[int] = set()  # connections that switched to websocket

_original_data_received = web_protocol.RequestHandler.data_received


UPSTREAM_PORT = 0


def _tapped_data_received(self: Any, data: bytes) -> None:
    key = id(self)
    if key not in streams:
        sockname = self.transport.get_extra_info("sockname") if self.transport else None
        if not sockname or sockname[1] != UPSTREAM_PORT:  # the control listener
            _original_data_received(self, data)
            return
        streams[key] = bytearray()
        protocols.append(self)
    streams[key] += data
    _original_data_received(self, data)


web_protocol.RequestHandler.data_received = _tapped_data_received  # type: ignore[method-assign]


def _url_host(host: str | None) -> str:
    try:
        return str(URL.build(scheme="https", authority=host or "").host)
    except Exception as e:
        return f"error: {type(e).__name__}"


async def handle(request: web.Request) -> web.StreamResponse:
    conn = id(request.protocol)
    record: dict[str, Any] = {
        "conn": conn,
        "method": request.method,
        "path": request.raw_path,
        "version": f"{request.version.major}.{request.version.minor}",
        "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in request.raw_headers],
        "host": request.host,
        "url_host": _url_host(request.headers.get("Host")),
        "body": None,
        "body_error": None,
    }
    records.append(record)
    if request.raw_path.startswith("/ws") and request.headers.get("Upgrade", "").lower() == (
        "websocket"
    ):
        ws = web.WebSocketResponse()
        try:
            await ws.prepare(request)
        except HTTPException as e:
            record["body_error"] = f"websocket handshake: {e}"
            raise
        switched.add(conn)
        record["switched"] = True
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                await ws.send_str(msg.data.upper())
        return ws
    try:
        body = await request.read()
        record["body"] = base64.b64encode(body).decode()
    except Exception as e:
        record["body_error"] = f"{type(e).__name__}: {e}"
        return web.json_response({"error": record["body_error"]}, status=400)
    answer = {"path": request.raw_path, "xff": request.headers.get("X-Forwarded-For")}
    return web.json_response(answer)


# -- offline parsing ---------------------------------------------------------------------


def _message(msg: Any, payload: Any) -> dict[str, Any]:
    buffered = b"".join(getattr(payload, "_buffer", ()))
    return {
        "method": msg.method,
        "path": msg.path,
        "version": f"{msg.version.major}.{msg.version.minor}",
        "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in msg.raw_headers],
        "upgrade": bool(msg.upgrade),
        "chunked": bool(msg.chunked),
        "should_close": bool(msg.should_close),
        "body": base64.b64encode(buffered).decode(),
        "body_complete": bool(payload.is_eof()),
        "url_host": _url_host(msg.headers.get("Host")),
    }


def parse_stream(data: bytes, kind: str, was_switched: bool) -> dict[str, Any]:
    """The requests aiohttp frames in one connection's bytes.

    As HA's server does, the bytes after an upgrade request's head are the new protocol when
    the server switched, and HTTP again when it did not; unlike the server (which drops whole
    requests found there) they are all listed, so that anything after such a head shows.
    """
    cls = HttpRequestParserC if kind == "c" else HttpRequestParserPy
    assert cls is not None
    parser = _new_parser(cls)
    out: list[dict[str, Any]] = []
    pending = data
    rest = b""
    error = None
    while True:
        try:
            messages, upgraded, tail = parser.feed_data(pending)
        except Exception as e:  # HttpProcessingError, or any other failure: a finding
            message = e.message if isinstance(e, HttpProcessingError) else str(e)
            error = f"{type(e).__name__}: {message}"
            out += _before_error(cls, pending)
            break
        out.extend(_message(m, p) for m, p in messages)
        if upgraded and out and out[-1]["upgrade"]:
            out[-1]["tail"] = base64.b64encode(tail).decode()
            if was_switched:
                rest = tail
                break
            parser.set_upgraded(False)
            if not tail:
                break
            pending = tail
            continue
        break
    return {"messages": out, "error": error, "rest": base64.b64encode(rest).decode()}


def _new_parser(cls: Any) -> Any:
    """A request parser set up as HA's server sets up its own."""
    loop = asyncio.get_running_loop()
    return cls(
        BaseProtocol(loop),
        loop,
        2**16,
        max_line_size=MAX_LINE_SIZE,
        max_field_size=MAX_LINE_SIZE,
        max_headers=32768,
    )


def _before_error(cls: Any, data: bytes) -> list[dict[str, Any]]:
    """The requests framed before a parse error (feed_data loses those of the failing call)."""
    parser = _new_parser(cls)
    out: list[dict[str, Any]] = []
    for i in range(min(len(data), 1 << 18)):
        try:
            messages, upgraded, _ = parser.feed_data(data[i : i + 1])
        except Exception:
            break
        out.extend(_message(m, p) for m, p in messages)
        if upgraded:
            break
    return out


async def control(request: BaseRequest) -> web.StreamResponse:
    if request.path == "/state":
        return web.json_response(
            {
                "records": records,
                "streams": {str(k): base64.b64encode(v).decode() for k, v in streams.items()},
                "switched": [str(k) for k in switched],
            }
        )
    if request.path == "/reset":
        records.clear()
        streams.clear()
        switched.clear()
        protocols.clear()
        return web.json_response({})
    if request.path == "/parse":
        job = json.loads(await request.read())
        data = base64.b64decode(job["stream"])
        return web.json_response(parse_stream(data, job["parser"], job["switched"]))
    return web.json_response({"error": "no such control path"}, status=404)


async def main(port: int, control_port: int) -> None:
    global UPSTREAM_PORT
    UPSTREAM_PORT = port
    app = web.Application(client_max_size=MAX_CLIENT_SIZE)
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(
        app,
        handler_args={"max_line_size": MAX_LINE_SIZE, "max_field_size": MAX_LINE_SIZE},
        access_log=None,
    )
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    control_server = web.Server(control, client_max_size=1 << 30)
    control_runner = web.ServerRunner(control_server, access_log=None)
    await control_runner.setup()
    await web.TCPSite(control_runner, "127.0.0.1", control_port).start()
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
