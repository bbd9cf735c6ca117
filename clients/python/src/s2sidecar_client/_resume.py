"""Auto-resume without I/O (clients/RESUME.md): which failures are retried, how long to wait, and
where a retried session starts. The async and sync clients drive these; their loops only call,
sleep and iterate."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import grpc

from s2sidecar_client import _convert
from s2sidecar_client._proto.s2sidecar.v1 import stream_pb2 as pb
from s2sidecar_client.errors import SidecarError, from_rpc_error
from s2sidecar_client.types import ReadBatch, SequencedRecord

log = logging.getLogger("s2sidecar_client")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How calls ride out a sidecar restart.

    `max_attempts`: attempts in a row without progress before the last error is raised (1: never
    retry). Attempt n after a failure waits `min(min_backoff * 2**(n-1), max_backoff)` plus up to
    as much again of jitter, or the server's RetryInfo delay if that is longer. The defaults are
    S2's: about a minute of retries, enough for a 30 s restart."""

    max_attempts: int = 60
    min_backoff: float = 0.1
    max_backoff: float = 1.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if not 0 <= self.min_backoff <= self.max_backoff:
            raise ValueError("need 0 <= min_backoff <= max_backoff")

    def backoff(self, attempt: int, rng: Callable[[], float] = random.random) -> float:
        """Seconds to wait before retry number `attempt` (1, 2, ...)."""
        base = min(self.min_backoff * 2.0 ** (attempt - 1), self.max_backoff)
        return base + rng() * base

    def channel_options(self) -> list[tuple[str, int]]:
        """gRPC's own reconnect backoff within the same bounds: its default waits up to 2 minutes
        before reconnecting to a sidecar that went away, and every attempt until then fails fast."""
        lo, hi = round(self.min_backoff * 1000), round(self.max_backoff * 1000)
        return [
            ("grpc.initial_reconnect_backoff_ms", lo),
            ("grpc.min_reconnect_backoff_ms", lo),
            ("grpc.max_reconnect_backoff_ms", hi),
        ]


NO_RETRY = RetryPolicy(max_attempts=1)


class Attempts:
    """Failures in a row since the last progress, against a policy's budget."""

    def __init__(self, policy: RetryPolicy, rng: Callable[[], float] = random.random) -> None:
        self.policy = policy
        self.failures = 0
        self._rng = rng

    def progress(self) -> None:
        self.failures = 0

    def retry_delay(self, err: SidecarError, remaining: float | None = None) -> float | None:
        """Seconds to wait before trying again after `err`, or None to raise it: not retryable,
        budget spent, or (for a call with a deadline) no time left for another attempt."""
        if not err.retryable:
            return None
        self.failures += 1
        if self.failures >= self.policy.max_attempts:
            return None
        delay = max(self.policy.backoff(self.failures, self._rng), err.retry_after or 0.0)
        if remaining is not None and delay >= remaining:
            return None
        return delay


class CallRetries:
    """One unary call's attempts within its time budget: `within` seconds (None: no limit)."""

    def __init__(self, policy: RetryPolicy, within: float | None, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._deadline = None if within is None else clock() + within
        self._attempts = Attempts(policy)

    def remaining(self) -> float | None:
        """Seconds left, the next attempt's gRPC timeout (None: no limit)."""
        return None if self._deadline is None else self._deadline - self._clock()

    def failed(self, e: grpc.RpcError) -> tuple[SidecarError, float | None]:
        """The typed error for a failed attempt, and the seconds to wait before the next one
        (None: raise the error)."""
        err = from_rpc_error(e)
        delay = self._attempts.retry_delay(err, self.remaining())
        if delay is not None:
            log.info("retrying in %.2fs: %s", delay, err.message)
        return err, delay


def metered_bytes(record: SequencedRecord) -> int:
    """S2's metered size of a record, the unit of a `bytes` limit."""
    return 8 + 2 * len(record.headers) + sum(len(n) + len(v) for n, v in record.headers) + len(record.body)


class SessionState:
    """One resuming `ReadSession`: its position, what it has delivered, and the request that
    continues it. Feed it every batch (heartbeats included) and every failure."""

    def __init__(
        self, request: pb.ReadSessionRequest, policy: RetryPolicy, rng: Callable[[], float] = random.random
    ) -> None:
        self._original = request
        self.attempts = Attempts(policy, rng)
        self.next_seq_num: int | None = None  # None until a record or heartbeat says where we are
        self.delivered_count = 0
        self.delivered_bytes = 0  # counted only under a bytes limit, the one use of it
        self._metered = request.bytes > 0
        self.caught_up = False  # as the last message said; a new call (a resume) starts behind

    def on_batch(self, batch: ReadBatch) -> None:
        if batch.records:
            self.next_seq_num = batch.records[-1].seq_num + 1
            self.delivered_count += len(batch.records)
            if self._metered:
                self.delivered_bytes += sum(metered_bytes(r) for r in batch.records)
        elif batch.tail is not None:
            # a heartbeat: caught up at the tail, so a follower that has seen no record yet still
            # reads what is appended while the sidecar is down
            self.next_seq_num = batch.tail.seq_num
        else:
            return
        self.attempts.progress()

    def on_message(self, msg: pb.ReadSessionResponse, heartbeats: bool) -> ReadBatch | None:
        """The batch to deliver for a session's message, or None: a heartbeat, unless `heartbeats`."""
        result = _convert.batch(msg)
        self.caught_up = result.caught_up  # hidden heartbeats too
        self.on_batch(result)
        return result if result.records or heartbeats else None

    def failed(self, e: grpc.RpcError) -> tuple[SidecarError, float | None]:
        """The typed error for a failed attempt, and the seconds to wait before `request()`
        (None: raise the error)."""
        err = from_rpc_error(e)
        self.caught_up = False
        delay = self.on_error(err)
        if delay is not None:
            log.info("session resumes at %s in %.2fs: %s", self.next_seq_num, delay, err.message)
        return err, delay

    def on_error(self, err: SidecarError) -> float | None:
        """Seconds to wait before `request()`, or None to raise `err`. Either way `err` is told
        where to resume: the client's own position wins over the server's `s2-next-seq-num`."""
        if self.next_seq_num is not None:
            err.next_seq_num = self.next_seq_num
        return self.attempts.retry_delay(err)

    def request(self) -> pb.ReadSessionRequest | None:
        """The request for the next attempt, or None if the session's limit is already reached."""
        req = pb.ReadSessionRequest()
        req.CopyFrom(self._original)
        if self.next_seq_num is not None:
            req.seq_num = self.next_seq_num  # the oneof: replaces a timestamp or tail_offset start
        for field, used in (("count", self.delivered_count), ("bytes", self.delivered_bytes)):
            limit: int = getattr(req, field)
            if limit:  # 0 or unset: no limit
                if limit <= used:
                    return None
                setattr(req, field, limit - used)
        return req
