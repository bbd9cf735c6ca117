"""Single flight: concurrent identical requests share one upstream call.

The shared call runs in its own task, so one caller giving up (cancelled, or past its deadline)
does not cancel it for the others; each caller waits with its own deadline.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    def __init__(self) -> None:
        self._inflight: dict[K, asyncio.Task[V]] = {}
        self.calls = 0  # calls actually made (for tests and metrics)
        self.shared = 0  # callers that joined a call already in flight

    def __len__(self) -> int:
        return len(self._inflight)

    async def do(self, key: K, call: Callable[[], Awaitable[V]]) -> V:
        task = self._inflight.get(key)
        if task is None:
            self.calls += 1
            task = asyncio.ensure_future(call())
            self._inflight[key] = task
            task.add_done_callback(functools.partial(self._done, key))
        else:
            self.shared += 1
        return await asyncio.shield(task)

    def _done(self, key: K, task: asyncio.Task[V]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled():
            task.exception()  # retrieved even if every caller left, so asyncio does not log it
