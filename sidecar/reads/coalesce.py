"""Single flight: concurrent identical requests share one upstream call.

The shared call runs in its own task, so one caller giving up (cancelled, or past its deadline)
does not cancel it for the others; each caller waits with its own deadline. The call runs only
for its callers: when the last one leaves, it is cancelled (its upstream connection is freed at
once), and the next identical request starts a fresh one.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from opentelemetry import trace
from opentelemetry.trace import SpanContext

from sidecar.errors import SidecarError

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass
class Progress:
    """How a shared call is going, for callers that must answer before it ends."""

    failures: int = 0
    last_error: SidecarError | None = None
    backing_off: bool = False  # waiting between a failed try and the next


class WaitTimedOut(Exception):
    """A caller's `until` came before the shared call's answer (which goes on for the others)."""

    def __init__(self, progress: Progress) -> None:
        super().__init__("the shared call did not answer in time")
        self.progress = progress


@dataclass
class _Flight(Generic[V]):
    task: asyncio.Task[V]
    leader: SpanContext
    progress: Progress
    waiters: int = 0


class SingleFlight(Generic[K, V]):
    def __init__(self) -> None:
        self._inflight: dict[K, _Flight[V]] = {}

    def __len__(self) -> int:
        return len(self._inflight)

    async def do(
        self, key: K, call: Callable[[Progress], Awaitable[V]], *, until: float | None = None
    ) -> tuple[V, SpanContext | None]:
        """The call's result, and None if this caller made the call, else the span context of the
        caller that did (so joiners can link their spans to the shared work). `call` reports its
        retries in the `Progress` it is given. Raises `WaitTimedOut` at `until` (`time.monotonic()`)."""
        flight = self._inflight.get(key)
        leader: SpanContext | None = None
        if flight is None:
            progress = Progress()
            task = asyncio.ensure_future(call(progress))
            flight = _Flight(task, trace.get_current_span().get_span_context(), progress)
            self._inflight[key] = flight
            task.add_done_callback(functools.partial(self._done, key, flight))
        else:
            leader = flight.leader
        flight.waiters += 1
        try:
            # asyncio.wait leaves the task running when this caller times out or is cancelled.
            timeout = None if until is None else max(0.0, until - time.monotonic())
            await asyncio.wait((flight.task,), timeout=timeout)
            if not flight.task.done():
                raise WaitTimedOut(flight.progress)
            return flight.task.result(), leader
        finally:
            flight.waiters -= 1
            if flight.waiters == 0 and not flight.task.done():
                flight.task.cancel()  # nobody waits for the answer any more
                if self._inflight.get(key) is flight:
                    del self._inflight[key]  # a later caller starts afresh

    def _done(self, key: K, flight: _Flight[V], task: asyncio.Task[V]) -> None:
        if self._inflight.get(key) is flight:
            del self._inflight[key]
        if not task.cancelled():
            task.exception()  # retrieved even if every caller left, so asyncio does not log it
