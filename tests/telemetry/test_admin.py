"""The admin listener of a real sidecar: /metrics after traffic (upstream_up, session lag, connect
failures), /readyz (serving; the upstream only when opted in), gRPC health following the
upstream's reachability, /healthz."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
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
    # The history cache off: it would answer the repeated reads below without going upstream
    # (its own counts are tested in tests/reads/test_history.py).
    async with SidecarHarness(admin_listen="127.0.0.1:0", history_cache_bytes=0) as h:
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


async def test_readyz_does_not_follow_the_upstream_by_default(caplog: pytest.LogCaptureFixture) -> None:
    """An S2 outage must not mark every app pod NotReady: /readyz means "serving" unless opted in.
    gRPC health still reports the outage after --unhealthy-after, and upstream_up says it at once.
    The transitions are logged in words, not enum numbers."""
    caplog.set_level(logging.WARNING, logger="sidecar.server")
    async with SidecarHarness(admin_listen="127.0.0.1:0", unhealthy_after=0.5) as h:
        assert h.sidecar is not None and h.sidecar.admin is not None
        url = h.sidecar.admin.url
        health = health_pb2_grpc.HealthStub(h.channel)
        assert await get(f"{url}/readyz") == (200, "ready\n")
        port = h.emulator.port
        await h.emulator.stop()
        await wait_for_health(health, health_pb2.HealthCheckResponse.NOT_SERVING)  # the outage was seen
        await wait_for_metric(url, "s2_sidecar_upstream_up", 0)
        assert await get(f"{url}/readyz") == (200, "ready\n")
        assert (await get(f"{url}/healthz"))[0] == 200
        await restart_on(h, port)
        await wait_for_health(health, health_pb2.HealthCheckResponse.SERVING)
    logged = [r.getMessage() for r in caplog.records if r.name == "sidecar.server"]
    assert any(
        re.fullmatch(
            rf"upstream 127\.0\.0\.1:{port} unreachable for \d+ s \(--unhealthy-after\): gRPC health NOT_SERVING", m
        )
        for m in logged
    ), logged
    assert f"upstream 127.0.0.1:{port} reachable again: gRPC health SERVING" in logged


async def test_readyz_follows_the_upstream_when_asked() -> None:
    async with SidecarHarness(admin_listen="127.0.0.1:0", unhealthy_after=0.5, ready_requires_upstream=True) as h:
        assert h.sidecar is not None and h.sidecar.admin is not None
        url = h.sidecar.admin.url
        health = health_pb2_grpc.HealthStub(h.channel)
        assert (await get(f"{url}/healthz"))[0] == 200
        assert (await get(f"{url}/readyz"))[0] == 200
        port = h.emulator.port
        await h.emulator.stop()
        await wait_for_status(f"{url}/readyz", 503)
        status, text = await get(f"{url}/readyz")
        assert status == 503 and f"127.0.0.1:{port} unreachable" in text
        await wait_for_health(health, health_pb2.HealthCheckResponse.NOT_SERVING)
        assert (await get(f"{url}/healthz"))[0] == 200  # alive all the while
        await restart_on(h, port)
        await wait_for_status(f"{url}/readyz", 200)
        await wait_for_health(health, health_pb2.HealthCheckResponse.SERVING)


def test_ready_requires_upstream_setting() -> None:
    import argparse

    from sidecar import config

    parser = argparse.ArgumentParser()
    config.add_arguments(parser)
    assert config.from_args(parser.parse_args([]), {}).ready_requires_upstream is False
    env = {"S2_SIDECAR_READY_REQUIRES_UPSTREAM": "true"}
    assert config.from_args(parser.parse_args([]), env).ready_requires_upstream is True
    flag = parser.parse_args(["--ready-requires-upstream", "false"])
    assert config.from_args(flag, env).ready_requires_upstream is False  # the flag wins
    with pytest.raises(ValueError, match="S2_SIDECAR_READY_REQUIRES_UPSTREAM"):
        config.from_args(parser.parse_args([]), {"S2_SIDECAR_READY_REQUIRES_UPSTREAM": "maybe"})


async def test_upstream_up_and_connect_failures() -> None:
    """upstream_up is 1 after an answer, 0 as soon as a request cannot connect (then by the probe
    alone, without traffic), 1 again once the upstream is back; refused connections are counted
    as status/reason "connect", not as a connection that broke."""
    # The history cache off: with it, the Read below is answered from memory while S2 is down.
    async with SidecarHarness(
        admin_listen="127.0.0.1:0", retry_attempts=2, retry_base_delay=0.01, history_cache_bytes=0
    ) as h:
        assert h.sidecar is not None and h.sidecar.admin is not None
        url = h.sidecar.admin.url
        await h.append("up", [b"x"])
        await h.stub.Read(pb.ReadRequest(stream="up", seq_num=0))
        _, text = await get(f"{url}/metrics")
        assert sample(text, "s2_sidecar_upstream_up") == 1
        port = h.emulator.port
        await h.emulator.stop()
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await h.stub.Read(pb.ReadRequest(stream="up", seq_num=0))
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE
        with pytest.raises(grpc.aio.AioRpcError):
            async for _ in h.stub.ReadSession(pb.ReadSessionRequest(stream="up", seq_num=1)):
                pass
        _, text = await get(f"{url}/metrics")
        assert sample(text, "s2_sidecar_upstream_up") == 0  # the failed request said so, no probe needed
        assert sample(text, "s2_sidecar_upstream_requests_total", kind="read", status="connect") == 3
        assert sample(text, "s2_sidecar_upstream_requests_total", kind="session", status="connect") == 3
        assert sample(text, "s2_sidecar_upstream_retries_total", kind="read", reason="connect") == 2
        assert sample(text, "s2_sidecar_upstream_retries_total", kind="session", reason="connect") == 2
        assert sample(text, "s2_sidecar_session_reconnects_total", reason="connect") == 2
        assert 'reason="disconnected"' not in text and 'status="disconnected"' not in text
        await restart_on(h, port)
        await wait_for_metric(url, "s2_sidecar_upstream_up", 1)  # the probe: no traffic since
        await h.emulator.stop()
        await wait_for_metric(url, "s2_sidecar_upstream_up", 0)  # the probe alone notices the outage
        await restart_on(h, port)
        await h.append("up", [b"y"])
        await h.stub.Read(pb.ReadRequest(stream="up", seq_num=0))
        _, text = await get(f"{url}/metrics")
        assert sample(text, "s2_sidecar_upstream_up") == 1


async def test_session_lag_histogram() -> None:
    """A session that reads a backlog it is behind on: each message observes how far the known
    tail is past what the app has been sent, down to 0 when it has everything."""
    async with SidecarHarness(admin_listen="127.0.0.1:0") as h:
        assert h.sidecar is not None and h.sidecar.admin is not None
        url = h.sidecar.admin.url
        await h.append_many("lag", 5000, size=1000)  # 5 MB: several messages of at most 2 MiB
        await h.stub.CheckTail(pb.CheckTailRequest(stream="lag", max_staleness_ms=0))  # the tail is known
        sent, lags = 0, []
        async for msg in h.stub.ReadSession(pb.ReadSessionRequest(stream="lag", seq_num=0, count=5000)):
            sent += len(msg.records)
            lags.append(5000 - sent)
        assert len(lags) >= 3 and lags[-1] == 0
        _, text = await get(f"{url}/metrics")
        assert sample(text, "s2_sidecar_session_lag_records_count") == len(lags)
        assert sample(text, "s2_sidecar_session_lag_records_sum") == sum(lags)
        assert sample(text, "s2_sidecar_session_lag_records_bucket", le="0.0") == 1
        assert sample(text, "s2_sidecar_session_lag_records_bucket", le="1000.0") == sum(1 for v in lags if v <= 1000)
        assert "basin=" not in text and "stream=" not in text
        # A follower at the tail: its heartbeat observes 0.
        async for msg in h.stub.ReadSession(pb.ReadSessionRequest(stream="lag", tail_offset=0)):
            assert not msg.records and msg.tail.seq_num == 5000
            break
        _, text = await get(f"{url}/metrics")
        assert sample(text, "s2_sidecar_session_lag_records_count") == len(lags) + 1
        assert sample(text, "s2_sidecar_session_lag_records_bucket", le="0.0") == 2


async def restart_on(h: SidecarHarness, port: int) -> None:
    from sidecar.emulator import Emulator

    h.emulator = Emulator(dataclasses.replace(h.emulator_config, port=port))
    await h.emulator.start()


async def wait_for_metric(url: str, name: str, value: float, within: float = 15) -> None:
    deadline = time.monotonic() + within
    while sample((await get(f"{url}/metrics"))[1], name) != value:
        assert time.monotonic() < deadline, f"{name} never became {value}"
        await asyncio.sleep(0.2)


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
    lines = [json.loads(line) for line in sc.output.splitlines() if line.startswith('{"time"')]
    access = [entry for entry in lines if entry["logger"] == "s2_sidecar.access"]
    assert len(access) == 1
    (entry,) = access
    assert entry["level"] == "info" and entry["code"] == "NOT_FOUND" and entry["stream"] == "nothing-here"
    assert entry["method"] == "CheckTail" and len(entry["trace_id"]) == 32
