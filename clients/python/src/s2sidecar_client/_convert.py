"""Between this package's dataclasses and the generated protobuf messages."""

from __future__ import annotations

import os
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
) -> Req:
    req = cls(basin=basin or "", stream=stream, clamp=clamp)
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


def position(msg: pb.StreamPosition) -> StreamPosition:
    return StreamPosition(msg.seq_num, msg.timestamp)


def batch(msg: pb.ReadResponse | pb.ReadSessionResponse) -> ReadBatch:
    return ReadBatch(
        records=tuple(
            SequencedRecord(r.seq_num, r.timestamp, tuple((h.name, h.value) for h in r.headers), r.body)
            for r in msg.records
        ),
        tail=position(msg.tail) if msg.HasField("tail") else None,
    )


def default_target() -> str:
    """$S2_SIDECAR_ADDRESS (the Helm chart sets it in every app container), else the default port."""
    return os.environ.get("S2_SIDECAR_ADDRESS") or "127.0.0.1:50051"
