"""s2-sidecar: read S2 streams from any language over localhost gRPC."""

from sidecar.errors import (
    DeadlineExceeded,
    InvalidRequest,
    ProtocolError,
    RangeNotSatisfiable,
    S2Error,
    SidecarError,
    TransportError,
)
from sidecar.types import (
    AppendRecord,
    ReadLimit,
    ReadQuery,
    ReadStart,
    Record,
    SeqNum,
    StreamPosition,
    TailOffset,
    Timestamp,
)

__version__ = "0.1.0"

__all__ = [
    "AppendRecord",
    "DeadlineExceeded",
    "InvalidRequest",
    "ProtocolError",
    "RangeNotSatisfiable",
    "ReadLimit",
    "ReadQuery",
    "ReadStart",
    "Record",
    "S2Error",
    "SeqNum",
    "SidecarError",
    "StreamPosition",
    "TailOffset",
    "Timestamp",
    "TransportError",
    "__version__",
]
