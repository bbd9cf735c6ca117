"""One exception hierarchy for the whole sidecar.

SidecarError
├── InvalidRequest     a caller's mistake found before going upstream (names the field)
├── S2Error            S2 (or the emulator) answered with an error status
│   └── RangeNotSatisfiable   416: the start is past the tail (carries the tail)
├── TransportError     the connection to the upstream broke (reset, closed, truncated)
│   ├── ConnectFailed      no connection could be made (refused, DNS, TLS, connect timeout)
│   │   └── HostNotFound   the endpoint's host name does not exist (DNS: no such name): not retried
│   └── UpstreamTimeout    connected, but no answer in time
├── ProtocolError      the upstream answered something that is not S2's wire format
├── DeadlineExceeded   the caller's deadline came before the upstream answered
├── PoolExhausted      no upstream connection is free for another session (a setting bounds them)
├── RetriesStopped     retrying stopped to answer by the caller's deadline (carries the last error)
└── RetriesExhausted   a unary call's retries ran out (attempts or time budget; carries the last error)
"""

from __future__ import annotations

from sidecar.types import StreamPosition

# S2's retry rules, as its SDKs apply them: statuses worth retrying, and error codes worth retrying
# whatever the status (a 409 only for transaction_conflict).
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
RETRYABLE_CODES = frozenset({"transaction_conflict", "server_draining", "request_timeout", "rate_limited"})


class SidecarError(Exception):
    """Base of every error the sidecar raises on purpose."""

    @property
    def retryable(self) -> bool:
        return False


class InvalidRequest(SidecarError):
    """A request that cannot be sent upstream; `field` names what to change."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class S2Error(SidecarError):
    """An error answer from S2: HTTP status, S2's error code and message."""

    def __init__(self, status: int, code: str, message: str, retry_after_ms: int | None = None) -> None:
        super().__init__(f"S2 answered {status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.retry_after_ms = retry_after_ms

    @property
    def retryable(self) -> bool:
        if self.status == 409:
            return self.code == "transaction_conflict"
        return self.status in RETRYABLE_STATUSES or self.code in RETRYABLE_CODES


class RangeNotSatisfiable(S2Error):
    """416: the requested start is past the stream's tail."""

    def __init__(self, tail: StreamPosition) -> None:
        super().__init__(416, "range_not_satisfiable", f"start is past the tail (next seq_num {tail.seq_num})")
        self.tail = tail


class TransportError(SidecarError):
    """Connecting to, or reading from, the upstream failed. This class itself: a connection that
    broke (reset, closed, truncated); the subclasses say when none could be made or none answered
    in time. The upstream client raises them where it translates a transport's exception."""

    @property
    def retryable(self) -> bool:
        return True


class ConnectFailed(TransportError):
    """No connection to the upstream could be made at all: refused, unreachable, DNS, TLS
    handshake, connect timeout (as opposed to one that broke or went silent)."""


class HostNotFound(ConnectFailed):
    """The endpoint's host name does not exist (DNS answered "no such name", not "try again"):
    retrying cannot heal it, only fixing the endpoint (or creating the name) can."""

    @property
    def retryable(self) -> bool:
        return False


class UpstreamTimeout(TransportError):
    """Connected, but the upstream did not answer in time (or a session went silent)."""


class ProtocolError(SidecarError):
    """The upstream's answer did not follow S2's wire format. Retryable: a fresh request may succeed."""

    @property
    def retryable(self) -> bool:
        return True


class DeadlineExceeded(SidecarError):
    """The caller's deadline passed before the upstream answered."""


class PoolExhausted(SidecarError):
    """Every connection a pool may open holds an open session: a new one is refused at once (the
    app retries after RetryInfo) rather than left waiting, silent, for one to end. Not retried
    here: retrying inside the sidecar would be that silent wait again."""

    def __init__(self, limit: int, setting: str) -> None:
        super().__init__(
            f"no upstream connection is free for another session: all {limit} ({setting}) hold open "
            f"sessions; retry later, or raise {setting}"
        )
        self.limit = limit
        self.setting = setting


class RetriesStopped(SidecarError):
    """The caller's deadline came while the upstream kept failing: retrying stopped so as to
    answer in time, with the last upstream error."""

    def __init__(self, cause: SidecarError, failures: int) -> None:
        super().__init__(f"{cause} (failed {failures} times; retrying stopped to answer before the call's deadline)")
        self.cause = cause
        self.failures = failures

    @property
    def retryable(self) -> bool:
        return self.cause.retryable


class RetriesExhausted(SidecarError):
    """A unary call's upstream retries ran out (the policy's attempts or its time budget) while
    the upstream kept failing transiently: the last error, and how many attempts over how long.
    Not retryable: the retrying is done, and an app retrying it again would multiply it."""

    def __init__(self, cause: SidecarError, attempts: int, elapsed: float) -> None:
        super().__init__(f"{cause} (tried {attempts} times over {elapsed:.1f}s)")
        self.cause = cause
        self.attempts = attempts
        self.elapsed = elapsed
