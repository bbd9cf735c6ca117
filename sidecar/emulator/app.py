"""S2's account API (`/v1/basins...`) and basin API (`/v1/streams...`), and the dispatch of the
test hooks (`/_emulator/...`, in `hooks`): the emulator is both the account and the basin endpoint.
`handle` answers one protocol-neutral `Exchange`; the HTTP/1.1 and HTTP/2 fronts call it alike.

Every `/v1` request goes through `_s2_api`: route, count, authorize, resolve the basin, take a
fault, run the operation. Operations return a `Reply` (sent whole, shaped by a fault when one
was taken) or, for sessions, write their own streaming response.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import unquote

from sidecar.errors import ProtocolError, S2Error
from sidecar.types import (
    MAX_BATCH_BYTES,
    MAX_BATCH_RECORDS,
    MAX_UNARY_WAIT_SECONDS,
    U64_MAX,
    AppendRecord,
    ReadQuery,
    SeqNum,
    StreamPosition,
)
from sidecar.wire import query as wire_query
from sidecar.wire import s2s, sse
from sidecar.wire.json import Format, append_input_from_json, batch_to_json, dumps, position_to_json, tail_to_json
from sidecar.wire.names import basin_name_problem, stream_name_problem
from sidecar.wire.protobuf import decode_append_input, encode_append_ack, encode_batch, records_from_fields

from . import encryption, hooks, s2_configs
from .encryption import RecordCipher
from .exchange import BodyTooLarge, Exchange, media_type
from .faults import Action, Corrupt, Cut, Fail, Stall
from .output import PROTOBUF, CutConnection, Output, Reply, compress_reply, cut_of, error_payload, send_reply
from .sessions import (
    COMPRESS_MIN_BYTES,
    Heartbeats,
    S2SWriter,
    SessionWriter,
    SSEWriter,
    deleted_error,
    run_session,
    terminal_trim,
)
from .state import EmulatorState
from .store import MAX_FENCING_TOKEN_BYTES, Stream

log = logging.getLogger("sidecar.emulator")

MAX_LIST_LIMIT = 1000
PROTOBUF_TYPES = frozenset({"application/protobuf", "application/x-protobuf"})


@dataclass(frozen=True, slots=True)
class Target:
    """What a `/v1` request asks for: the operation, its kind (faults, stats) and the stream."""

    op: str
    kind: str
    stream: str | None = None
    mode: str | None = None  # reads: "s2s", "sse", "protobuf" or "json"
    basin: str | None = None  # account API: the basin named in the path

    @property
    def account(self) -> bool:
        """An account API operation (`/v1/basins...`): no `s2-basin` header needed."""
        return self.kind == "basins"

    def fault_subject(self, query: Mapping[str, str]) -> tuple[str, str | None]:
        """The kind and stream faults match on: a listing is kind `list`, its `prefix` its stream."""
        if self.op == "list":
            return "list", query.get("prefix", "")
        return self.kind, self.stream

    @property
    def stat_names(self) -> tuple[str, ...]:
        if self.op == "read":
            detail = f"session_{self.mode}" if self.kind == "session" else f"read_{self.mode}"
            return (self.kind, detail)
        return (self.kind,) if self.op == self.kind else (self.kind, self.op)


def _media_types(value: str) -> list[str]:
    return [part.split(";", 1)[0].strip().lower() for part in value.split(",")]


def read_mode(headers: Mapping[str, str]) -> str:
    """S2's choice of read response, by request headers, in S2's order."""
    if _media_types(headers.get("Content-Type", ""))[0] == s2s.CONTENT_TYPE:
        return "s2s"
    # Only the first media type of Accept counts, for sessions and unary reads alike
    # (S2: api/src/mime.rs, one `JsonOrProto` from the first Accept entry).
    accept = _media_types(headers.get("Accept", ""))[0]
    if accept == "text/event-stream":
        return "sse"
    if accept in PROTOBUF_TYPES:
        return "protobuf"
    return "json"


def _path_name(segment: str, what: str) -> str:
    try:
        return unquote(segment, errors="strict")
    except UnicodeDecodeError:
        raise S2Error(400, "bad_path", f"{what} in the path is not valid percent-encoded UTF-8") from None


def _route_account(method: str, raw_path: str) -> Target:
    """`/v1/basins` (list, create) and `/v1/basins/{basin}` (config, create-or-reconfigure, delete)."""
    if raw_path.rstrip("/") == "/v1/basins":
        if method == "GET":
            return Target("list_basins", "basins")
        if method == "POST":
            return Target("create_basin", "basins")
        raise S2Error(405, "method_not_allowed", f"{method} is not allowed on /v1/basins")
    first, *sub = raw_path[len("/v1/basins/") :].split("/")
    op = {"GET": "basin_config", "PUT": "ensure_basin", "DELETE": "delete_basin", "PATCH": "reconfigure_basin"}.get(
        method
    )
    if sub or op is None:
        raise S2Error(404, "not_found", f"no such endpoint: {method} {raw_path[:200]}")
    return Target(op, "basins", basin=_path_name(first, "basin name"))


def _route(method: str, raw_path: str, headers: Mapping[str, str]) -> Target:
    # Split the raw path before unquoting: a stream name may contain an encoded "/".
    if raw_path.rstrip("/") == "/v1/basins" or raw_path.startswith("/v1/basins/"):
        return _route_account(method, raw_path)
    if raw_path.rstrip("/") == "/v1/streams":
        if method == "GET":
            return Target("list", "streams")
        if method == "POST":
            return Target("create", "streams")
        raise S2Error(405, "method_not_allowed", f"{method} is not allowed on /v1/streams")
    if not raw_path.startswith("/v1/streams/"):
        raise S2Error(404, "not_found", f"no such endpoint: {raw_path[:200]}")
    first, *sub = raw_path[len("/v1/streams/") :].split("/")
    stream = _path_name(first, "stream name")
    match method, sub:
        case "GET", []:
            return Target("config", "streams", stream)
        case "PUT", []:
            return Target("ensure", "streams", stream)
        case "DELETE", []:
            return Target("delete", "streams", stream)
        case "PATCH", []:
            return Target("reconfigure", "streams", stream)
        case "GET", ["records"]:
            mode = read_mode(headers)
            return Target("read", "session" if mode in ("s2s", "sse") else "read", stream, mode)
        case "POST", ["records"]:
            return Target("append", "append", stream)
        case "GET", ["records", "tail"]:
            return Target("tail", "tail", stream)
    raise S2Error(404, "not_found", f"no such endpoint: {method} {raw_path[:200]}")


def _basin_from(headers: Mapping[str, str]) -> str | None:
    """`s2-basin`, else the `{basin}.` prefix of a Host name (not of an IP address)."""
    if (basin := headers.get("s2-basin")) is not None:
        return basin
    host = headers.get("Host", "")
    if host.startswith("["):  # IPv6 literal
        return None
    hostname = host.rsplit(":", 1)[0]
    if "." not in hostname:
        return None
    with contextlib.suppress(ValueError):
        ipaddress.ip_address(hostname)
        return None
    return hostname.split(".", 1)[0]


def _authorize(headers: Mapping[str, str], token: str | None) -> None:
    if token is None:
        return
    scheme, _, given = headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise S2Error(401, "authn", "missing bearer token")
    # Constant time; and the message never repeats what was given.
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise S2Error(401, "authn", "invalid bearer token")


async def _s2_api(request: Exchange, state: EmulatorState) -> None:
    basin = _basin_from(request.headers)
    try:
        target = _route(request.method, request.raw_path, request.headers)
    except S2Error as err:
        state.stats.count(f"{basin or ''}/")
        return await send_reply(request, Reply.error(err), None, state.stopping)
    if target.account:
        basin = target.basin
    state.stats.count(f"{basin or ''}/{target.stream or ''}", *target.stat_names)
    action: Action | None = None
    result: Reply | None
    try:
        _authorize(request.headers, state.config.require_token)
        if target.account:
            if basin is not None and (problem := basin_name_problem(basin)):
                raise S2Error(400, "bad_path", f"invalid basin {basin[:60]!r}: {problem}")
            result = await _ACCOUNT_OPERATIONS[target.op](request, state, basin)
        elif basin is None:
            raise S2Error(400, "bad_header", "missing `s2-basin` header (or a `{basin}.` prefix in Host)")
        else:
            if problem := basin_name_problem(basin):
                raise S2Error(400, "bad_header", f"invalid basin {basin[:60]!r}: {problem}")
            if target.stream is not None and (problem := stream_name_problem(target.stream)):
                raise S2Error(400, "bad_path", f"invalid stream name: {problem}")
            fault_kind, subject = target.fault_subject(request.query)
            action = state.faults.take(fault_kind, basin, subject)
            if isinstance(action, Fail):
                raise action.error
            if isinstance(action, Cut) and action.before_headers:
                await request.cut(action.error_code)  # refused before anything ran
                return
            result = await _OPERATIONS[target.op](request, state, basin, target, action)
    except S2Error as err:
        result = Reply.error(err)
    except (ConnectionError, CutConnection):
        return  # the client went away, or a fault cut the answer: there is no one to answer
    except Exception:
        log.exception("emulator: unexpected error in %s %s", request.method, request.raw_path[:200])
        result = Reply.error(S2Error(500, "other", "internal error in the emulator"))
    if result is not None:
        if action is None:  # a fault's reply is sent as the fault shapes it
            compress_reply(result, request.headers.get("Accept-Encoding"))
        await send_reply(request, result, action, state.stopping)


Operation = Callable[[Exchange, EmulatorState, str, Target, Action | None], Awaitable[Reply | None]]


async def _json_body(request: Exchange) -> Any:
    return _parse_json(await _read_body(request))


def _parse_json(data: bytes) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise S2Error(400, "bad_json", f"request body is not JSON: {e}") from None


def _is_json(content_type: str) -> bool:
    """`application/json` or `application/*+json`, by the first media type (S2: api/src/mime.rs `is_json`)."""
    kind, _, subtype = _media_types(content_type)[0].partition("/")
    return kind == "application" and (subtype == "json" or subtype.endswith("+json"))


async def _config_body(request: Exchange, *, optional: bool) -> dict[str, Any] | None:
    """The JSON body of a create or ensure, taken as S2 takes it (api/src/data.rs `Json` and
    `JsonOpt`): it needs `Content-Type: application/json` (or `+json`), else `400 bad_json`, even
    when empty. An optional body (`PUT` ensure) may be left out: no `Content-Type` at all, or an
    empty body, is None, whatever the body holds. Anything that does not parse or does not fit the
    request's shape (an object; `null` too) is also `400 bad_json`."""
    content_type = request.headers.get("Content-Type")
    if content_type is None and optional:
        return None
    if content_type is None or not _is_json(content_type):
        raise S2Error(400, "bad_json", "Expected request with `Content-Type: application/json`")
    data = await _read_body(request)
    if optional and not data:
        return None
    body = _parse_json(data)
    if not isinstance(body, dict):
        raise S2Error(400, "bad_json", f"expected a JSON object, got {type(body).__name__}")
    return body


async def _read_body(request: Exchange, code: str = "bad_json") -> bytes:
    """The whole body; over S2's limit, `400` with `code`, the body's kind (`bad_json`, `bad_proto`)."""
    try:
        return await request.body()
    except BodyTooLarge as e:
        raise S2Error(400, code, e.message) from None


_LIST_PARAMS = frozenset({"prefix", "start_after", "limit"})


def _list_params(request: Exchange) -> tuple[str, str, int]:
    """`prefix`, `start_after` and `limit` of a list request, by S2's rules."""
    query = request.query
    wire_query.refuse_repeated(query.items(), _LIST_PARAMS)
    prefix, start_after, raw_limit = query.get("prefix", ""), query.get("start_after", ""), query.get("limit")
    limit = MAX_LIST_LIMIT
    if raw_limit is not None:
        if not raw_limit.isascii() or not raw_limit.isdigit():
            raise S2Error(400, "bad_query", "invalid `limit`: expected an integer from 0 to 1000")
        limit = min(int(raw_limit), MAX_LIST_LIMIT)  # S2 caps larger limits
    if start_after and prefix and start_after < prefix:
        raise S2Error(422, "invalid", "`start_after` must be greater than or equal to `prefix`")
    return prefix, start_after, limit


async def _list(request: Exchange, state: EmulatorState, basin: str, target: Target, action: Action | None) -> Reply:
    streams, more = state.store.list(basin, *_list_params(request))
    return Reply.json({"streams": [s.info() for s in streams], "has_more": more})


PROVISION_RESULT = "s2-provision-result"  # S2: common/src/resources.rs `PROVISION_RESULT_HEADER`
MAX_REQUEST_TOKEN_BYTES = 36  # S2: common/src/resources.rs `MAX_REQUEST_TOKEN_LENGTH`


def _provisioned(info: dict[str, Any], status: int, outcome: str) -> Reply:
    """A create's or ensure's answer: the info, and whether it was `created`, `updated` or a `noop`."""
    reply = Reply.json(info, status)
    reply.headers[PROVISION_RESULT] = outcome
    return reply


def _request_token(headers: Mapping[str, str]) -> str | None:
    """`s2-request-token`: a create retried with the same one (and config) is a no-op."""
    token = headers.get("s2-request-token")
    if token is not None and len(token.encode("utf-8", "surrogateescape")) > MAX_REQUEST_TOKEN_BYTES:
        raise S2Error(
            400,
            "bad_header",
            f"Invalid header `s2-request-token`: request token was longer than {MAX_REQUEST_TOKEN_BYTES}"
            f" bytes in length: {len(token.encode('utf-8', 'surrogateescape'))}",
        )
    return token


def stream_config_header(headers: Mapping[str, str]) -> dict[str, Any] | None:
    """`s2-stream-config`: the StreamConfig (JSON) a stream created by this append or read takes
    over the basin's defaults; ignored when the stream exists, refused (400 bad_header) when it does
    not parse or validate, whether or not it would be used (S2: api/src/v1/config.rs
    `StreamConfigHeader`, parsed with the request in api/src/v1/stream/extract.rs)."""
    value = headers.get("s2-stream-config")
    if value is None:
        return None
    try:
        return s2_configs.check_stream_config(json.loads(value), "s2-stream-config")
    except ValueError as e:
        raise S2Error(400, "bad_header", f"Invalid header `s2-stream-config`: invalid JSON: {e}") from None
    except S2Error as e:
        raise S2Error(400, "bad_header", f"Invalid header `s2-stream-config`: {e.message}") from None


async def _create(request: Exchange, state: EmulatorState, basin: str, target: Target, action: Action | None) -> Reply:
    token = _request_token(request.headers)
    body = await _config_body(request, optional=False)
    assert body is not None
    if not isinstance(body.get("stream"), str):
        raise S2Error(400, "bad_json", "expected an object with a `stream` name")
    name: str = body["stream"]
    # S2 checks the name while deserializing the body (api/src/v1/stream/mod.rs `CreateStreamRequest`).
    if problem := stream_name_problem(name):
        raise S2Error(400, "bad_json", f"invalid stream name: {problem}")
    config = s2_configs.check_stream_config(body.get("config"))
    stream, outcome = state.store.provision(basin, name, config, token)
    return _provisioned(stream.info(), 201, outcome)  # 201 for a no-op too, as S2 answers it


async def _ensure(request: Exchange, state: EmulatorState, basin: str, target: Target, action: Action | None) -> Reply:
    assert target.stream is not None
    config = s2_configs.check_stream_config(await _config_body(request, optional=True))  # a bare StreamConfig
    stream, outcome = state.store.ensure(basin, target.stream, config)
    return _provisioned(stream.info(), 201 if outcome == "created" else 200, outcome)


async def _reconfigure(
    request: Exchange, state: EmulatorState, basin: str, target: Target, action: Action | None
) -> Reply:
    assert target.stream is not None
    body = await _config_body(request, optional=False)
    patch = s2_configs.check_stream_config(body, "reconfiguration")
    assert patch is not None
    stream = state.store.reconfigure(basin, target.stream, patch)
    return Reply.json(s2_configs.stream_config_json(stream.config))


async def _config(request: Exchange, state: EmulatorState, basin: str, target: Target, action: Action | None) -> Reply:
    assert target.stream is not None
    return Reply.json(s2_configs.stream_config_json(state.store.require(basin, target.stream).config))


async def _delete(request: Exchange, state: EmulatorState, basin: str, target: Target, action: Action | None) -> Reply:
    assert target.stream is not None
    state.store.delete(basin, target.stream)
    return Reply(202, b"")


async def _tail(request: Exchange, state: EmulatorState, basin: str, target: Target, action: Action | None) -> Reply:
    assert target.stream is not None
    # S2 opens a stream for a tail check as for a read: `create_stream_on_read` applies
    # (lite/src/backend/read.rs `open_for_check_tail`).
    return Reply.json(tail_to_json(state.store.open(basin, target.stream, "create_stream_on_read").tail))


def _check_token(token: str | None, *, json_body: bool = False) -> None:
    # S2 parses the token as a `FencingToken` (at most 36 bytes) with the body, before the stream
    # is even looked up (S2: common/src/record.rs `FencingToken`): in a JSON body that fails the
    # body's deserialization (400 bad_json), in protobuf its validation (422 invalid), as s2-lite
    # (s2-cli 0.43.4) answers.
    if token is not None and len(token.encode("utf-8", "surrogatepass")) > MAX_FENCING_TOKEN_BYTES:
        status, code = (400, "bad_json") if json_body else (422, "invalid")
        raise S2Error(status, code, f"`fencing_token` exceeds {MAX_FENCING_TOKEN_BYTES} bytes")


def _append_input_from_protobuf(data: bytes) -> tuple[list[AppendRecord], int | None, str | None]:
    """A protobuf `AppendInput`, refused as S2 (prost) refuses it: `400 bad_proto`."""
    if _overflows_u64(data, nested=True):
        # prost refuses a varint past 2^64-1 ("invalid varint"); upb would wrap it to a small number.
        raise S2Error(400, "bad_proto", "failed to decode Protobuf message: invalid varint")
    try:
        return decode_append_input(data)
    except ProtocolError as e:
        raise S2Error(400, "bad_proto", str(e)) from None


def _overflows_u64(message: bytes, *, nested: bool) -> bool:
    """Whether a varint of `AppendInput` (`nested`: its `records` too, field 1) exceeds 2^64-1: ten
    bytes, the last above 1. A message that does not parse is left to the decoder."""
    i, end = 0, len(message)
    while i < end:
        key, i = _varint(message, i)
        if key is None:
            return False
        field, wire_type = key >> 3, key & 7
        if wire_type == 0:
            start = i
            value, i = _varint(message, i)
            if value is None:
                return False
            if i - start == 10 and message[i - 1] > 1:
                return True
        elif wire_type == 2:
            length, i = _varint(message, i)
            if length is None or i + length > end:
                return False
            if nested and field == 1 and _overflows_u64(message[i : i + length], nested=False):
                return True
            i += length
        elif wire_type in (1, 5):
            i += 8 if wire_type == 1 else 4
        else:
            return False
    return False


def _varint(data: bytes, i: int) -> tuple[int | None, int]:
    """The varint at `i` (at most ten bytes) and the index after it; None when there is none."""
    value = shift = 0
    for j in range(i, min(i + 10, len(data))):
        value |= (data[j] & 0x7F) << shift
        shift += 7
        if data[j] < 0x80:
            return value, j + 1
    return None, i


async def _append_session(
    request: Exchange, state: EmulatorState, basin: str, target: Target, action: Action | None
) -> Reply | None:
    """An s2s append session (`POST .../records` with `Content-Type: s2s/proto`): AppendInput
    frames in, one AppendAck frame out per input, in order; an error ends it with a terminal frame
    (S2: api/src/v1/stream/s2s.rs)."""
    assert target.stream is not None
    key = encryption.key_header(request.headers)
    created_config = stream_config_header(request.headers)
    # A missing stream is a plain 404, a missing or malformed key a plain 400, as S2 opens the
    # stream and resolves the key before it answers (lite/src/handlers/v1/records.rs `append`).
    state.store.open(basin, target.stream, "create_stream_on_append", created_config).record_cipher(key)
    await request.start(200, {"content-type": s2s.CONTENT_TYPE, "cache-control": "no-cache, no-transform"})
    out = Output(request, *cut_of(action))
    compression = s2s_compression(request.headers.get("Accept-Encoding", ""))
    decoder = s2s.FrameDecoder()
    try:
        while chunk := await request.chunk():
            for frame in decoder.feed(chunk):
                if frame.terminal:
                    raise S2Error(400, "bad_frame", "a client does not send terminal s2s frames")
                records, match, token = _append_input_from_protobuf(frame.body)
                _check_token(token)
                ack = state.store.append(basin, target.stream, records, match, token, key)
                payload = encode_append_ack(ack.start, ack.end, ack.tail)
                compress = compression if len(payload) >= COMPRESS_MIN_BYTES else s2s.Compression.NONE
                await out.write(s2s.encode_frame(payload, compression=compress))
        if decoder.pending:
            raise S2Error(400, "bad_frame", "the request ended inside an s2s frame")
    except ProtocolError as e:
        await out.write(s2s.encode_terminal(400, dumps(error_payload(S2Error(400, "bad_frame", str(e))))))
    except S2Error as err:
        await out.write(s2s.encode_terminal(err.status, dumps(error_payload(err))))
    await request.end()
    return None


async def _append(
    request: Exchange, state: EmulatorState, basin: str, target: Target, action: Action | None
) -> Reply | None:
    assert target.stream is not None
    if media_type(request.headers) == s2s.CONTENT_TYPE:
        return await _append_session(request, state, basin, target, action)
    # S2 parses the key header before the body (api/src/v1/stream/extract.rs `AppendRequest`).
    key = encryption.key_header(request.headers)
    created_config = stream_config_header(request.headers)
    fmt = Format.from_header(request.headers.get("s2-format"))
    if media_type(request.headers) in PROTOBUF_TYPES:
        records, match, token = _append_input_from_protobuf(await _read_body(request, "bad_proto"))
        _check_token(token)
    else:
        records, match, token = append_input_from_json(await _json_body(request), fmt)
        # S2's u64 fields take no larger number: serde_json reads one as a float, "invalid type:
        # floating point `1.8446744073709552e+19`, expected u64" (s2-lite 0.43.4).
        if any(r.timestamp is not None and r.timestamp > U64_MAX for r in records) or (match or 0) > U64_MAX:
            raise S2Error(400, "bad_json", "invalid append body: a number larger than a u64")
        _check_token(token, json_body=True)
    ack = state.store.append(basin, target.stream, records, match, token, key, created_config)
    if PROTOBUF_TYPES.intersection(_media_types(request.headers.get("Accept", ""))):
        return Reply(200, encode_append_ack(ack.start, ack.end, ack.tail), PROTOBUF)
    return Reply.json(
        {"start": position_to_json(ack.start), "end": position_to_json(ack.end), "tail": position_to_json(ack.tail)}
    )


async def _read(
    request: Exchange, state: EmulatorState, basin: str, target: Target, action: Action | None
) -> Reply | None:
    assert target.stream is not None and target.mode is not None
    key = encryption.key_header(request.headers)
    created_config = stream_config_header(request.headers)
    query = wire_query.from_params(request.query)
    fmt = Format.from_header(request.headers.get("s2-format"))
    stream = state.store.open(basin, target.stream, "create_stream_on_read", created_config)
    if target.kind == "session":
        await _session(request, state, stream, key, query, target.mode, fmt, action)
        return None
    return await _one_shot(state, stream, stream.record_cipher(key), query, target.mode, fmt)


async def _long_poll(state: EmulatorState, stream: Stream, pos: int, wait: float) -> bool | None:
    """Wait at the tail until a record arrives (True) or `wait` seconds pass (False); None: the
    stream was deleted, with `deletion_ends_reads_as_s2_lite` (else that is 404)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    with state.live.open(stream, session=False) as live:
        while True:
            live.wake.clear()
            if live.close_error is not None:
                raise live.close_error
            if stream.deleted:
                if state.config.deletion_ends_reads_as_s2_lite:
                    return None
                raise deleted_error(stream, False)
            if stream.next_seq > pos:
                return True
            left = deadline - loop.time()
            if left <= 0:
                return False
            await live.wait(left)


async def _one_shot(
    state: EmulatorState, stream: Stream, cipher: RecordCipher | None, query: ReadQuery, mode: str, fmt: Format
) -> Reply:
    # One-shot reads are always bounded (capped at one batch), so they follow only with wait > 0.
    wait = min(query.wait or 0, MAX_UNARY_WAIT_SECONDS)
    pos = stream.start_index(query, can_follow=wait > 0)
    count = MAX_BATCH_RECORDS if query.limit.count is None else min(query.limit.count, MAX_BATCH_RECORDS)
    nbytes = MAX_BATCH_BYTES if query.limit.bytes is None else min(query.limit.bytes, MAX_BATCH_BYTES)
    end = pos
    tail: StreamPosition | None = None
    if count > 0 and nbytes > 0:  # count=0 or bytes=0 ends at once, with an empty batch
        if pos == stream.next_seq:
            arrived = await _long_poll(state, stream, pos, wait)
            if arrived is None:
                # s2-lite answers the deletion's trim command, served live (S2 merges the batches a
                # unary read got before its session ended: lite/src/handlers/v1/records.rs).
                trim, _size, trim_tail = terminal_trim(stream)
                if mode == "protobuf":
                    return Reply(200, encode_batch([trim], trim_tail), PROTOBUF)
                return Reply.json(batch_to_json(records_from_fields([trim]), trim_tail, fmt))
            if not arrived:
                # The wait ran out: S2 answers an empty batch without a tail.
                return Reply(200, b"", PROTOBUF) if mode == "protobuf" else Reply.json({"records": []})
            # Served from the live path: S2's live batches carry the tail, catch-up batches do not
            # (S2: lite/src/backend/read.rs `tail: Some(tail)` only under `follow`).
            tail = stream.tail
        end = stream.end_index(pos, count, nbytes, query.until)
    if end == pos:
        tail = None  # an empty answer (count=0, too-small bytes, until) never carries one
    # A key that did not seal these records fails the whole read (S2 decrypts the batch before it answers).
    fields = stream.read_fields(pos, end, cipher)
    state.stats.served(f"{stream.basin}/{stream.name}", end - pos, sum(map(len, fields)))
    if mode == "protobuf":
        return Reply(200, encode_batch(fields, tail), PROTOBUF)
    records = records_from_fields(fields) if end > pos else []
    return Reply.json(batch_to_json(records, tail, fmt))


def _offered_encodings(value: str) -> set[str]:
    """Content codings an `Accept-Encoding` offers (q=0 means refused)."""
    offered = set()
    for part in value.split(","):
        name, _, params = part.strip().partition(";")
        if params.replace(" ", "").lower() not in ("q=0", "q=0.0", "q=0.00", "q=0.000"):
            offered.add(name.strip().lower())
    return offered


def s2s_compression(accept_encoding: str) -> s2s.Compression:
    """s2s frames' compression: zstd when offered, else gzip, else none (S2's s2s framing
    supports `zstd` and `gzip`; S2: api/src/v1/stream/s2s.rs prefers zstd)."""
    offered = _offered_encodings(accept_encoding)
    if "zstd" in offered:
        return s2s.Compression.ZSTD
    if "gzip" in offered:
        return s2s.Compression.GZIP
    return s2s.Compression.NONE


async def _session(
    request: Exchange,
    state: EmulatorState,
    stream: Stream,
    key: str | None,
    query: ReadQuery,
    mode: str,
    fmt: Format,
    action: Action | None,
) -> None:
    delivered = (0, 0)
    if mode == "sse" and (last_id := request.headers.get("Last-Event-ID", "").strip()):
        try:
            last_seq, count, nbytes = sse.parse_event_id(last_id)
        except ValueError as e:
            raise S2Error(400, "bad_header", f"invalid Last-Event-ID: {e}") from None
        # Resume after the last delivered record; run_session reduces count/bytes by what was delivered
        # and, as S2 does, counts the new event ids from zero (S2: lite/src/handlers/v1/records.rs
        # `apply_last_event_id`, then `processed` starts at zero).
        query = replace(query, start=SeqNum(last_seq + 1))
        delivered = (count, nbytes)
    cipher = stream.record_cipher(key)
    start = stream.start_index(query, query.can_follow)  # errors so far are plain HTTP answers

    # Sessions must not be cached, transformed or buffered by a proxy (nginx honours x-accel-buffering).
    headers = {
        "content-type": "text/event-stream" if mode == "sse" else s2s.CONTENT_TYPE,
        "cache-control": "no-cache, no-transform",
        "x-accel-buffering": "no",
    }
    await request.start(200, headers)
    out = Output(request, *cut_of(action))
    corrupt = isinstance(action, Corrupt)
    writer: SessionWriter = (
        SSEWriter(out, fmt, corrupt)
        if mode == "sse"
        else S2SWriter(out, s2s_compression(request.headers.get("Accept-Encoding", "")), corrupt)
    )
    heartbeats = Heartbeats(state.config.heartbeat_min, state.config.heartbeat_max)
    stall = action.seconds if isinstance(action, Stall) else 0.0
    with state.live.open(stream, session=True) as live:
        try:
            await run_session(
                stream,
                cipher,
                query,
                start,
                writer,
                live,
                heartbeats,
                delivered,
                stall,
                state.config.deletion_ends_reads_as_s2_lite,
            )
        except (CutConnection, ConnectionError):
            return None  # cut on purpose, or the client went away: nothing more to say
        except Exception:
            log.exception("emulator: unexpected error in a %s session on %s", mode, stream.name)
            with contextlib.suppress(Exception):
                await writer.error(S2Error(500, "other", "internal error in the emulator"))
    with contextlib.suppress(ConnectionError):
        await request.end()
    return None


# The account API (S2: lite/src/handlers/v1/basins.rs).

AccountOperation = Callable[[Exchange, EmulatorState, str | None], Awaitable[Reply]]


async def _list_basins(request: Exchange, state: EmulatorState, basin: str | None) -> Reply:
    basins, more = state.store.list_basins(*_list_params(request))
    return Reply.json({"basins": [b.info() for b in basins], "has_more": more})


async def _create_basin(request: Exchange, state: EmulatorState, basin: str | None) -> Reply:
    token = _request_token(request.headers)
    body = await _config_body(request, optional=False)
    assert body is not None
    if not isinstance(body.get("basin"), str):
        raise S2Error(400, "bad_json", "expected an object with a `basin` name")
    name: str = body["basin"]
    # Checked while deserializing the body, as S2 does (common/src/basin.rs `BasinName`).
    if problem := basin_name_problem(name):
        raise S2Error(400, "bad_json", f"invalid basin name: {problem}")
    config = s2_configs.check_basin_config(body.get("config"))
    created, outcome = state.store.provision_basin(name, config, token)
    return _provisioned(created.info(), 201, outcome)


async def _ensure_basin(request: Exchange, state: EmulatorState, basin: str | None) -> Reply:
    assert basin is not None
    body = await _config_body(request, optional=True)
    config = s2_configs.check_basin_config((body or {}).get("config"))
    ensured, outcome = state.store.ensure_basin_config(basin, config)
    return _provisioned(ensured.info(), 201 if outcome == "created" else 200, outcome)


async def _reconfigure_basin(request: Exchange, state: EmulatorState, basin: str | None) -> Reply:
    assert basin is not None
    body = await _config_body(request, optional=False)
    return Reply.json(s2_configs.basin_config_json(state.store.patch_basin(basin, body).config))


async def _basin_config(request: Exchange, state: EmulatorState, basin: str | None) -> Reply:
    assert basin is not None
    return Reply.json(s2_configs.basin_config_json(state.store.basin(basin).config))


async def _delete_basin(request: Exchange, state: EmulatorState, basin: str | None) -> Reply:
    assert basin is not None
    state.store.delete_basin(basin)
    return Reply(202, b"")


_ACCOUNT_OPERATIONS: dict[str, AccountOperation] = {
    "list_basins": _list_basins,
    "create_basin": _create_basin,
    "ensure_basin": _ensure_basin,
    "basin_config": _basin_config,
    "delete_basin": _delete_basin,
    "reconfigure_basin": _reconfigure_basin,
}

_OPERATIONS: dict[str, Operation] = {
    "list": _list,
    "create": _create,
    "ensure": _ensure,
    "config": _config,
    "delete": _delete,
    "reconfigure": _reconfigure,
    "tail": _tail,
    "append": _append,
    "read": _read,
}


# Everything that arrives, over either protocol.


async def handle(request: Exchange, state: EmulatorState) -> None:
    """Answer one request: S2's API under `/v1/`, the test hooks under `/_emulator/`."""
    if request.raw_path.startswith("/v1/"):
        await _s2_api(request, state)
    elif request.raw_path.startswith("/_emulator/"):
        await hooks.handle_hook(request, state)
    else:
        error = S2Error(404, "not_found", f"no such endpoint: {request.raw_path[:200]}")
        await send_reply(request, Reply.error(error), None, state.stopping)
