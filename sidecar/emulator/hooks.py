"""Test hooks under `/_emulator/` (not S2): JSON in and out, no auth, over either protocol.

GET    /_emulator/stats                 request counts, open sessions
POST   /_emulator/faults                add a fault (see `faults.parse_fault`)
DELETE /_emulator/faults                clear pending faults
POST   /_emulator/reset                 clear faults and statistics
POST   /_emulator/sessions/close        end open sessions with an S2 error (?status=&code=&message=&basin=&stream=)
GET    /_emulator/http2/connections     the open HTTP/2 connections and their open streams
POST   /_emulator/http2/goaway          GOAWAY on every open HTTP/2 connection, see `_goaway`
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from sidecar.errors import S2Error
from sidecar.wire.json import dumps

from .exchange import H2_ERROR_CODES, Exchange, h2_error_code
from .faults import parse_fault
from .state import EmulatorState

Hook = Callable[[Exchange, EmulatorState], Awaitable[tuple[int, Any]]]


def _bad(message: str) -> tuple[int, Any]:
    return 400, {"code": "bad_request", "message": message}


async def _stats(ex: Exchange, state: EmulatorState) -> tuple[int, Any]:
    return 200, state.stats.to_json()


async def _add_fault(ex: Exchange, state: EmulatorState) -> tuple[int, Any]:
    try:
        fault = parse_fault(json.loads(await ex.body()))
    except (ValueError, UnicodeDecodeError) as e:  # includes malformed JSON
        return _bad(str(e))
    state.faults.add(fault)
    return 200, {"pending_faults": len(state.faults)}


async def _clear_faults(ex: Exchange, state: EmulatorState) -> tuple[int, Any]:
    state.faults.clear()
    return 200, {"pending_faults": 0}


async def _reset(ex: Exchange, state: EmulatorState) -> tuple[int, Any]:
    state.faults.clear()
    state.stats.reset()
    return 200, {}


async def _close_sessions(ex: Exchange, state: EmulatorState) -> tuple[int, Any]:
    q = ex.query
    raw_status = q.get("status", "503")
    if not raw_status.isdigit() or not 400 <= int(raw_status) <= 599:
        return _bad("`status` must be an HTTP error status")
    code = q.get("code", "server_draining")
    error = S2Error(int(raw_status), code, q.get("message", f"session closed by the emulator ({code})"))
    return 200, {"closed": state.live.close(error, q.get("basin") or None, q.get("stream") or None)}


async def _http2_connections(ex: Exchange, state: EmulatorState) -> tuple[int, Any]:
    return 200, {"connections": [c.describe() for c in state.http2]}


async def _goaway(ex: Exchange, state: EmulatorState) -> tuple[int, Any]:
    """GOAWAY on every open HTTP/2 connection (this hook's own request may come over one of them).

    `?error_code=NO_ERROR` (the default; a name or a number): graceful. The last-stream-id is the
    highest stream the connection has seen; streams at or below it finish, streams the client opens
    after it are refused (RST_STREAM REFUSED_STREAM, the client retries them on a new connection),
    and the connection closes once its last stream ends.
    Any other code (e.g. `ENHANCE_YOUR_CALM`, `INTERNAL_ERROR`): GOAWAY with that code, then the
    connection closes at once, ending every stream on it.
    `?last_stream_id=N` overrides the last-stream-id (streams above N are abandoned unanswered).
    Answers `{"connections": how many got the GOAWAY}`.
    """
    try:
        code = h2_error_code(ex.query.get("error_code"), H2_ERROR_CODES["NO_ERROR"])
    except ValueError as e:
        return _bad(str(e))
    raw_last = ex.query.get("last_stream_id")
    if raw_last is not None and not raw_last.isdigit():
        return _bad("`last_stream_id` must be a stream id")
    last = int(raw_last) if raw_last is not None else None
    connections = list(state.http2)
    for connection in connections:
        connection.goaway(code, last)
    return 200, {"connections": len(connections)}


_HOOKS: dict[str, dict[str, Hook]] = {
    "/_emulator/stats": {"GET": _stats},
    "/_emulator/faults": {"POST": _add_fault, "DELETE": _clear_faults},
    "/_emulator/reset": {"POST": _reset},
    "/_emulator/sessions/close": {"POST": _close_sessions},
    "/_emulator/http2/connections": {"GET": _http2_connections},
    "/_emulator/http2/goaway": {"POST": _goaway},
}


async def handle_hook(ex: Exchange, state: EmulatorState) -> None:
    methods = _HOOKS.get(ex.raw_path.rstrip("/"))
    hook = methods.get(ex.method) if methods is not None else None
    if methods is None:
        status, body = 404, {"code": "not_found", "message": f"no such hook: {ex.raw_path[:200]}"}
    elif hook is None:
        status, body = 405, {"code": "method_not_allowed", "message": f"{ex.method} is not allowed here"}
    else:
        status, body = await hook(ex, state)
    await ex.reply(status, {"content-type": "application/json"}, dumps(body))
