"""Between this package's dataclasses and the generated protobuf messages."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterable
from typing import TypeVar

from s2sidecar_client._proto.s2sidecar.v1 import stream_pb2 as pb
from s2sidecar_client.types import (
    ReadBatch,
    ReadLimit,
    SeqNum,
    SequencedRecord,
    Start,
    StreamPosition,
    TailOffset,
    Timestamp,
)

SERVICE = "/s2sidecar.v1.StreamService/"

Req = TypeVar("Req", pb.ReadRequest, pb.ReadSessionRequest)


def read_request(
    cls: type[Req],
    basin: str | None,
    stream: str,
    start: Start | None,
    limit: ReadLimit | None,
    until: int | Timestamp | None,
    clamp: bool,
    wait: int | None,
    ignore_command_records: bool = False,
) -> Req:
    req = cls(basin=basin or "", stream=stream, clamp=clamp, ignore_command_records=ignore_command_records)
    match start:
        case SeqNum(value):
            req.seq_num = value
        case Timestamp(value):
            req.timestamp = value
        case TailOffset(value):
            req.tail_offset = value
        case None:
            pass
        case _:
            raise TypeError(f"start must be SeqNum, Timestamp or TailOffset, not {type(start).__name__}")
    if limit is not None:
        if limit.count is not None:
            req.count = limit.count
        if limit.bytes is not None:
            req.bytes = limit.bytes
    if until is not None:
        req.until = until.value if isinstance(until, Timestamp) else until
    if wait is not None:
        req.wait = wait
    return req


def auth_metadata(token: str | None) -> tuple[tuple[str, str], ...] | None:
    """Call metadata carrying the sidecar's app token, if any."""
    return (("authorization", f"Bearer {token}"),) if token else None


ENCRYPTION_KEY_HEADER = "s2-encryption-key"

EncryptionKey = bytes | str
"""An encrypted stream's key: the 32 raw bytes (the client base64-encodes them), or the standard
padded base64 text S2 takes in `s2-encryption-key`."""


def encryption_key_metadata(key: EncryptionKey) -> tuple[str, str]:
    """The metadata pair carrying `key`. Its length and alphabet are left to the sidecar to check,
    so a malformed key gets the sidecar's INVALID_ARGUMENT, which explains it without echoing it;
    only what gRPC cannot carry at all is refused here. Errors never show the value."""
    if isinstance(key, bytes | bytearray | memoryview):
        return ENCRYPTION_KEY_HEADER, base64.b64encode(key).decode("ascii")
    if not isinstance(key, str):
        # The type only: the value may be a key.
        raise TypeError(f"encryption_key must be bytes or a base64 str, not {type(key).__name__}")
    if not all(" " <= c <= "~" for c in key):
        # gRPC carries printable ASCII only, and would fail the call with an opaque error.
        raise ValueError("encryption_key as str must be base64 text (printable ASCII); pass the raw key as bytes")
    return ENCRYPTION_KEY_HEADER, key


def position(msg: pb.StreamPosition) -> StreamPosition:
    return StreamPosition(msg.seq_num, msg.timestamp)


# Records are made without SequencedRecord.__init__: a frozen dataclass's sets each field through
# object.__setattr__, which at 100 B records was most of the client's CPU per record. The slots'
# own setters make the same instance (equal, hashed and shown alike) at about a third of the cost.
# A field added to SequencedRecord must be set here too (test_python_convert.py fails until it is).
_new = object.__new__
_set_seq_num, _set_timestamp, _set_headers, _set_body = (
    vars(SequencedRecord)[name].__set__ for name in ("seq_num", "timestamp", "headers", "body")
)


def records(msgs: Iterable[pb.SequencedRecord]) -> tuple[SequencedRecord, ...]:
    """One batch's records, in one pass."""
    out: list[SequencedRecord] = []
    append = out.append
    for r in msgs:
        record = _new(SequencedRecord)
        _set_seq_num(record, r.seq_num)
        _set_timestamp(record, r.timestamp)
        headers = r.headers
        _set_headers(record, tuple([(h.name, h.value) for h in headers]) if headers else ())
        _set_body(record, r.body)
        append(record)
    return tuple(out)


def batch(msg: pb.ReadResponse | pb.ReadSessionResponse) -> ReadBatch:
    return ReadBatch(
        records=records(msg.records),
        tail=position(msg.tail) if msg.HasField("tail") else None,
        caught_up=isinstance(msg, pb.ReadSessionResponse) and msg.caught_up,
    )


def default_target() -> str:
    """$S2_SIDECAR_ADDRESS (the Helm chart sets it in every app container), else the default port."""
    return os.environ.get("S2_SIDECAR_ADDRESS") or "127.0.0.1:50051"
