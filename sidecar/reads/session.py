"""A session that survives upstream failures: a thin loop around `ResumePlan` and the client.

Every record reaches the app once, in order: a batch counts as delivered when it is handed
on; after a failure the next upstream request starts right after the last one delivered.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass

from sidecar.errors import RangeNotSatisfiable, SidecarError
from sidecar.metrics import Metrics
from sidecar.reads.plan import ResumePlan
from sidecar.telemetry import CallTrace, reason_token
from sidecar.types import ReadQuery, StreamPosition
from sidecar.upstream.client import UpstreamClient
from sidecar.upstream.retry import RetryPolicy
from sidecar.wire.protobuf import ReadBatch

log = logging.getLogger(__name__)


class SessionInterrupted(SidecarError):
    """The retry budget is spent; the app may resume itself from `next_seq_num`."""

    def __init__(self, next_seq_num: int | None, cause: BaseException) -> None:
        where = f"resume from seq_num {next_seq_num}" if next_seq_num is not None else "retry the same request"
        super().__init__(f"upstream session failed after retries ({cause}); {where}")
        self.next_seq_num = next_seq_num
        self.cause = cause


@dataclass(frozen=True)
class SessionEvent:
    """The upstream session failed and will be resumed after `delay` (for logs, spans, metrics)."""

    attempt: int
    delay: float
    error: BaseException


Observer = Callable[[SessionEvent], None]


def session_observer(metrics: Metrics, call: CallTrace) -> Observer:
    """Retries and reconnects of a session, as metrics and as events on its span."""

    def observe(event: SessionEvent) -> None:
        reason = reason_token(event.error)
        metrics.upstream_retries.labels("session", reason).inc()
        metrics.session_reconnects.labels(reason).inc()
        call.event("reconnect", {"s2.attempt": event.attempt, "s2.delay_s": event.delay, "error.type": reason})

    return observe


async def resumable_session(
    client: UpstreamClient,
    basin: str,
    stream: str,
    query: ReadQuery,
    *,
    policy: RetryPolicy,
    plan: ResumePlan | None = None,
    observe: Observer | None = None,
    on_tail: Callable[[StreamPosition], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> AsyncGenerator[ReadBatch, None]:
    """Yield batches (and heartbeats: empty batches with a tail) until the session's stop,
    resuming after retryable failures. Raises `SessionInterrupted` when retries run out, and
    non-retryable `SidecarError`s as they come."""
    plan = plan or ResumePlan(query)
    attempt = 0
    next_query: ReadQuery | None = query
    while next_query is not None:
        try:
            async for batch in client.read_session(basin, stream, next_query):
                if batch.count:
                    metered = batch.metered_bytes() if plan.tracks_bytes else 0
                    assert batch.last_seq_num is not None
                    if plan.next_seq_num is not None and batch.first_seq_num != plan.next_seq_num:
                        # Never hand the app a gap or a repeat, whatever upstream sent.
                        raise _Discontinuity(plan.next_seq_num, batch.first_seq_num)
                    plan.delivered(batch.count, batch.last_seq_num, metered, clock())
                    if batch.tail is not None:
                        plan.saw_tail(batch.tail)
                        if on_tail is not None:
                            on_tail(batch.tail)  # keeps the tail cache current for every app
                    attempt = 0  # progress resets the retry budget, as S2's SDKs do
                    yield batch
                elif batch.tail is not None:
                    plan.caught_up(batch.tail)
                    if on_tail is not None:
                        on_tail(batch.tail)
                    yield batch
            return  # upstream ended the session cleanly: its stop was reached
        except RangeNotSatisfiable as e:
            if plan.records and plan.next_seq_num == e.tail.seq_num:
                return  # resumed exactly at the tail of a session that cannot wait: it is complete
            raise
        except SidecarError as e:
            attempt += 1
            if not policy.should_retry(e, attempt):
                if e.retryable:
                    raise SessionInterrupted(plan.next_seq_num, e) from e
                raise
            delay = policy.delay(e, attempt)
            log.info("upstream session %s/%s failed (%s); retry %d in %.2fs", basin, stream, e, attempt, delay)
            if observe:
                observe(SessionEvent(attempt, delay, e))
            await asyncio.sleep(delay)
            next_query = plan.next_query(clock())


class _Discontinuity(SidecarError):
    """Upstream resumed somewhere other than where we asked: retry from the right place."""

    def __init__(self, expected: int, got: int | None) -> None:
        super().__init__(f"upstream batch starts at seq_num {got}, expected {expected}")

    @property
    def retryable(self) -> bool:
        return True
