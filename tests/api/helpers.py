"""Small helpers for tests that call the sidecar over gRPC."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
from google.rpc import error_details_pb2, status_pb2

from sidecar._proto.s2sidecar.v1 import stream_pb2 as pb


def bodies(msg: pb.ReadResponse | pb.ReadSessionResponse) -> list[bytes]:
    return [r.body for r in msg.records]


def seq_nums(msg: pb.ReadResponse | pb.ReadSessionResponse) -> list[int]:
    return [r.seq_num for r in msg.records]


def padded(i: int, size: int = 16) -> bytes:
    return str(i).zfill(size).encode()


def trailing(err: grpc.aio.AioRpcError) -> dict[str, str | bytes]:
    return {k: v for k, v in (err.trailing_metadata() or ())}


def error_info(err: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    info = error_details_pb2.ErrorInfo()
    _unpack_detail(err, info)
    return info


def retry_info(err: grpc.aio.AioRpcError) -> error_details_pb2.RetryInfo:
    info = error_details_pb2.RetryInfo()
    _unpack_detail(err, info)
    return info


def _unpack_detail(err: grpc.aio.AioRpcError, into: error_details_pb2.ErrorInfo | error_details_pb2.RetryInfo) -> None:
    raw = trailing(err).get("grpc-status-details-bin")
    assert isinstance(raw, bytes), f"no status details: {err}"
    status = status_pb2.Status.FromString(raw)
    for detail in status.details:
        if detail.Is(into.DESCRIPTOR):
            detail.Unpack(into)
            return
    raise AssertionError(f"no {into.DESCRIPTOR.name} in status details")


async def collect(
    call: AsyncIterator[pb.ReadSessionResponse], *, records: int | None = None
) -> tuple[list[pb.SequencedRecord], int]:
    """Read a session until it ends (or `records` arrived); returns (records, heartbeats)."""
    out: list[pb.SequencedRecord] = []
    heartbeats = 0
    async for msg in call:
        if msg.records:
            out.extend(msg.records)
        else:
            assert msg.HasField("tail"), "an empty session message must be a heartbeat with a tail"
            heartbeats += 1
        if records is not None and len(out) >= records:
            break
    return out, heartbeats
