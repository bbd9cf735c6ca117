"""A Python app reading a stream from seq_num 0, as a user would write it, with typed records:

    python vs_sdk_reader.py sidecar TARGET BASIN STREAM N RUNS   # s2sidecar_client through a sidecar
    python vs_sdk_reader.py sdk     -      BASIN STREAM N RUNS   # s2-sdk's read_session (S2_*_ENDPOINT)

Runs as a script in its own interpreter: the `sdk` mode in the s2-sdk venv (protobuf < 7), the
`sidecar` mode in the project's venv with clients/python/src importable. Plain asyncio (what a user
gets by default). One warm-up run, then RUNS timed runs; prints one JSON line
{"rates": [records/s per run], "cpu": [this process's CPU seconds per run], "bytes": body bytes of
the last run}. Every record's body is touched
(summed lengths) so neither side can skip building its record objects.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable


async def sidecar_reader(target: str, basin: str, stream: str, n: int) -> Callable[[], Awaitable[int]]:
    from s2sidecar_client import ReadLimit, S2SidecarClient, SeqNum

    client = S2SidecarClient(target, basin)

    async def once() -> int:
        got = size = 0
        async for batch in client.read_session(stream, start=SeqNum(0), limit=ReadLimit(count=n)):
            for record in batch.records:
                size += len(record.body)
            got += len(batch.records)
        assert got == n, (got, n)
        return size

    return once


async def sdk_reader(basin: str, stream: str, n: int) -> Callable[[], Awaitable[int]]:
    from s2_sdk import S2, Endpoints, ReadLimit, SeqNum

    s2 = S2("any-token", endpoints=Endpoints.from_env())
    handle = s2.basin(basin).stream(stream)

    async def once() -> int:
        got = size = 0
        async for batch in handle.read_session(start=SeqNum(0), limit=ReadLimit(count=n)):
            for record in batch.records:
                size += len(record.body)
            got += len(batch.records)
        assert got == n, (got, n)
        return size

    return once


async def main(mode: str, target: str, basin: str, stream: str, n: int, runs: int) -> None:
    once = await (sidecar_reader(target, basin, stream, n) if mode == "sidecar" else sdk_reader(basin, stream, n))
    size = await once()  # warm up: connections, channels, code paths
    rates, cpu = [], []
    for _ in range(runs):
        t0, c0 = time.perf_counter(), time.process_time()
        size = await once()
        rates.append(n / (time.perf_counter() - t0))
        cpu.append(time.process_time() - c0)
    print(json.dumps({"rates": rates, "cpu": cpu, "bytes": size}), flush=True)


if __name__ == "__main__":
    m, tgt, b, s, count, r = sys.argv[1:7]
    asyncio.run(main(m, tgt, b, s, int(count), int(r)))
