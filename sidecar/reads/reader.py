"""The read logic's front door: what the gRPC layer calls for `Read`, `ReadSession`, `CheckTail`.

Unary calls retry with S2's policy and answer by the caller's deadline (with the last upstream
error when it was failing); identical concurrent calls share one upstream request, which is
cancelled when no caller waits for it any more (`coalesce.py`). `CheckTail` answers from the tail cache when it is
fresh enough (`tails.py`). Sessions resume after failures (`session.py`), and sessions that
follow a stream live share one upstream session (`hub.py`). Everything upstream goes through
the one shared `UpstreamClient`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import replace
from typing import TypeVar

from opentelemetry import trace

from sidecar.encryption import EncryptionKey, scope_of
from sidecar.errors import DeadlineExceeded, RetriesExhausted, RetriesStopped, S2Error, SidecarError
from sidecar.reads.coalesce import Progress, SingleFlight, WaitTimedOut
from sidecar.reads.history import HistoryCache
from sidecar.reads.hub import Hub, shareable
from sidecar.reads.plan import ResumePlan
from sidecar.reads.replay import Replays
from sidecar.reads.session import resumable_session, session_observer
from sidecar.reads.tails import CachedTail, TailCache
from sidecar.telemetry import NO_CALL_TRACE, S2_SHARED, CallTrace, reason_token
from sidecar.types import ReadQuery, ReadScope, SeqNum, StreamKey, StreamPosition
from sidecar.upstream.client import UpstreamClient
from sidecar.upstream.retry import RetryPolicy
from sidecar.wire.protobuf import ReadBatch, decode_read_batch, merge_batches

log = logging.getLogger(__name__)
T = TypeVar("T")

# Answer this long before the caller's deadline (at most half the time left), so that our answer,
# not the client's own bare DEADLINE_EXCEEDED, reaches the app.
DEADLINE_MARGIN = 0.2
_POLL_SLACK = 0.1  # an upstream long poll should end this long before we must answer


def answer_by(deadline: float | None) -> float | None:
    """When (`time.monotonic()`) to answer a caller whose deadline is `deadline`."""
    if deadline is None:
        return None
    return deadline - min(DEADLINE_MARGIN, max(0.0, deadline - time.monotonic()) / 2)


def _rules_out(error: SidecarError) -> bool:
    """Whether an upstream error on the rest of a read says the cached part must not be served
    either: the stream is gone (404: deleted, or its basin). A 416 (the rest is past the tail)
    and transient failures leave the cached records S2's answer."""
    return isinstance(error, S2Error) and error.status == 404


def _gave_up(what: str, progress: Progress) -> SidecarError:
    """The caller's answer when its deadline comes first: the upstream's last error if it was
    failing, else that it was too slow."""
    if progress.last_error is not None:
        return RetriesStopped(progress.last_error, progress.failures)
    return DeadlineExceeded(f"{what}: the call's deadline came before upstream answered")


class StreamReader:
    def __init__(
        self,
        client: UpstreamClient,
        policy: RetryPolicy | None = None,
        *,
        tails: TailCache | None = None,
        share_sessions: bool = True,
        subscriber_queue: int = 64,
        silence_bound: float = 20.0,
        tracer: trace.Tracer | None = None,
        history: HistoryCache | None = None,
    ) -> None:
        self.client = client
        self.policy = policy or RetryPolicy()
        self.tails = tails or TailCache()
        self.history = history if history is not None else HistoryCache(0)
        self.hub = Hub(
            client,
            self.policy,
            self.tails,
            queue_batches=subscriber_queue,
            silence_bound=silence_bound,
            tracer=tracer,
        )
        client.metrics.shared_session_subscribers.set_function(lambda: self.hub.subscribers)
        client.metrics.history_cache_bytes.set_function(lambda: self.history.bytes)
        self.share_sessions = share_sessions
        self.replays = Replays(client, self.policy, self.history, self.tails, self.hub, share_sessions=share_sessions)
        if self.history.enabled:
            self.hub.on_records = self.replays.fill
        self._tail_calls: SingleFlight[StreamKey, StreamPosition] = SingleFlight()
        # Only reads with the same key (or none) share a call: the scope names it.
        self._read_calls: SingleFlight[tuple[ReadScope, ReadQuery], ReadBatch] = SingleFlight()

    async def close(self) -> None:
        await self.hub.close()
        await self.replays.close()

    async def _retrying(self, what: str, kind: str, call: Callable[[], Awaitable[T]], progress: Progress) -> T:
        """Run `call` until it succeeds or fails for good, reporting each failure in `progress`.
        No deadline here: the shared call runs while someone waits for it (`coalesce.py`), and
        each caller answers by its own deadline; the policy's attempts and time budget bound the
        retrying of a call without one. Logs: the first retry at INFO, the next ones at DEBUG (an
        unreachable upstream would otherwise write ten lines per call), giving up once at WARNING."""
        started = time.monotonic()
        while True:
            try:
                return await call()
            except SidecarError as e:
                progress.failures += 1
                progress.last_error = e
                attempt = progress.failures
                if not e.retryable:
                    raise
                delay = self.policy.delay(e, attempt)
                elapsed = time.monotonic() - started
                if not (self.policy.should_retry(e, attempt) and self.policy.within_budget(elapsed, delay)):
                    log.warning(
                        "%s: giving up after %d attempts over %.1fs (at most %d retries within %.0fs): %s",
                        what, attempt, elapsed, self.policy.max_attempts, self.policy.max_total, e,
                    )  # fmt: skip
                    raise RetriesExhausted(e, attempt, elapsed) from e
                level = logging.INFO if attempt == 1 else logging.DEBUG
                log.log(level, "%s failed (%s); retry %d in %.2fs", what, e, attempt, delay)
                self.client.metrics.upstream_retries.labels(kind, reason_token(e)).inc()
                span = trace.get_current_span()  # the first caller's: it may have left (and ended it)
                if span.is_recording():
                    span.add_event("retry", {"s2.attempt": attempt, "s2.delay_s": delay, "error.type": reason_token(e)})
                progress.backing_off = True
                try:
                    await asyncio.sleep(delay)
                finally:
                    progress.backing_off = False

    async def check_tail(
        self,
        basin: str,
        stream: str,
        *,
        max_age: float = 0.0,
        deadline: float | None = None,
        call: CallTrace = NO_CALL_TRACE,
    ) -> CachedTail:
        """The tail, from the cache when at most `max_age` seconds old, else from S2 (concurrent
        misses for one stream share one request). Errors are never cached. S2 answers a tail with
        no encryption key, so one cache serves every app, whatever key it reads with."""
        key = (basin, stream)
        cache_metric = self.client.metrics.tail_cache
        if (cached := self.tails.get(key, max_age)) is not None:
            cache_metric.labels("hit").inc()
            return cached  # with max_age 0, only a tail that a live session vouches for
        cache_metric.labels("miss").inc()
        what = f"check tail {basin}/{stream}"

        async def fetch(progress: Progress) -> StreamPosition:
            asked_at = time.monotonic()
            try:
                tail = await self._retrying(what, "tail", lambda: self.client.check_tail(*key), progress)
            except SidecarError as e:
                self.replays.upstream_failed(key, e)
                raise
            self.tails.observe(key, tail, authoritative=True)
            self.history.observe_tail(key, tail.seq_num, asked_at)  # shorter than what is held: a new stream
            return tail

        try:
            tail, leader = await self._tail_calls.do(key, fetch, until=answer_by(deadline))
        except WaitTimedOut as e:
            raise _gave_up(what, e.progress) from None
        if leader is not None:
            call.set(S2_SHARED, True)
            call.link(leader, {"s2.shared": "coalesced CheckTail"})
        return CachedTail(tail, 0.0, hit=False)

    async def read(
        self,
        basin: str,
        stream: str,
        query: ReadQuery,
        *,
        deadline: float | None = None,
        call: CallTrace = NO_CALL_TRACE,
        encryption: EncryptionKey | None = None,
    ) -> ReadBatch:
        """One batch; identical concurrent reads (with the same key: `encryption`) share one
        upstream request. A long poll (`wait`) answers an empty batch by the caller's deadline
        when nothing arrived."""
        until = answer_by(deadline)
        if until is not None and query.wait:
            # S2's wait is whole seconds: ask for what fits (so S2 itself answers "nothing yet"),
            # at least 1 (0 at the tail is a 416); `until` cuts a longer one short.
            fits = int(until - time.monotonic() - _POLL_SLACK)
            query = replace(query, wait=max(1, min(query.wait, fits)))
        cached: ReadBatch | None = None
        rest: ReadQuery | None = query
        if self.history.enabled:
            cached, rest = self.replays.read_cached(scope_of(basin, stream, encryption), query, call, encryption)
        if rest is None:
            assert cached is not None
            return cached
        try:
            batch = await self._read_upstream(basin, stream, rest, until, call, encryption)
        except SidecarError as e:
            if cached is None or _rules_out(e):
                raise
            # The rest of the batch could not be read: the cached records are still S2's answer
            # from where the read started (the app continues after them, as after any batch).
            log.info("read %s/%s: answered %d cached records; the rest failed: %s", basin, stream, cached.count, e)
            return cached
        if cached is None:
            return batch
        return merge_batches([cached, batch]) if batch.count else cached

    async def _read_upstream(
        self,
        basin: str,
        stream: str,
        query: ReadQuery,
        until: float | None,
        call: CallTrace,
        encryption: EncryptionKey | None,
    ) -> ReadBatch:
        """One batch from upstream; identical concurrent reads with the same key share one request."""
        what = f"read {basin}/{stream}"
        key = scope_of(basin, stream, encryption)

        async def fetch(progress: Progress) -> ReadBatch:
            asked_at = time.monotonic()
            try:
                batch = await self._retrying(
                    what, "read", lambda: self.client.read(basin, stream, query, encryption), progress
                )
            except SidecarError as e:
                self.replays.upstream_failed((basin, stream), e)
                raise
            if batch.tail is not None:
                self.tails.observe((basin, stream), batch.tail)
            if self.history.enabled:
                self.replays.fill(key, batch, asked_at)
            return batch

        try:
            batch, leader = await self._read_calls.do((key, query), fetch, until=until)
        except WaitTimedOut as e:
            if query.wait and not e.progress.backing_off:
                return decode_read_batch(b"")  # the long poll is still waiting: no records yet
            raise _gave_up(what, e.progress) from None
        if leader is not None:
            call.set(S2_SHARED, True)
            call.link(leader, {"s2.shared": "coalesced Read"})
        return batch

    def session(
        self,
        basin: str,
        stream: str,
        query: ReadQuery,
        *,
        plan: ResumePlan | None = None,
        call: CallTrace = NO_CALL_TRACE,
        encryption: EncryptionKey | None = None,
    ) -> AsyncGenerator[ReadBatch, None]:
        """A session; `encryption` (the stream's key) goes with it and with each of its resumes,
        and it shares feeds, replays and cached records only with sessions of the same key."""
        plan = plan or ResumePlan(query)
        if self.history.enabled and isinstance(query.start, SeqNum):
            return self.replays.session(basin, stream, query, plan, call=call, encryption=encryption)
        scope = scope_of(basin, stream, encryption)
        fill = functools.partial(self.replays.fill, scope) if self.history.enabled else None
        if self.share_sessions and shareable(query):
            batches = self.hub.session(basin, stream, query, plan, call=call, encryption=encryption)
        else:
            observe = session_observer(self.client.metrics, call)
            batches = resumable_session(
                self.client,
                basin,
                stream,
                query,
                policy=self.policy,
                plan=plan,
                observe=observe,
                on_tail=functools.partial(self.tails.observe, (basin, stream)),
                on_records=fill,
                encryption=encryption,
            )
        return batches
