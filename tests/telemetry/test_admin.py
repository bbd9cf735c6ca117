"""The admin listener of a real sidecar: /metrics after traffic, /readyz and gRPC health following
the upstream's reachability, /healthz."""

from __future__ import annotations

import asyncio
import re
import time

import aiohttp
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sidecar._proto.s2sidecar.v1 import stream_pb2 as pb
from sidecar.testing import SidecarHarness


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text format."""
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = re.escape(name) + (r"\{" + re.escape(want) + r"\}" if want else "") + r" (\S+)"
    m = re.search("^" + pattern + "$", text, re.M)
    assert m, f"no sample {name}{{{want}}}"
    return float(m.group(1))


async def get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        return resp.status, await resp.text()


async def test_metrics_count_the_traffic() -> None:
    async with SidecarHarness(admin_listen="127.0.0.1:0") as h:
        assert h.sidecar is not None and h.sidecar.admin is not None
        url = h.sidecar.admin.url
        await h.append_many("m", 30)
        for _ in range(3):
            await h.stub.Read(pb.ReadRequest(stream="m", seq_num=0, count=10))
        with pytest.raises(grpc.aio.AioRpcError):
            await h.stub.Read(pb.ReadRequest(stream="nope", seq_num=0))
        await h.stub.CheckTail(pb.CheckTailRequest(stream="m", max_staleness_ms=0))
        await h.stub.CheckTail(pb.CheckTailRequest(stream="m", max_staleness_ms=60_000))
        got = 0
        async for msg in h.stub.ReadSession(pb.ReadSessionRequest(stream="m", seq_num=0, count=30)):
            got += len(msg.records)
        assert got == 30
        status, text = await get(f"{url}/metrics")
        assert status == 200
        assert sample(text, "s2_sidecar_rpcs_total", method="Read", code="OK") == 3
        assert sample(text, "s2_sidecar_rpcs_total", method="Read", code="NOT_FOUND") == 1
        assert sample(text, "s2_sidecar_rpcs_total", method="ReadSession", code="OK") == 1
        assert sample(text, "s2_sidecar_rpc_duration_seconds_count", method="Read") == 4
        assert sample(text, "s2_sidecar_records_sent_total", method="Read") == 30
        assert sample(text, "s2_sidecar_records_sent_total", method="ReadSession") == 30
        assert sample(text, "s2_sidecar_upstream_requests_total", kind="read", status="200") == 3
        assert sample(text, "s2_sidecar_upstream_requests_total", kind="read", status="404") == 1
        assert sample(text, "s2_sidecar_upstream_requests_total", kind="session", status="200") == 1
        assert sample(text, "s2_sidecar_tail_cache_requests_total", result="hit") == 1
        assert sample(text, "s2_sidecar_tail_cache_requests_total", result="miss") == 1
        assert sample(text, "s2_sidecar_sessions_open") == 0
        assert sample(text, "s2_sidecar_upstream_connections_limit", pool="session") == 1000
        assert sample(text, "s2_sidecar_upstream_connections_in_use", pool="unary") >= 0
        assert "basin=" not in text and "stream=" not in text  # no per-stream series


async def test_retries_and_reconnects_are_counted() -> None:
    async with SidecarHarness(admin_listen="127.0.0.1:0", retry_base_delay=0.01) as h:
        assert h.sidecar is not None and h.sidecar.admin is not None
        await h.append_many("r", 2000, size=100)
        await h.inject_fault(kind="read", stream="r", fail=2, status=503, code="unavailable")
        await h.stub.Read(pb.ReadRequest(stream="r", seq_num=0))
        await h.inject_fault(kind="session", stream="r", cut_after_bytes=3000)
        async for _ in h.stub.ReadSession(pb.ReadSessionRequest(stream="r", seq_num=0, count=2000)):
            pass
        _, text = await get(f"{h.sidecar.admin.url}/metrics")
        assert sample(text, "s2_sidecar_upstream_retries_total", kind="read", reason="unavailable") == 2
        assert sample(text, "s2_sidecar_session_reconnects_total", reason="disconnected") >= 1


async def test_readyz_and_grpc_health_follow_the_upstream() -> None:
    async with SidecarHarness(admin_listen="127.0.0.1:0", unhealthy_after=0.5) as h:
        assert h.sidecar is not None and h.sidecar.admin is not None
        url = h.sidecar.admin.url
        health = health_pb2_grpc.HealthStub(h.channel)
        assert (await get(f"{url}/healthz"))[0] == 200
        assert (await get(f"{url}/readyz"))[0] == 200
        port = h.emulator.port
        await h.emulator.stop()
        await wait_for_status(f"{url}/readyz", 503)
        await wait_for_health(health, health_pb2.HealthCheckResponse.NOT_SERVING)
        assert (await get(f"{url}/healthz"))[0] == 200  # alive all the while
        from sidecar.emulator import Emulator

        h.emulator = Emulator(h.emulator_config.__class__(**{**h.emulator_config.__dict__, "port": port}))
        await h.emulator.start()
        await wait_for_status(f"{url}/readyz", 200)
        await wait_for_health(health, health_pb2.HealthCheckResponse.SERVING)


async def wait_for_status(url: str, status: int, within: float = 10) -> None:
    deadline = time.monotonic() + within
    while (await get(url))[0] != status:
        assert time.monotonic() < deadline, f"{url} never answered {status}"
        await asyncio.sleep(0.2)


async def wait_for_health(stub: health_pb2_grpc.HealthStub, status: int, within: float = 15) -> None:
    deadline = time.monotonic() + within
    while (await stub.Check(health_pb2.HealthCheckRequest(service="s2sidecar.v1.StreamService"))).status != status:
        assert time.monotonic() < deadline, f"gRPC health never became {status}"
        await asyncio.sleep(0.2)


async def test_json_logs_and_access_log_from_a_process() -> None:
    import json

    from sidecar._proto.s2sidecar.v1 import stream_pb2_grpc
    from sidecar.testing import SidecarProcess

    env = {"OTEL_TRACES_EXPORTER": "console"}  # spans exist, so log lines carry their ids
    async with SidecarProcess("--log-format", "json", "--access-log", "true", env=env) as sc:
        async with grpc.aio.insecure_channel(sc.address) as channel:
            stub = stream_pb2_grpc.StreamServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError):
                await stub.CheckTail(pb.CheckTailRequest(stream="nothing-here"))
        sc.terminate()
        await sc.wait()
    lines = [json.loads(line) for line in sc.output.splitlines() if line.startswith("{\"time\"")]
    access = [entry for entry in lines if entry["logger"] == "s2_sidecar.access"]
    assert len(access) == 1
    (entry,) = access
    assert entry["level"] == "info" and entry["code"] == "NOT_FOUND" and entry["stream"] == "nothing-here"
    assert entry["method"] == "CheckTail" and len(entry["trace_id"]) == 32
