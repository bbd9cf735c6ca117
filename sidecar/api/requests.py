"""Request messages to the domain: validation with messages that name the field and the rule."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import NamedTuple, TypeVar

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError, Message

from sidecar._proto.s2sidecar.v1 import stream_pb2 as api_pb
from sidecar.encryption import HEADER, EncryptionKey, InvalidKey, KeyFiles
from sidecar.errors import InvalidRequest
from sidecar.types import (
    MAX_UNARY_WAIT_SECONDS,
    ReadLimit,
    ReadQuery,
    ReadStart,
    SeqNum,
    TailOffset,
    Timestamp,
)
from sidecar.wire.names import basin_name_problem, stream_name_problem
from sidecar.wire.records import decode_varint

# S2 takes any u64 tail_offset and saturates at the first record. No stream holds 2**63 records,
# so larger offsets mean the same; sending at most this keeps upstreams (and span attributes)
# that parse a signed 64-bit integer happy.
_TAIL_OFFSET_SATURATED = 2**63 - 1


M = TypeVar("M", bound=Message)


@dataclass(frozen=True)
class Undecodable:
    """A request whose bytes did not parse. The deserializer returns this instead of raising, so
    that the handler answers INVALID_ARGUMENT (grpc would answer UNKNOWN and log an error)."""

    error: InvalidRequest


def decoder(message: type[M]) -> Callable[[bytes], M | Undecodable]:
    """A request deserializer that never raises."""

    def decode(data: bytes) -> M | Undecodable:
        try:
            return message.FromString(data)
        except DecodeError:
            return Undecodable(_decode_problem(data, message))

    return decode


def decoded(request: M | Undecodable) -> M:
    if isinstance(request, Undecodable):
        raise request.error
    return request


def _decode_problem(data: bytes, message: type[Message]) -> InvalidRequest:
    """Why `data` is not a valid message: names a string field that is not UTF-8 when that is it."""
    descriptor = message.DESCRIPTOR
    what = f"not a valid {descriptor.full_name}"
    pos = 0
    try:
        while pos < len(data):
            key, pos = decode_varint(data, pos)
            number, wire_type = key >> 3, key & 7
            if wire_type == 0:
                _, pos = decode_varint(data, pos)
            elif wire_type in (1, 5):
                pos += 8 if wire_type == 1 else 4
            elif wire_type == 2:
                size, pos = decode_varint(data, pos)
                value, pos = data[pos : pos + size], pos + size
                field = descriptor.fields_by_number.get(number)
                if pos <= len(data) and field is not None and field.type == FieldDescriptor.TYPE_STRING:
                    try:
                        value.decode("utf-8")
                    except UnicodeDecodeError:
                        return InvalidRequest(
                            field.name, f"not valid UTF-8, so the request is {what} (protobuf strings are UTF-8)"
                        )
            else:
                break
    except IndexError:
        pass
    return InvalidRequest(
        "request", f"{what}: its bytes are not protobuf wire format for it (check the client's generated code)"
    )


class StreamRef(NamedTuple):
    """A NamedTuple, not a frozen dataclass: made on every call, and cheaper to build."""

    basin: str
    stream: str


# Validation runs on every call, mostly on the same few names: remember the verdicts (pure
# functions of the name; bounded, so many distinct names cost at most a few hundred KiB).
_basin_problem = functools.lru_cache(maxsize=256)(basin_name_problem)
_stream_problem = functools.lru_cache(maxsize=1024)(stream_name_problem)


def stream_ref(request: api_pb.ReadRequest | api_pb.ReadSessionRequest | api_pb.CheckTailRequest,
               default_basin: str | None) -> StreamRef:  # fmt: skip
    basin = request.basin or default_basin
    if not basin:
        raise InvalidRequest(
            "basin", "required: name the basin, or start the sidecar with --default-basin / S2_SIDECAR_DEFAULT_BASIN"
        )
    if problem := _basin_problem(basin):
        raise InvalidRequest("basin", f"{problem} (got {basin!r:.60})")
    stream = request.stream
    if not stream:
        raise InvalidRequest("stream", "required: name the stream to read")
    if problem := _stream_problem(stream):
        raise InvalidRequest("stream", problem)
    return StreamRef(basin, stream)


def read_query(request: api_pb.ReadRequest | api_pb.ReadSessionRequest, *, unary: bool) -> ReadQuery:
    """The `ReadQuery` a request asks for. Both request messages share field names and numbers."""
    start: ReadStart
    match request.WhichOneof("start"):
        case "seq_num":
            start = SeqNum(request.seq_num)
        case "timestamp":
            start = Timestamp(request.timestamp)
        case "tail_offset":
            start = TailOffset(min(request.tail_offset, _TAIL_OFFSET_SATURATED))
        case _:
            start = TailOffset(0)
    until = request.until if request.HasField("until") else None
    if isinstance(start, Timestamp) and until is not None and start.value >= until:
        raise InvalidRequest("until", f"must be greater than the start timestamp {start.value} (until is exclusive)")
    wait = request.wait if request.HasField("wait") else None
    if unary and wait is not None and wait > MAX_UNARY_WAIT_SECONDS:
        raise InvalidRequest(
            "wait", f"at most {MAX_UNARY_WAIT_SECONDS} seconds for Read, got {wait}; use ReadSession to wait longer"
        )
    return ReadQuery(
        start=start,
        limit=ReadLimit(
            count=request.count if request.HasField("count") else None,
            bytes=request.bytes if request.HasField("bytes") else None,
        ),
        until=until,
        clamp=request.clamp,
        wait=wait,
    )


def encryption_key(
    metadata: Iterable[tuple[str, str | bytes]] | None, ref: StreamRef, keys: KeyFiles | None
) -> EncryptionKey | None:
    """The key a read sends S2: the app's `s2-encryption-key` metadata, else the sidecar's key
    files' for the stream or its basin, else none. A malformed key is refused here, whatever the
    stream, with what is wrong with it (never the key itself)."""
    for name, value in metadata or ():
        if name == HEADER:
            text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
            try:
                return EncryptionKey.parse(text)
            except InvalidKey as e:
                raise InvalidRequest(
                    HEADER, f"metadata: the encryption key {e}; send the stream's 32-byte key as S2 takes it"
                ) from None
    return None if keys is None else keys.lookup(ref.basin, ref.stream)
