"""A stream deleted while an app follows it through the sidecar. S2 ends its followers by writing a
terminal trim command record and closing their sessions (s2-lite 0.43.4: lite/src/backend/streams.rs
`delete_stream` appends a trim to the end of time, then the streamer's follow channel closes,
read.rs `StreamerMissingInActionError`, 503 `unavailable`); a session opened again finds no stream
(404). The sidecar forwards the trim record like any record of the stream, resumes once after the
503 as after any retryable error, and ends the app's session NOT_FOUND with `s2-next-seq-num`
after the trim record: nothing is lost or repeated, and the app learns the stream is gone. Whether
the app sees the trim record depends on which read was open when the deletion happened (the live
feed gets it; a read opened after it, e.g. when the sidecar's own stream listing already shows
`deleted_at`, gets 404): either way `s2-next-seq-num` is just past the last record delivered.
Runs against the emulator and against s2-lite (scripts/test-s2-lite)."""

from __future__ import annotations

import asyncio
import uuid

import grpc

from sidecar._proto.s2sidecar.v1 import stream_pb2 as pb
from sidecar.testing import SidecarHarness
from tests.api.helpers import trailing

TRIM_TO_THE_END = b"\xff" * 8  # the trim point a deletion writes: past every seq_num


async def test_a_follower_gets_the_deletions_trim_record_then_not_found() -> None:
    stream = f"deleted-{uuid.uuid4().hex[:8]}"
    async with SidecarHarness(retry_base_delay=0.05) as h:
        await h.append(stream, [b"a", b"b", b"c"])
        call = h.stub.ReadSession(pb.ReadSessionRequest(stream=stream, seq_num=0))
        got: list[pb.SequencedRecord] = []
        caught_up = asyncio.Event()

        async def follow() -> None:
            async for msg in call:
                got.extend(msg.records)
                if len(got) >= 3 and not msg.records:  # a heartbeat: following live (else a
                    caught_up.set()  # deletion before the live read opens is a plain 404)

        follower = asyncio.create_task(follow())
        await asyncio.wait_for(caught_up.wait(), 10)
        await h.delete_stream(stream)
        try:
            await asyncio.wait_for(follower, 30)
            raise AssertionError("the session ended OK after its stream was deleted")
        except grpc.aio.AioRpcError as e:
            error = e
        assert [r.body for r in got[:3]] == [b"a", b"b", b"c"]
        after = [(r.seq_num, [(x.name, x.value) for x in r.headers], r.body) for r in got[3:]]
        assert after in ([], [(3, [(b"", b"trim")], TRIM_TO_THE_END)])
        assert error.code() is grpc.StatusCode.NOT_FOUND, error.details()
        assert trailing(error)["s2-next-seq-num"] == str(len(got))
