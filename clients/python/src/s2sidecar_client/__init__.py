"""Python client for s2-sidecar: read S2 streams over localhost gRPC.

from s2sidecar_client import S2SidecarClient, SeqNum, TailOffset, ReadLimit

async with S2SidecarClient() as client:  # $S2_SIDECAR_ADDRESS, else 127.0.0.1:50051
    batch = await client.read("orders", start=SeqNum(0), limit=ReadLimit(count=100))
    tail = await client.check_tail("orders")
    async for batch in client.read_session("orders", start=TailOffset(10)):
        for record in batch.records:
            print(record.seq_num, record.body)

Sessions resume across sidecar restarts, `read` and `check_tail` retry within their timeout
(`RetryPolicy`; clients/RESUME.md).
"""

from importlib import metadata as _metadata

from s2sidecar_client._convert import EncryptionKey
from s2sidecar_client._resume import RetryPolicy
from s2sidecar_client.client import ReadSession, S2SidecarClient
from s2sidecar_client.errors import (
    BasinNotFound,
    Cancelled,
    Conflict,
    DeadlineExceeded,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    RangeNotSatisfiable,
    ResourceExhausted,
    SidecarError,
    StreamNotFound,
    Unauthenticated,
    Unavailable,
)
from s2sidecar_client.sync import S2SidecarSyncClient, SyncReadSession
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

try:
    __version__ = _metadata.version("s2sidecar-client")
except _metadata.PackageNotFoundError:  # imported from a source tree, not installed
    __version__ = "0+unknown"

__all__ = [
    "BasinNotFound",
    "Cancelled",
    "Conflict",
    "DeadlineExceeded",
    "EncryptionKey",
    "InvalidArgument",
    "NotFound",
    "PermissionDenied",
    "RangeNotSatisfiable",
    "ReadBatch",
    "ReadLimit",
    "ReadSession",
    "ResourceExhausted",
    "RetryPolicy",
    "S2SidecarClient",
    "S2SidecarSyncClient",
    "SeqNum",
    "SequencedRecord",
    "SidecarError",
    "Start",
    "StreamNotFound",
    "StreamPosition",
    "SyncReadSession",
    "TailOffset",
    "Timestamp",
    "Unauthenticated",
    "Unavailable",
]
