"""The emulator counts the records it serves, and their stored protobuf bytes, per stream: the
witness tests and the benchmark use for upstream traffic (the history cache's savings)."""

from __future__ import annotations

from sidecar._proto.s2sidecar.v1 import stream_pb2 as pb
from sidecar.testing import SidecarHarness
from sidecar.wire.protobuf import encode_record_field


async def test_reads_and_sessions_are_counted_in_records_and_bytes() -> None:
    async with SidecarHarness(history_cache_bytes=0) as h:
        await h.append("counted", [b"a" * 10] * 10)
        await h.append("other", [b"b"])
        await h.stub.Read(pb.ReadRequest(stream="counted", seq_num=2, count=3))
        async for _ in h.stub.ReadSession(pb.ReadSessionRequest(stream="counted", seq_num=5, count=5)):
            pass
        stats = await h.emulator_stats()
        key = f"{h.basin}/counted"
        assert stats["read_records"][key] == 8
        assert f"{h.basin}/other" not in stats["read_records"]
        every = (await h.stub.Read(pb.ReadRequest(stream="counted", seq_num=0, count=10))).records
        fields = [len(encode_record_field(r.seq_num, r.timestamp, [], r.body)) for r in every]
        assert stats["read_bytes"][key] == sum(fields[2:10])  # records 2-4 and 5-9, as stored
