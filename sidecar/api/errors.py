"""Errors to gRPC statuses, with `google.rpc.Status` details a person (and grpcurl) can act on.

| what happened                      | gRPC code            | details                            |
|------------------------------------|----------------------|------------------------------------|
| bad request field                  | INVALID_ARGUMENT     | ErrorInfo(reason=invalid_argument) + BadRequest |
| S2 400 / 422                       | INVALID_ARGUMENT     | ErrorInfo(reason=S2 code)          |
| S2 400 decryption_failed (wrong key) | PERMISSION_DENIED  | ErrorInfo(reason=decryption_failed) |
| S2 400 bad_header: missing encryption key | FAILED_PRECONDITION | ErrorInfo(reason=bad_header) |
| S2 401                             | UNAUTHENTICATED      | ErrorInfo                          |
| S2 403 (quota_exhausted)           | PERMISSION_DENIED (RESOURCE_EXHAUSTED) | ErrorInfo        |
| S2 404                             | NOT_FOUND            | ErrorInfo                          |
| S2 409 stream/basin_deletion_pending | NOT_FOUND          | ErrorInfo(reason=S2 code)          |
| S2 409 transaction_conflict        | ABORTED              | ErrorInfo, RetryInfo               |
| S2 409 other                       | FAILED_PRECONDITION  | ErrorInfo                          |
| S2 416                             | OUT_OF_RANGE         | ErrorInfo(metadata tail), `s2-tail-seq-num` |
| S2 429                             | RESOURCE_EXHAUSTED   | ErrorInfo, RetryInfo               |
| S2 408/5xx, transport, malformed   | UNAVAILABLE          | ErrorInfo, RetryInfo               |
| upstream host name does not exist  | FAILED_PRECONDITION  | ErrorInfo(reason=upstream_host_not_found) |
| deadline near while retrying       | as the last error    | its own + metadata `attempts` (below) |
| a unary call's retries ran out     | as the last error    | its own + metadata `attempts` (below) |
| deadline, upstream silent          | DEADLINE_EXCEEDED    | ErrorInfo                          |
| no upstream connection for a session | RESOURCE_EXHAUSTED | ErrorInfo, RetryInfo, `s2-next-seq-num` |
| session out of retries / draining  | UNAVAILABLE          | ErrorInfo, RetryInfo, `s2-next-seq-num` |

ErrorInfo metadata `attempts` (how many times the sidecar tried upstream) says the sidecar already
retried: clients do not retry such a status again, whatever its code and RetryInfo (an UNAVAILABLE
without it, e.g. from a sidecar that is restarting, they do), so their retries do not multiply
the sidecar's. RetryInfo stays: how long an app that retries later on its own should wait.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from sidecar.errors import (
    DeadlineExceeded,
    HostNotFound,
    InvalidRequest,
    PoolExhausted,
    ProtocolError,
    RangeNotSatisfiable,
    RetriesExhausted,
    RetriesStopped,
    S2Error,
    SidecarError,
    TransportError,
)
from sidecar.reads import SessionInterrupted
from sidecar.types import ReadQuery, SeqNum, StreamPosition, TailOffset

DOMAIN = "s2.dev"
NEXT_SEQ_NUM_KEY = "s2-next-seq-num"
TAIL_SEQ_NUM_KEY = "s2-tail-seq-num"
TAIL_TIMESTAMP_KEY = "s2-tail-timestamp"
STATUS_DETAILS_KEY = "grpc-status-details-bin"
ATTEMPTS_KEY = "attempts"  # ErrorInfo metadata: the sidecar retried upstream this many times in all

Metadata = tuple[tuple[str, str | bytes], ...]


class Draining(SidecarError):
    """The sidecar is shutting down (SIGTERM): the app should reconnect and resume."""


@dataclass(frozen=True)
class RpcError:
    """A status to end a call with: code, message and trailing metadata (details included)."""

    code: grpc.StatusCode
    message: str
    trailing_metadata: Metadata


# A stream or basin being deleted is gone for its readers (S2 finishes the deletion in the
# background; a create after it makes a new incarnation): one code with the 404 an app already
# handles, the ErrorInfo reason telling the two apart.
DELETION_PENDING = frozenset({"stream_deletion_pending", "basin_deletion_pending"})


def _s2_code(e: S2Error) -> grpc.StatusCode:
    if e.code == "decryption_failed":
        # The key is well-formed but not the one the stream's records were written with: the
        # caller lacks the credential for this data, and only another key helps (not a retry,
        # not another request shape).
        return grpc.StatusCode.PERMISSION_DENIED
    if _missing_key(e):
        # The request is fine; the stream (encrypted since its creation) needs a key it lacks.
        return grpc.StatusCode.FAILED_PRECONDITION
    status = e.status
    if status in (400, 422):
        return grpc.StatusCode.INVALID_ARGUMENT
    if status == 401:
        return grpc.StatusCode.UNAUTHENTICATED
    if status == 403:
        return grpc.StatusCode.RESOURCE_EXHAUSTED if e.code == "quota_exhausted" else grpc.StatusCode.PERMISSION_DENIED
    if status == 404 or e.code in DELETION_PENDING:
        return grpc.StatusCode.NOT_FOUND
    if status == 409:
        return grpc.StatusCode.ABORTED if e.code == "transaction_conflict" else grpc.StatusCode.FAILED_PRECONDITION
    if status == 416:
        return grpc.StatusCode.OUT_OF_RANGE
    if status == 429:
        return grpc.StatusCode.RESOURCE_EXHAUSTED
    return grpc.StatusCode.UNAVAILABLE


def _pack(msg: error_details_pb2.ErrorInfo | error_details_pb2.RetryInfo | error_details_pb2.BadRequest) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(msg)
    return packed


def build(
    code: grpc.StatusCode,
    message: str,
    *,
    reason: str,
    metadata: dict[str, str] | None = None,
    retry_after: float | None = None,
    field: str | None = None,
    extra: Metadata = (),
) -> RpcError:
    """An `RpcError` whose trailing metadata carries a `google.rpc.Status` with details."""
    details = [_pack(error_details_pb2.ErrorInfo(reason=reason, domain=DOMAIN, metadata=metadata or {}))]
    if retry_after is not None:
        delay = duration_pb2.Duration()
        delay.FromMilliseconds(int(retry_after * 1000))
        details.append(_pack(error_details_pb2.RetryInfo(retry_delay=delay)))
    if field is not None:
        violation = error_details_pb2.BadRequest.FieldViolation(field=field, description=message)
        details.append(_pack(error_details_pb2.BadRequest(field_violations=[violation])))
    status = status_pb2.Status(code=getattr(code_pb2, code.name), message=message, details=details)
    return RpcError(code, message, ((STATUS_DETAILS_KEY, status.SerializeToString()), *extra))


def _starts_at_tail(query: ReadQuery, tail: StreamPosition) -> bool:
    """The read's start resolves to the tail itself (with clamp, a start past it does too)."""
    start = query.start
    if isinstance(start, TailOffset):
        return start.value == 0
    if isinstance(start, SeqNum):
        return start.value == tail.seq_num or (query.clamp and start.value > tail.seq_num)
    return query.clamp  # a timestamp start 416s only past the last record's; clamp moves it to the tail


def from_exception(e: BaseException, *, next_seq_num: int | None = None, query: ReadQuery | None = None) -> RpcError:
    """Map any error from the read path to a status. Unknown exceptions become INTERNAL. `query`,
    when known, lets the message speak to what the caller asked for."""
    extra: Metadata = ()
    meta: dict[str, str] = {}
    if next_seq_num is not None:
        extra = ((NEXT_SEQ_NUM_KEY, str(next_seq_num)),)
        meta["next_seq_num"] = str(next_seq_num)
    if isinstance(e, InvalidRequest):
        return build(grpc.StatusCode.INVALID_ARGUMENT, str(e), reason="invalid_argument", field=e.field, extra=extra)
    if isinstance(e, RangeNotSatisfiable):
        tail = e.tail
        if query is not None and _starts_at_tail(query, tail):
            # S2 answers 416 at the tail too when the read cannot wait there: "past the tail,
            # start at or before it" would tell a caller who did exactly that to do it again.
            message = (
                f"start is the tail (the next seq_num is {tail.seq_num}): no record is there yet and this read "
                "does not wait; set wait (seconds, at most 60) to wait for the next record, or follow the "
                "stream with ReadSession"
            )
        else:
            message = (
                f"start is past the tail: the next seq_num is {tail.seq_num} (last timestamp {tail.timestamp}); "
                "start at or before it, or set clamp to start at the tail"
            )
        return build(
            grpc.StatusCode.OUT_OF_RANGE,
            message,
            reason="range_not_satisfiable",
            metadata={"tail_seq_num": str(tail.seq_num), "tail_timestamp": str(tail.timestamp), **meta},
            extra=((TAIL_SEQ_NUM_KEY, str(tail.seq_num)), (TAIL_TIMESTAMP_KEY, str(tail.timestamp)), *extra),
        )
    if isinstance(e, S2Error):
        code = _s2_code(e)
        hint = _MISSING_KEY_HINT if _missing_key(e) else _KEY_HINT if _bad_key(e) else _HINTS.get(e.code, "")
        retry = (e.retry_after_ms / 1000 if e.retry_after_ms is not None else 1.0) if e.retryable else None
        return build(
            code,
            f"S2 answered {e.status} {e.code}: {e.message}{hint}",
            reason=e.code,
            metadata={"http_status": str(e.status), **meta},
            retry_after=retry,
            extra=extra,
        )
    if isinstance(e, HostNotFound):
        # Not UNAVAILABLE: every gRPC client retries that, and no retry brings a name into DNS;
        # FAILED_PRECONDITION is "fix the system's state first" (here, S2_BASIN_ENDPOINT).
        return build(
            grpc.StatusCode.FAILED_PRECONDITION, str(e), reason="upstream_host_not_found", metadata=meta, extra=extra
        )
    if isinstance(e, TransportError | ProtocolError):
        kind = "upstream_unreachable" if isinstance(e, TransportError) else "upstream_protocol"
        return build(grpc.StatusCode.UNAVAILABLE, str(e), reason=kind, metadata=meta, retry_after=1.0, extra=extra)
    if isinstance(e, PoolExhausted):
        meta["limit"] = str(e.limit)
        return build(
            grpc.StatusCode.RESOURCE_EXHAUSTED, str(e), reason="session_connections", metadata=meta,
            retry_after=1.0, extra=extra,
        )  # fmt: skip
    if isinstance(e, DeadlineExceeded):
        return build(grpc.StatusCode.DEADLINE_EXCEEDED, str(e), reason="deadline_exceeded", metadata=meta, extra=extra)
    if isinstance(e, Draining):
        return build(
            grpc.StatusCode.UNAVAILABLE, str(e), reason="draining", metadata=meta, retry_after=1.0, extra=extra
        )
    if isinstance(e, RetriesStopped):
        err = from_exception(e.cause, next_seq_num=next_seq_num)  # the code and details of what failed
        note = f" (failed {e.failures} times; stopped retrying to answer before the call's deadline)"
        return _retried(err, err.message + note, e.failures)
    if isinstance(e, RetriesExhausted):
        err = from_exception(e.cause, next_seq_num=next_seq_num)
        return _retried(err, str(e), e.attempts)
    if isinstance(e, SessionInterrupted):
        resume = e.next_seq_num if e.next_seq_num is not None else next_seq_num
        return from_exception(e.cause, next_seq_num=resume)
    return build(grpc.StatusCode.INTERNAL, f"internal error: {type(e).__name__}", reason="internal", extra=extra)


def _retried(err: RpcError, message: str, attempts: int) -> RpcError:
    """`err` with another message, in the status details too, marked as already retried: ErrorInfo
    metadata `attempts`."""
    metadata: list[tuple[str, str | bytes]] = []
    for key, value in err.trailing_metadata:
        if key == STATUS_DETAILS_KEY and isinstance(value, bytes):
            status = status_pb2.Status.FromString(value)
            status.message = message
            for detail in status.details:
                if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                    info = error_details_pb2.ErrorInfo()
                    detail.Unpack(info)
                    info.metadata[ATTEMPTS_KEY] = str(attempts)
                    detail.Pack(info)
            value = status.SerializeToString()
        metadata.append((key, value))
    return RpcError(err.code, message, tuple(metadata))


def _missing_key(e: S2Error) -> bool:
    return e.code == "bad_header" and e.message.startswith("missing encryption key")


def _bad_key(e: S2Error) -> bool:
    return e.code == "bad_header" and "encryption key" in e.message


_MISSING_KEY_HINT = (
    " (the stream is encrypted: send its key, base64 of 32 bytes, as gRPC metadata `s2-encryption-key`, "
    "or give the sidecar the key in its key files: --encryption-keys-dir)"
)
_KEY_HINT = " (`s2-encryption-key` must be the stream's 32-byte key in standard padded base64)"
_HINTS = {
    "decryption_failed": (
        " (the encryption key is not this stream's: its records were written with another key; send the "
        "stream's key as `s2-encryption-key` metadata, or fix the sidecar's key files)"
    ),
    "stream_not_found": " (check the stream name, or create the stream first)",
    "basin_not_found": " (check the basin name and that the token's account owns it)",
    "authn": " (check S2_ACCESS_TOKEN given to the sidecar)",
    "permission_denied": " (the sidecar's token lacks access to this basin or stream)",
}
