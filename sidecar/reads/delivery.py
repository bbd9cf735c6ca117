"""What an app is sent of its session: each batch with whether it leaves the app caught up, and
command records left out when the app asks (S2's SDKs' `ignore_command_records`).

Per app, after everything shared: the read logic below (resumes, shared feeds, replays, the
history cache) sees every record S2 returned, so a session's limits, its resume point and what
it shares with other apps are those of the records S2 returned, command records included. That is
how S2's SDKs count since they fixed it (s2-streamstore/s2 PR 387, s2-streamstore/s2-sdk-python
PR 34): they filter after counting.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from dataclasses import dataclass

from sidecar.wire.protobuf import ReadBatch, without_command_records


@dataclass(frozen=True, slots=True)
class Delivery:
    batch: ReadBatch  # what the app is sent
    # Every record before the batch's tail was sent (or left out, or trimmed) with this batch: S2's
    # SDKs' caught-up rule, judged on the batch as S2 returned it, before any record is left out.
    caught_up: bool


async def deliveries(
    batches: AsyncGenerator[ReadBatch, None], *, ignore_command_records: bool = False
) -> AsyncGenerator[Delivery, None]:
    """`batches` as an app receives them. With `ignore_command_records`, a batch left with no
    records goes out only when it reached the tail (a heartbeat, as S2's SDKs then report caught
    up); otherwise there is nothing to tell. Closing this closes `batches`."""
    async with contextlib.aclosing(batches):
        async for batch in batches:
            caught_up = batch.reaches_tail
            if ignore_command_records:
                batch = without_command_records(batch)
                if not batch.count and not caught_up:
                    continue
            yield Delivery(batch, caught_up)


def read_answer(batch: ReadBatch, *, ignore_command_records: bool = False) -> tuple[ReadBatch, int | None]:
    """A `Read`'s answer, and where the read ended when that cannot be seen in it: with
    `ignore_command_records`, the seq_num after the last record S2 returned, when records were
    left out (S2's SDKs answer the same one batch, filtered, possibly empty)."""
    if not ignore_command_records:
        return batch, None
    shown = without_command_records(batch)
    if shown.count == batch.count:
        return batch, None
    assert batch.last_seq_num is not None  # records were left out, so there were some
    return shown, batch.last_seq_num + 1
