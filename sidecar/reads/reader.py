"""The read logic's front door: what the gRPC layer calls for `Read`, `ReadSession`, `CheckTail`.

Unary calls retry with S2's policy within the caller's deadline, and identical concurrent calls
share one upstream request (`coalesce.py`). `CheckTail` answers from the tail cache when it is
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
from typing import TypeVar

from opentelemetry import trace

from sidecar.errors import DeadlineExceeded, SidecarError
from sidecar.reads.coalesce import SingleFlight
from sidecar.reads.hub import Hub, shareable
from sidecar.reads.plan import ResumePlan
from sidecar.reads.session import resumable_session, session_observer
from sidecar.reads.tails import CachedTail, StreamKey, TailCache
from sidecar.telemetry import NO_CALL_TRACE, S2_SHARED, CallTrace, reason_token
from sidecar.types import ReadQuery, StreamPosition
from sidecar.upstream.client import UpstreamClient
from sidecar.upstream.retry import RetryPolicy
from sidecar.wire.protobuf import ReadBatch

log = logging.getLogger(__name__)
T = TypeVar("T")


class StreamReader:
    def __init__(
        self,
        client: UpstreamClient,
        policy: RetryPolicy | None = None,
        *,
        cache: TailCache | None = None,
        share_sessions: bool = True,
        subscriber_queue: int = 64,
        silence_bound: float = 20.0,
        tracer: trace.Tracer | None = None,
    ) -> None:
        self.client = client
        self.policy = policy or RetryPolicy()
        self.tails = cache or TailCache()
        self.hub = Hub(
            client,
            self.policy,
            self.tails,
            queue_batches=subscriber_queue,
            silence_bound=silence_bound,
            tracer=tracer,
        )
        client.metrics.shared_session_subscribers.set_function(lambda: self.hub.subscribers)
        self.share_sessions = share_sessions
        self._tail_calls: SingleFlight[StreamKey, StreamPosition] = SingleFlight()
        self._read_calls: SingleFlight[tuple[str, str, ReadQuery], ReadBatch] = SingleFlight()

    async def close(self) -> None:
        await self.hub.close()

    async def _retrying(self, what: str, kind: str, call: Callable[[], Awaitable[T]], deadline: float | None) -> T:
        """Run `call` until it succeeds, fails for good, or the next try would pass `deadline`."""
        attempt = 0
        while True:
            try:
                if deadline is None:
                    return await call()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise DeadlineExceeded(f"{what}: deadline reached before upstream answered")
                async with asyncio.timeout(remaining):
                    return await call()
            except TimeoutError:
                raise DeadlineExceeded(f"{what}: deadline reached before upstream answered") from None
            except SidecarError as e:
                attempt += 1
                if not self.policy.should_retry(e, attempt):
                    raise
                delay = self.policy.delay(e, attempt)
                if deadline is not None and time.monotonic() + delay >= deadline:
                    raise
                log.info("%s failed (%s); retry %d in %.2fs", what, e, attempt, delay)
                self.client.metrics.upstream_retries.labels(kind, reason_token(e)).inc()
                trace.get_current_span().add_event(
                    "retry", {"s2.attempt": attempt, "s2.delay_s": delay, "error.type": reason_token(e)}
                )
                await asyncio.sleep(delay)

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
        misses for one stream share one request). Errors are never cached."""
        key = (basin, stream)
        cache_metric = self.client.metrics.tail_cache
        if (cached := self.tails.get(key, max_age)) is not None:
            cache_metric.labels("hit").inc()
            return cached  # with max_age 0, only a tail that a live session vouches for
        cache_metric.labels("miss").inc()

        async def fetch() -> StreamPosition:
            tail = await self._retrying(
                f"check tail {basin}/{stream}", "tail", lambda: self.client.check_tail(*key), None
            )
            self.tails.observe(key, tail, authoritative=True)
            return tail

        tail, leader = await self._wait(self._tail_calls.do(key, fetch), deadline, f"check tail {basin}/{stream}")
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
    ) -> ReadBatch:
        """One batch; identical concurrent reads share one upstream request."""

        async def fetch() -> ReadBatch:
            batch = await self._retrying(
                f"read {basin}/{stream}", "read", lambda: self.client.read(basin, stream, query), None
            )
            if batch.tail is not None:
                self.tails.observe((basin, stream), batch.tail)
            return batch

        flight = self._read_calls.do((basin, stream, query), fetch)
        batch, leader = await self._wait(flight, deadline, f"read {basin}/{stream}")
        if leader is not None:
            call.set(S2_SHARED, True)
            call.link(leader, {"s2.shared": "coalesced Read"})
        return batch

    @staticmethod
    async def _wait(shared: Awaitable[T], deadline: float | None, what: str) -> T:
        """Wait for a shared call within this caller's own deadline."""
        if deadline is None:
            return await shared
        try:
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                return await shared
        except TimeoutError:
            raise DeadlineExceeded(f"{what}: deadline reached before upstream answered") from None

    def session(
        self,
        basin: str,
        stream: str,
        query: ReadQuery,
        *,
        plan: ResumePlan | None = None,
        call: CallTrace = NO_CALL_TRACE,
    ) -> AsyncGenerator[ReadBatch, None]:
        plan = plan or ResumePlan(query)
        if self.share_sessions and shareable(query):
            batches = self.hub.session(basin, stream, query, plan, call=call)
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
            )
        return batches
