"""Real resumable sessions (sidecar/reads) over the HTTP/2 upstream when its connection breaks.

A GOAWAY with an error runs against the emulator (its `/_emulator/http2/goaway` hook); aborting
every TCP connection at once and checking each resumed request's parameters and timing need the
test server (tests/upstream/h2server.py), which records them."""

from __future__ import annotations

import asyncio
import time

from sidecar.reads.session import resumable_session
from sidecar.types import ReadLimit, ReadQuery, SeqNum
from sidecar.upstream import RetryPolicy, UpstreamClient
from tests.upstream.h2server import H2TestServer, wait_until
from tests.upstream.test_http2 import BASIN, emulated, h2_client


async def _read_all(
    client: UpstreamClient, stream: str, total: int, seqs: list[int] | None = None, wait: int | None = None
) -> list[int]:
    seqs = [] if seqs is None else seqs
    query = ReadQuery(start=SeqNum(0), limit=ReadLimit(count=total), wait=wait)
    async for batch in resumable_session(client, BASIN, stream, query, policy=RetryPolicy()):
        seqs.extend(r.seq_num for r in batch.records())
    return seqs


async def test_connection_reset_under_200_sessions_loses_and_repeats_nothing() -> None:
    total, sessions = 1000, 200
    async with (
        H2TestServer(records=total, batch=10, pace=0.01, max_streams=1000) as server,
        h2_client(server, h2_connections=1) as client,
    ):
        received: list[list[int]] = [[] for _ in range(sessions)]
        tasks = [asyncio.ensure_future(_read_all(client, f"s{i}", total, received[i])) for i in range(sessions)]
        # Every session has delivered records (not merely been sent some): each must resume past 0.
        await wait_until(lambda: all(received), 30)
        assert client.pool_stats()["connections_h2"] == 1
        reset_at = time.monotonic()
        server.abort_all()  # every session on the connection breaks at the same moment
        results = await asyncio.wait_for(asyncio.gather(*tasks), 90)
        for seqs in results:
            assert seqs == list(range(total))  # nothing lost, nothing repeated, in order
        resumed = sorted(t for t, _name, params in server.requests if t > reset_at)
        assert len(resumed) == sessions
        assert all(params["seq_num"] != "0" for t, _n, params in server.requests if t > reset_at)
        # RetryPolicy's jitter spreads the reconnects: no synchronized storm.
        assert resumed[-1] - resumed[0] > 0.03
        assert server.connections_opened == 2  # all of them on one new connection


async def test_goaway_with_error_mid_sessions_resumes_them() -> None:
    total, sessions = 600, 20
    async with emulated() as emu, h2_client(emu) as client:
        for i in range(sessions):
            await emu.append(f"s{i}", total // 2)
        tasks = [asyncio.ensure_future(_read_all(client, f"s{i}", total, wait=30)) for i in range(sessions)]
        await emu.wait_for_sessions(sessions)  # each has read half and waits at the tail
        await emu.hook("POST", "http2/goaway?error_code=INTERNAL_ERROR")  # then the emulator hangs up
        for i in range(sessions):
            await emu.append(f"s{i}", total // 2)
        results = await asyncio.wait_for(asyncio.gather(*tasks), 60)
        assert all(seqs == list(range(total)) for seqs in results)
        requests = (await emu.hook("GET", "stats"))["requests"]
        assert all(requests[f"{BASIN}/s{i}"]["session"] == 2 for i in range(sessions))  # each resumed once
