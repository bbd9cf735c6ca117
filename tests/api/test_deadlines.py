"""The caller's gRPC deadline bounds everything a unary call does: retries against a failing
upstream end before it with a status that says what failed, and stop when the caller is gone;
a long poll answers "no records yet" before it."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest

from sidecar._proto.s2sidecar.v1 import stream_pb2 as pb
from sidecar.testing import SidecarHarness
from tests.api.helpers import error_info, retry_info

Code = grpc.StatusCode


async def upstream_requests(h: SidecarHarness, stream: str, kind: str) -> int:
    stats = await h.emulator_stats()
    return int(stats["requests"].get(f"{h.basin}/{stream}", {}).get(kind, 0))


async def assert_retries_stopped(h: SidecarHarness, stream: str, kind: str) -> None:
    """No more upstream requests for `stream` once the caller has its answer."""
    await asyncio.sleep(0.3)  # a request already sent may still land
    before = await upstream_requests(h, stream, kind)
    await asyncio.sleep(2.5)  # the policy's backoff is at most 2 s
    assert await upstream_requests(h, stream, kind) == before, "the sidecar kept retrying for a caller that left"


@pytest.mark.emulator_only  # emulator hooks: stats, faults
@pytest.mark.parametrize("method", ["CheckTail", "Read"])
async def test_retries_end_before_the_deadline_with_the_last_upstream_error(
    harness: SidecarHarness, stream: str, method: str
) -> None:
    kind = "tail" if method == "CheckTail" else "read"
    await harness.create_stream(stream)
    await harness.inject_fault(kind=kind, stream=stream, status=503, code="unavailable", fail=1000)
    started = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as info:
        if method == "CheckTail":
            await harness.stub.CheckTail(pb.CheckTailRequest(stream=stream, max_staleness_ms=0), timeout=1.5)
        else:
            await harness.stub.Read(pb.ReadRequest(stream=stream, seq_num=0), timeout=1.5)
    err = info.value
    assert err.code() == Code.UNAVAILABLE, err  # the sidecar's answer, not the client's own deadline
    assert time.monotonic() - started < 1.5
    assert error_info(err).reason == "unavailable"
    assert error_info(err).metadata["http_status"] == "503"
    assert retry_info(err).retry_delay.ToMilliseconds() > 0
    assert "503" in (err.details() or "") and "deadline" in (err.details() or "")
    assert await upstream_requests(harness, stream, kind) >= 2  # it did retry
    await assert_retries_stopped(harness, stream, kind)


@pytest.mark.parametrize(("wait", "timeout"), [(30, 0.5), (1, 0.5), (3, 1.5), (60, 2.2)])
async def test_long_poll_answers_empty_before_a_short_deadline(
    harness: SidecarHarness, stream: str, wait: int, timeout: float
) -> None:
    await harness.append(stream, [b"only"])
    started = time.monotonic()
    resp = await harness.stub.Read(pb.ReadRequest(stream=stream, seq_num=1, wait=wait), timeout=timeout)
    assert list(resp.records) == []
    assert time.monotonic() - started < timeout


async def test_long_poll_with_a_short_deadline_still_returns_records(harness: SidecarHarness, stream: str) -> None:
    await harness.append(stream, [b"first"])
    call = harness.stub.Read(pb.ReadRequest(stream=stream, seq_num=1, wait=30), timeout=0.9)
    await asyncio.sleep(0.2)
    await harness.append(stream, [b"second"])
    resp = await call
    assert [r.body for r in resp.records] == [b"second"]
