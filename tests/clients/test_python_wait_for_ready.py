"""An app that starts before its sidecar: the clients wait for the first
connection (gRPC's wait_for_ready) instead of failing fast, and `wait_for_ready()` waits for the
sidecar explicitly. Retries are turned off here so that only the waiting can make a call succeed."""

from __future__ import annotations

import asyncio

import pytest
from s2sidecar_client import RetryPolicy, S2SidecarClient, S2SidecarSyncClient

from sidecar.testing import SidecarProcess, free_port

NO_RETRY = RetryPolicy(max_attempts=1)


async def _sidecar_later(port: int, after: float) -> SidecarProcess:
    await asyncio.sleep(after)
    sc = SidecarProcess(grpc_port=port)
    await sc.__aenter__()
    return sc


async def test_the_first_call_waits_for_a_sidecar_that_starts_later() -> None:
    port = free_port()
    async with S2SidecarClient(f"127.0.0.1:{port}", retry=NO_RETRY, timeout=30) as client:
        starting = asyncio.create_task(_sidecar_later(port, 1.0))
        try:
            with pytest.raises(Exception) as missing:  # answered: the sidecar is up, the stream is not
                await client.check_tail("no-such-stream")
            assert type(missing.value).__name__ == "StreamNotFound", missing.value
        finally:
            await (await starting).__aexit__(None, None, None)


async def test_wait_for_ready_times_out_saying_where() -> None:
    port = free_port()
    async with S2SidecarClient(f"127.0.0.1:{port}") as client:
        with pytest.raises(TimeoutError, match=rf"s2-sidecar at 127\.0\.0\.1:{port} is not ready after 0\.3 s"):
            await client.wait_for_ready(timeout=0.3)
        sc = await _sidecar_later(port, 0)
        try:
            await client.wait_for_ready(timeout=30)
        finally:
            await sc.__aexit__(None, None, None)


async def test_the_sync_client_waits_too() -> None:
    port = free_port()
    client = S2SidecarSyncClient(f"127.0.0.1:{port}", retry=NO_RETRY, timeout=30)
    try:
        with pytest.raises(TimeoutError, match=r"is not ready after 0\.3 s"):
            await asyncio.to_thread(client.wait_for_ready, 0.3)
        starting = asyncio.create_task(_sidecar_later(port, 1.0))
        try:
            with pytest.raises(Exception) as missing:
                await asyncio.to_thread(client.check_tail, "no-such-stream")
            assert type(missing.value).__name__ == "StreamNotFound", missing.value
        finally:
            await (await starting).__aexit__(None, None, None)
    finally:
        client.close()
