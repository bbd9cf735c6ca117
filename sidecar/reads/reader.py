"""The read logic's front door: what the gRPC layer calls for `Read`, `ReadSession`, `CheckTail`.

Unary calls retry with S2's policy within the caller's deadline; sessions resume (see
`session.py`). Everything upstream goes through the one shared `UpstreamClient`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from sidecar.errors import SidecarError, TransportError
from sidecar.reads.plan import ResumePlan
from sidecar.reads.session import Observer, resumable_session
from sidecar.types import ReadQuery, StreamPosition
from sidecar.upstream.client import UpstreamClient
from sidecar.upstream.retry import RetryPolicy
from sidecar.wire.protobuf import ReadBatch

log = logging.getLogger(__name__)
T = TypeVar("T")


class StreamReader:
    def __init__(self, client: UpstreamClient, policy: RetryPolicy | None = None) -> None:
        self.client = client
        self.policy = policy or RetryPolicy()

    async def _retrying(self, what: str, call: Callable[[], Awaitable[T]], deadline: float | None) -> T:
        """Run `call` until it succeeds, fails for good, or the next try would pass `deadline`."""
        attempt = 0
        while True:
            try:
                if deadline is None:
                    return await call()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TransportError(f"{what}: deadline reached before upstream answered")
                async with asyncio.timeout(remaining):
                    return await call()
            except TimeoutError:
                raise TransportError(f"{what}: deadline reached before upstream answered") from None
            except SidecarError as e:
                attempt += 1
                if not self.policy.should_retry(e, attempt):
                    raise
                delay = self.policy.delay(e, attempt)
                if deadline is not None and time.monotonic() + delay >= deadline:
                    raise
                log.info("%s failed (%s); retry %d in %.2fs", what, e, attempt, delay)
                await asyncio.sleep(delay)

    async def check_tail(self, basin: str, stream: str, *, deadline: float | None = None) -> StreamPosition:
        return await self._retrying(
            f"check tail {basin}/{stream}", lambda: self.client.check_tail(basin, stream), deadline
        )

    async def read(self, basin: str, stream: str, query: ReadQuery, *, deadline: float | None = None) -> ReadBatch:
        return await self._retrying(f"read {basin}/{stream}", lambda: self.client.read(basin, stream, query), deadline)

    def session(
        self,
        basin: str,
        stream: str,
        query: ReadQuery,
        *,
        plan: ResumePlan | None = None,
        observe: Observer | None = None,
    ) -> AsyncIterator[ReadBatch]:
        return resumable_session(self.client, basin, stream, query, policy=self.policy, plan=plan, observe=observe)
