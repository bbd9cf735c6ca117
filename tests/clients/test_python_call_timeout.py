"""A call's `timeout` replaces the client's for that call, with the same meaning (a `read`'s
`wait` on top, retries included; `None`: no deadline), as Node's per-call `timeoutMs` and Ruby's
`timeout:` do (clients/README.md, "Defaults, side by side"). Calls made before a first answer wait
for the sidecar within their deadline, so an address where no sidecar answers shows which deadline
a call had."""

from __future__ import annotations

import asyncio
import time

import pytest
from s2sidecar_client import DeadlineExceeded, RetryPolicy, S2SidecarClient, S2SidecarSyncClient, SeqNum, StreamNotFound

from sidecar.testing import SidecarProcess, free_port

NO_RETRY = RetryPolicy(max_attempts=1)


async def test_a_calls_timeout_replaces_the_clients_long_one() -> None:
    async with S2SidecarClient(f"127.0.0.1:{free_port()}", retry=NO_RETRY, timeout=120) as client:
        async with asyncio.timeout(60):  # the client's 120 s would not end them in time
            with pytest.raises(DeadlineExceeded):
                await client.check_tail("s", timeout=1)
            started = time.monotonic()
            with pytest.raises(DeadlineExceeded):
                await client.read("s", start=SeqNum(0), wait=1, timeout=1)
            assert time.monotonic() - started >= 2  # the wait comes on top of the call's timeout


async def test_none_lifts_the_clients_short_deadline_for_one_call() -> None:
    port = free_port()
    async with S2SidecarClient(f"127.0.0.1:{port}", retry=NO_RETRY, timeout=0.5) as client:
        with pytest.raises(DeadlineExceeded):
            await client.check_tail("no-such-stream")  # the client's 0.5 s: nobody answers in time
        sc = SidecarProcess(grpc_port=port)
        starting = asyncio.create_task(sc.__aenter__())
        try:
            with pytest.raises(StreamNotFound):  # answered: it waited for the sidecar to start
                await asyncio.wait_for(client.check_tail("no-such-stream", timeout=None), 60)
        finally:
            await starting
            await sc.__aexit__(None, None, None)


async def test_the_sync_client_takes_a_calls_timeout_too() -> None:
    client = S2SidecarSyncClient(f"127.0.0.1:{free_port()}", retry=NO_RETRY, timeout=120)
    try:
        async with asyncio.timeout(60):
            with pytest.raises(DeadlineExceeded):
                await asyncio.to_thread(client.check_tail, "s", timeout=1)
            with pytest.raises(DeadlineExceeded):
                await asyncio.to_thread(lambda: client.read("s", start=SeqNum(0), wait=1, timeout=1))
    finally:
        client.close()
