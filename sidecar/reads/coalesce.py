"""Single flight: concurrent identical requests share one upstream call.

The shared call runs in its own task, so one caller giving up (cancelled, or past its deadline)
does not cancel it for the others; each caller waits with its own deadline.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from opentelemetry import trace
from opentelemetry.trace import SpanContext

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    def __init__(self) -> None:
        self._inflight: dict[K, asyncio.Task[V]] = {}
        self._leaders: dict[K, SpanContext] = {}

    def __len__(self) -> int:
        return len(self._inflight)

    async def do(self, key: K, call: Callable[[], Awaitable[V]]) -> tuple[V, SpanContext | None]:
        """The call's result, and None if this caller made the call, else the span context of the
        caller that did (so joiners can link their spans to the shared work)."""
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.ensure_future(call())
            self._inflight[key] = task
            self._leaders[key] = trace.get_current_span().get_span_context()
            task.add_done_callback(functools.partial(self._done, key))
            return await asyncio.shield(task), None
        leader = self._leaders.get(key)
        return await asyncio.shield(task), leader

    def _done(self, key: K, task: asyncio.Task[V]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
            self._leaders.pop(key, None)
        if not task.cancelled():
            task.exception()  # retrieved even if every caller left, so asyncio does not log it
