"""Bounds on the injector's work, so no review can stall it or take more than the chart's memory
limit (256Mi). The figures behind them are in helm/s2-sidecar/README.md ("Bounds").

Kubernetes bounds a pod it can store (etcd keeps objects up to 1.5 MiB; the API server accepts
requests up to 3 MiB); these bounds sit above anything it could store and below what would hurt.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

MiB = 1024 * 1024

# Request bodies over this get HTTP 413 unread (the API server then applies failurePolicy).
MAX_BODY = 4 * MiB
# containers + initContainers the injector patches; a bigger pod is refused before any work.
MAX_CONTAINERS = 1000
# The JSON Patch in an answer (base64 makes it 4/3 of this); a longer one is refused.
MAX_PATCH_BYTES = 1 * MiB
# The answer echoes the uid (the API server sends a 36-character UUID).
MAX_UID = 128

# Memory a body can take while it is read, decoded and parsed, per byte of it: measured at most
# ~25x for JSON made of `{},` (a 64-byte dict and a list slot per 3 bytes), plus the copies of the
# body. An estimate made before reading, from Content-Length.
COST_PER_BYTE = 32
# What the reviews being worked on at once may take together (the process itself is ~45 MiB).
WORK_BUDGET = 160 * MiB


def review_cost(content_length: int | None) -> int:
    """The memory to reserve for a body of this length (unknown: the most a body may be)."""
    length = MAX_BODY if content_length is None else min(content_length, MAX_BODY)
    return length * COST_PER_BYTE


class WorkBudget:
    """Reviews wait here, in arrival order, until their cost fits in what is left of the budget.

    First come, first served: a big review at the head of the line is not overtaken by small ones
    (they queue behind it, so it cannot starve). A cost above the whole budget is capped to it,
    so such a review runs alone rather than never.
    """

    def __init__(self, total: int) -> None:
        self.total = total
        self.used = 0
        self._turn = asyncio.Lock()  # FIFO: only the head of the line waits for room
        self._freed = asyncio.Event()

    @asynccontextmanager
    async def reserve(self, cost: int) -> AsyncIterator[None]:
        cost = max(0, min(cost, self.total))
        async with self._turn:
            while self.used + cost > self.total:
                self._freed.clear()
                await self._freed.wait()
            self.used += cost
        try:
            yield
        finally:
            self.used -= cost  # no await: a cancelled review cannot leak its reservation
            self._freed.set()
