"""A slow app holds the upstream back: the sidecar does not buffer a stream it cannot deliver."""

from __future__ import annotations

import asyncio

import aiohttp
import grpc

from sidecar._proto.s2sidecar.v1 import stream_pb2 as pb
from sidecar._proto.s2sidecar.v1 import stream_pb2_grpc
from sidecar.emulator import AUTO_CREATE, Emulator, EmulatorConfig
from sidecar.testing import SidecarProcess
from sidecar.types import AppendRecord
from sidecar.wire.protobuf import encode_append_input

RECORDS = 150_000
BODY = 1024  # ~150 MB of records in all


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


async def test_slow_session_applies_back_pressure() -> None:
    emulator = Emulator(EmulatorConfig(port=0, basins={"bp-basin1": AUTO_CREATE}))
    await emulator.start()
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(RECORDS // 1000):
                batch = encode_append_input([AppendRecord(body=b"x" * BODY)] * 1000)
                async with http.post(
                    f"{emulator.url}/v1/streams/big/records",
                    data=batch,
                    headers={"s2-basin": "bp-basin1", "content-type": "application/protobuf"},
                ) as resp:
                    assert resp.status == 200
        async with SidecarProcess("--basin-endpoint", f"{emulator.url}/v1", "--default-basin", "bp-basin1") as sc:
            pid = sc.proc.pid
            async with grpc.aio.insecure_channel(sc.address) as channel:
                stub = stream_pb2_grpc.StreamServiceStub(channel)
                await stub.CheckTail(pb.CheckTailRequest(stream="big"))  # warm up: imports, pools
                baseline = rss_mb(pid)
                call = stub.ReadSession(pb.ReadSessionRequest(stream="big", seq_num=0))
                first = await anext(aiter(call))
                assert first.records[0].seq_num == 0
                await asyncio.sleep(3)  # the app stalls; an unbounded buffer would fill with ~150 MB
                stalled = rss_mb(pid)
                got = len(first.records)
                async for msg in call:  # and the app can still read everything, in order
                    assert msg.records[0].seq_num == got
                    got += len(msg.records)
                    if got >= RECORDS:
                        break
                call.cancel()
        print(f"sidecar RSS: {baseline:.0f} MB before, {stalled:.0f} MB with a stalled 150 MB session")
        assert got == RECORDS
        assert stalled - baseline < 60, f"sidecar grew by {stalled - baseline:.0f} MB while the app stalled"
    finally:
        await emulator.stop()
