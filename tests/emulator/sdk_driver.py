"""Drives the emulator with S2's own Python SDK (`s2-sdk`), as a new user would, and prints what
happened as one JSON object.

Runs in its own interpreter (the SDK's venv, see test_s2_sdk.py): `s2-sdk` pins protobuf < 7 and
registers its own `s2.v1` protobuf package, so it cannot share a process with the sidecar.
Endpoints come from the environment, with the SDK's defaults otherwise (S2_ACCOUNT_ENDPOINT,
S2_BASIN_ENDPOINT; for TLS the test CA through SSL_CERT_FILE, which `ssl.create_default_context`
honours).

    python sdk_driver.py BASIN STREAM_PREFIX
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from s2_sdk import (
    S2,
    AppendInput,
    BasinConfig,
    Endpoints,
    ReadLimit,
    ReadUnwrittenError,
    Record,
    S2ServerError,
    SeqNum,
    StreamConfig,
)


def pos(p: Any) -> list[int]:
    return [p.seq_num, p.timestamp]


async def main(basin_name: str, prefix: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    async with S2("any-token", endpoints=Endpoints.from_env()) as s2:
        basin = s2.basin(basin_name)
        name = f"{prefix}-sdk"
        info = await basin.create_stream(name)
        out["created"] = info.name
        stream = basin.stream(name)

        ack = await stream.append(
            AppendInput(records=[Record(body=b"one"), Record(body=b"two", headers=[(b"h", b"v")])])
        )
        out["append"] = [pos(ack.start), pos(ack.end)]

        async with stream.append_session() as session:
            tickets = [await session.submit(AppendInput(records=[Record(body=f"s{i}".encode())])) for i in range(3)]
            acks = [await t for t in tickets]
        out["append_session"] = [[a.start.seq_num, a.end.seq_num] for a in acks]

        out["check_tail"] = (await stream.check_tail()).seq_num

        batch = await stream.read(start=SeqNum(0))
        out["read"] = [
            [r.seq_num, r.body.decode(), [[k.decode(), v.decode()] for k, v in r.headers]] for r in batch.records
        ]

        bounded = []
        async for b in stream.read_session(start=SeqNum(1), limit=ReadLimit(count=3)):
            bounded += [r.body.decode() for r in b.records]
        out["bounded_session"] = bounded

        # A live session: catch up, then get a record appended while it follows.
        live: list[str] = []

        async def follow() -> None:
            async for b in stream.read_session(start=SeqNum(4)):
                live.extend(r.body.decode() for r in b.records)
                if "live" in live:
                    return

        follower = asyncio.create_task(follow())
        await asyncio.sleep(0.5)
        await stream.append(AppendInput(records=[Record(body=b"live")]))
        await asyncio.wait_for(follower, 10)
        out["live_session"] = live

        try:
            await basin.stream(f"{prefix}-missing").check_tail()
        except S2ServerError as e:
            out["missing"] = [e.status_code, e.code]
        try:
            await stream.read(start=SeqNum(100))
        except ReadUnwrittenError as e:
            out["unwritten"] = [e.status_code, pos(e.tail)]
        try:
            async for _ in stream.read_session(start=SeqNum(100), limit=ReadLimit(count=1)):
                pass
        except ReadUnwrittenError as e:
            out["unwritten_session"] = [e.status_code, e.tail.seq_num]
        # The control plane: ensure reads `s2-provision-result`; reconfigure is a PATCH.
        ensured = f"{prefix}-ensured"
        out["ensure_stream"] = [
            (await basin.ensure_stream(ensured)).status.value,
            (await basin.ensure_stream(ensured)).status.value,
            (await basin.ensure_stream(ensured, config=StreamConfig(retention_policy=86400))).status.value,
        ]
        out["reconfigure_stream"] = (
            await basin.reconfigure_stream(ensured, config=StreamConfig(retention_policy=3600))
        ).retention_policy
        out["ensure_basin"] = [
            (await s2.ensure_basin(ensured)).status.value,
            (await s2.ensure_basin(ensured)).status.value,
            (await s2.ensure_basin(ensured, config=BasinConfig(create_stream_on_read=True))).status.value,
        ]
        reconfigured = await s2.reconfigure_basin(ensured, config=BasinConfig(create_stream_on_append=True))
        out["reconfigure_basin"] = [reconfigured.create_stream_on_append, reconfigured.create_stream_on_read]
    return out


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], sys.argv[2]))))
