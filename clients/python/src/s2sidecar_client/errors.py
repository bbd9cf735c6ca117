"""One exception hierarchy for every failed call, built from the gRPC status, the
`google.rpc.Status` in `grpc-status-details-bin` (ErrorInfo, RetryInfo, BadRequest) and the
sidecar's trailing metadata (`s2-tail-seq-num`, `s2-tail-timestamp`, `s2-next-seq-num`).

SidecarError                 any failed call (`.code`, `.message`, `.reason`, `.retry_after`, `.next_seq_num`, ...)
├── InvalidArgument          INVALID_ARGUMENT; `.field` names the request field to change
├── NotFound                 NOT_FOUND
│   ├── StreamNotFound       reason stream_not_found
│   └── BasinNotFound        reason basin_not_found
├── RangeNotSatisfiable      OUT_OF_RANGE: start past the tail; `.tail`
├── Unavailable              UNAVAILABLE: sidecar restarting or unreachable (retried unless resume is off)
├── Unauthenticated          UNAUTHENTICATED: S2 refused the sidecar's token
├── PermissionDenied         PERMISSION_DENIED
├── ResourceExhausted        RESOURCE_EXHAUSTED (rate limited, or quota)
├── Conflict                 ABORTED / FAILED_PRECONDITION (S2 409)
├── DeadlineExceeded         DEADLINE_EXCEEDED (the caller's timeout)
└── Cancelled                CANCELLED
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2

from s2sidecar_client.types import StreamPosition

DOMAIN = "s2.dev"
STATUS_DETAILS_KEY = "grpc-status-details-bin"
NEXT_SEQ_NUM_KEY = "s2-next-seq-num"
TAIL_SEQ_NUM_KEY = "s2-tail-seq-num"
TAIL_TIMESTAMP_KEY = "s2-tail-timestamp"
# ErrorInfo metadata: the sidecar already retried S2 this many times for the call (its retrying is
# done; retrying the call again would multiply it).
ATTEMPTS_KEY = "attempts"

# Which failures are retried (clients/RESUME.md). INTERNAL / UNKNOWN are server bugs unless the
# message shows the connection itself broke.
_TRANSPORT_FAILURES = ("RST_STREAM", "Stream removed", "Connection reset")
_RETRY_AFTER_HINTED = (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.ABORTED)
_TRANSPORT_CODES = (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)


class SidecarError(Exception):
    """A call failed. `reason` is S2's error code (ErrorInfo.reason, e.g. "stream_not_found"),
    `metadata` the ErrorInfo metadata, `retry_after` the RetryInfo delay in seconds (None: the
    sidecar named none), `trailers` the raw trailing metadata (text values only)."""

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        *,
        reason: str | None = None,
        metadata: dict[str, str] | None = None,
        retry_after: float | None = None,
        field_violations: tuple[tuple[str, str], ...] = (),
        trailers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason
        self.metadata = metadata or {}
        self.retry_after = retry_after
        self.field_violations = field_violations
        self.trailers = trailers or {}
        self._next_seq_num: int | None = None

    @property
    def next_seq_num(self) -> int | None:
        """For a session that failed: the seq_num to resume at (`start=SeqNum(next_seq_num)`).
        The session's own position when it delivered anything (or saw a heartbeat), else the
        sidecar's `s2-next-seq-num` trailer, else None."""
        if self._next_seq_num is not None:
            return self._next_seq_num
        raw = self.trailers.get(NEXT_SEQ_NUM_KEY) or self.metadata.get("next_seq_num")
        return int(raw) if raw else None

    @next_seq_num.setter
    def next_seq_num(self, value: int) -> None:
        self._next_seq_num = value

    @property
    def retryable(self) -> bool:
        """Whether the client retries this failure (clients/RESUME.md): UNAVAILABLE, a
        RESOURCE_EXHAUSTED or ABORTED with a RetryInfo delay, or a broken connection; never one
        the sidecar already retried S2 for (ErrorInfo metadata `attempts`)."""
        return is_retryable(self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code.name}, reason={self.reason!r}, message={self.message!r})"


class InvalidArgument(SidecarError):
    @property
    def field(self) -> str | None:
        """The request field to change (from BadRequest), e.g. "stream" or "wait"."""
        return self.field_violations[0][0] if self.field_violations else None


class NotFound(SidecarError):
    pass


class StreamNotFound(NotFound):
    pass


class BasinNotFound(NotFound):
    pass


class RangeNotSatisfiable(SidecarError):
    @property
    def tail(self) -> StreamPosition:
        """The stream's tail: start at or before `tail.seq_num`, or pass `clamp=True`."""
        seq = self.trailers.get(TAIL_SEQ_NUM_KEY) or self.metadata.get("tail_seq_num") or "0"
        ts = self.trailers.get(TAIL_TIMESTAMP_KEY) or self.metadata.get("tail_timestamp") or "0"
        return StreamPosition(int(seq), int(ts))


class Unavailable(SidecarError):
    pass


class Unauthenticated(SidecarError):
    pass


class PermissionDenied(SidecarError):
    pass


class ResourceExhausted(SidecarError):
    pass


class Conflict(SidecarError):
    pass


class DeadlineExceeded(SidecarError):
    pass


class Cancelled(SidecarError):
    pass


_BY_CODE: dict[grpc.StatusCode, type[SidecarError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.OUT_OF_RANGE: RangeNotSatisfiable,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.ABORTED: Conflict,
    grpc.StatusCode.FAILED_PRECONDITION: Conflict,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.CANCELLED: Cancelled,
}
_BY_REASON: dict[str, type[SidecarError]] = {
    "stream_not_found": StreamNotFound,
    "basin_not_found": BasinNotFound,
}


def is_retryable(err: SidecarError) -> bool:
    """The table in clients/RESUME.md. CANCELLED and DEADLINE_EXCEEDED are the caller's own doing."""
    if ATTEMPTS_KEY in err.metadata:
        return False  # the sidecar retried S2 for this call already
    if err.code == grpc.StatusCode.UNAVAILABLE:
        return True
    if err.code in _RETRY_AFTER_HINTED:
        return err.retry_after is not None
    if err.code in _TRANSPORT_CODES:
        return any(s in err.message for s in _TRANSPORT_FAILURES)
    return False


def from_status(code: grpc.StatusCode, message: str, trailing: Iterable[tuple[str, Any]] | None) -> SidecarError:
    """The typed error for a failed call's status and trailing metadata."""
    trailers: dict[str, str] = {}
    raw_status: bytes | None = None
    for key, value in trailing or ():
        if key == STATUS_DETAILS_KEY and isinstance(value, bytes):
            raw_status = value
        elif isinstance(value, str):
            trailers[key] = value
    reason: str | None = None
    metadata: dict[str, str] = {}
    retry_after: float | None = None
    violations: list[tuple[str, str]] = []
    if raw_status is not None:
        status = status_pb2.Status.FromString(raw_status)
        message = status.message or message
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                reason, metadata = info.reason, dict(info.metadata)
            elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                retry = error_details_pb2.RetryInfo()
                detail.Unpack(retry)
                retry_after = retry.retry_delay.ToMilliseconds() / 1000
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                violations.extend((v.field, v.description) for v in bad.field_violations)
    cls = _BY_CODE.get(code, SidecarError)
    if cls is NotFound:
        cls = _BY_REASON.get(reason or "", NotFound)
    return cls(
        code,
        message,
        reason=reason,
        metadata=metadata,
        retry_after=retry_after,
        field_violations=tuple(violations),
        trailers=trailers,
    )


def from_rpc_error(e: grpc.RpcError) -> SidecarError:
    """The typed error for a `grpc.RpcError` (sync) or `grpc.aio.AioRpcError` (async)."""
    code: grpc.StatusCode = e.code()
    trailing: Any = e.trailing_metadata()
    return from_status(code, e.details() or code.name, trailing)
