"""A session that survives upstream failures: a thin loop around `ResumePlan` and the client.

Every record reaches the app once, in order: a batch counts as delivered when it is handed
on; after a failure the next upstream request starts right after the last one delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass

from sidecar.encryption import EncryptionKey
from sidecar.errors import RangeNotSatisfiable, SidecarError
from sidecar.metrics import Metrics
from sidecar.reads.plan import ResumePlan
from sidecar.telemetry import CallTrace, reason_token
from sidecar.types import ReadQuery, StreamPosition
from sidecar.upstream.client import UpstreamClient
from sidecar.upstream.retry import AdvisedReconnects, RetryPolicy
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
class Retry:
    """The upstream session failed and will be resumed after `delay`."""

    attempt: int
    delay: float
    error: BaseException


@dataclass(frozen=True)
class Trimmed:
    """A resumed upstream response started past the resume point: records [`from_seq_num`,
    `to_seq_num`) were trimmed meanwhile, and S2 answered from the first remaining one."""

    from_seq_num: int
    to_seq_num: int


@dataclass(frozen=True)
class AdvisedReconnect:
    """The server advised a reconnect (s2s flag); the session resumes at once from `next_seq_num`."""

    next_seq_num: int | None


SessionEvent = Retry | Trimmed | AdvisedReconnect
Observer = Callable[[SessionEvent], None]


def session_observer(metrics: Metrics, call: CallTrace) -> Observer:
    """What happens to a session's upstream, as metrics and as events on its span."""

    def observe(event: SessionEvent) -> None:
        match event:
            case Retry(attempt, delay, error):
                reason = reason_token(error)
                metrics.upstream_retries.labels("session", reason).inc()
                metrics.session_reconnects.labels(reason).inc()
                call.event("reconnect", {"s2.attempt": attempt, "s2.delay_s": delay, "error.type": reason})
            case Trimmed(lo, hi):
                metrics.trimmed_records_skipped.inc(hi - lo)
                call.event("trimmed", {"s2.trimmed.from_seq_num": lo, "s2.trimmed.to_seq_num": hi})
            case AdvisedReconnect(next_seq_num):
                metrics.advised_reconnects.inc()
                call.event("reconnect advised", {"s2.seq_num": -1 if next_seq_num is None else next_seq_num})

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
    on_records: Callable[[ReadBatch, float], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    encryption: EncryptionKey | None = None,
) -> AsyncGenerator[ReadBatch, None]:
    """Yield batches (and heartbeats: empty batches with a tail) until the session's stop,
    resuming after retryable failures. Raises `SessionInterrupted` when retries run out, and
    non-retryable `SidecarError`s as they come (a wrong or missing encryption key among them).
    `on_records` sees each batch of records before it is yielded, with when the upstream request
    that brought it was sent. `encryption`: the stream's key, sent with every resume."""
    plan = plan or ResumePlan(query)
    report = observe or (lambda _event: None)
    advice = AdvisedReconnects()
    attempt = 0
    next_query: ReadQuery | None = query
    while next_query is not None:
        response_start = True  # what upstream sends first may jump ahead (trimming); later, never
        advised = False
        asked_at = clock()
        try:
            async with contextlib.aclosing(client.read_session(basin, stream, next_query, encryption)) as batches:
                async for batch in batches:
                    if batch.count:
                        assert batch.first_seq_num is not None and batch.last_seq_num is not None
                        if trimmed := plan.admit_records(batch.first_seq_num, response_start=response_start):
                            _trimmed(basin, stream, Trimmed(batch.first_seq_num - trimmed, batch.first_seq_num), report)
                        metered = batch.metered_bytes() if plan.tracks_bytes else 0
                        plan.delivered(batch.count, batch.last_seq_num, metered, clock())
                        if on_records is not None:
                            on_records(batch, asked_at)  # the history cache keeps what S2 returned
                    elif batch.tail is not None:
                        if trimmed := plan.admit_heartbeat(batch.tail, response_start=response_start):
                            _trimmed(basin, stream, Trimmed(batch.tail.seq_num - trimmed, batch.tail.seq_num), report)
                        plan.caught_up(batch.tail, clock())
                    else:
                        continue  # neither records nor a tail: nothing to pass on
                    if batch.tail is not None and on_tail is not None:
                        on_tail(batch.tail)  # keeps the tail cache current for every app
                    response_start = False
                    attempt = 0  # a working session (a record or a heartbeat) resets the budget
                    yield batch
                    if batch.reconnect_advised and advice.should_reconnect(clock()):
                        advice.record(clock())
                        advised = True
                        break  # leaving the block closes this upstream response
            if not advised:
                return  # upstream ended the session cleanly: its stop was reached
            report(AdvisedReconnect(plan.next_seq_num))
            next_query = plan.next_query(clock())
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
            report(Retry(attempt, delay, e))
            await asyncio.sleep(delay)
            next_query = plan.next_query(clock())


def _trimmed(basin: str, stream: str, event: Trimmed, report: Observer) -> None:
    log.debug(
        "session %s/%s: records %d..%d were trimmed upstream; continuing at %d",
        basin, stream, event.from_seq_num, event.to_seq_num - 1, event.to_seq_num,
    )  # fmt: skip
    report(event)
