"""The gRPC ceiling: a trivial grpc.aio server answering `s2sidecar.v1.StreamService` from memory.

    python -m tests.bench.ceiling --listen 127.0.0.1:PORT --emulator http://127.0.0.1:EMU

What Python's gRPC can do on this machine with the sidecar's message shapes and nothing else: no
upstream, no read logic. It runs like the sidecar (its own process, uvloop, identity
serializers, the malloc settings) so the benchmark can tell the sidecar's own cost from gRPC's:

* `ReadSession` streams a stream's s2s frames exactly as the emulator sent them, fetched once on
  the first call and merged as the sidecar merges catch-up frames (consecutive frames
  concatenated up to 2 MiB), then served from memory on every call;
* `ReadSession` from the tail (`tail_offset` set) is the fan-out ceiling: one s2s session per
  stream to the emulator from its tail, each frame put as it came on every subscriber's queue
  (unbounded), and each subscriber's handler yields what its queue holds;
* `CheckTail` answers a pre-serialized `CheckTailResponse`;
* `Read` answers a pre-encoded batch of `UNARY_READ_COUNT` records of `UNARY_READ_SIZE` bytes
  (the shape `unary.py` asks the sidecar for).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import grpc

from sidecar._proto.s2sidecar.v1 import stream_pb2 as pb

MERGE_BYTES = 2 * 1024 * 1024  # the sidecar merges catch-up frames up to this (upstream/client.py)
UNARY_READ_COUNT = 10
UNARY_READ_SIZE = 100
SERVICE = "s2sidecar.v1.StreamService"


def _identity(data: bytes) -> bytes:
    return data


def read_response_bytes(count: int = UNARY_READ_COUNT, size: int = UNARY_READ_SIZE) -> bytes:
    msg = pb.ReadResponse(tail=pb.StreamPosition(seq_num=10_000, timestamp=1_700_000_000_000))
    for i in range(count):
        msg.records.add(seq_num=1000 + i, timestamp=1_700_000_000_000, body=b"x" * size)
    return msg.SerializeToString()


async def session_frames(emulator_url: str, basin: str, stream: str, start: int, count: int) -> list[bytes]:
    """The ReadBatch payloads of an s2s session, as the emulator sends them to the sidecar."""
    frames: list[bytes] = []
    got = 0
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as http,
        http.get(
            f"{emulator_url}/v1/streams/{stream}/records",
            params={"seq_num": str(start), "count": str(count)},
            headers={"s2-basin": basin, "content-type": "s2s/proto", "accept-encoding": "identity"},
        ) as resp,
    ):
        assert resp.status == 200, await resp.text()
        while got < count:
            length = int.from_bytes(await resp.content.readexactly(3), "big")
            payload = await resp.content.readexactly(length)
            frames.append(payload[1:])  # past the flags byte: a serialized ReadBatch
            got += len(pb.ReadSessionResponse.FromString(payload[1:]).records)
    return frames


def merge(frames: list[bytes], limit: int = MERGE_BYTES) -> list[bytes]:
    """Concatenate consecutive frames while the message is under `limit` (the sidecar's rule)."""
    out: list[bytes] = []
    current: list[bytes] = []
    size = 0
    for f in frames:
        if current and size >= limit:
            out.append(b"".join(current))
            current, size = [], 0
        current.append(f)
        size += len(f)
    if current:
        out.append(b"".join(current))
    return out


class Feed:
    """The fan-out ceiling: one upstream session from the tail, every frame to every subscriber."""

    def __init__(self, emulator_url: str, basin: str, stream: str) -> None:
        self.subscribers: set[asyncio.Queue[bytes]] = set()
        self._task = asyncio.ensure_future(self._run(emulator_url, basin, stream))

    async def _run(self, emulator_url: str, basin: str, stream: str) -> None:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as http,
            http.get(
                f"{emulator_url}/v1/streams/{stream}/records",
                params={"tail_offset": "0"},
                headers={"s2-basin": basin, "content-type": "s2s/proto", "accept-encoding": "identity"},
            ) as resp,
        ):
            assert resp.status == 200, await resp.text()
            while True:
                length = int.from_bytes(await resp.content.readexactly(3), "big")
                payload = (await resp.content.readexactly(length))[1:]
                for q in self.subscribers:
                    q.put_nowait(payload)


class Ceiling:
    def __init__(self, emulator_url: str) -> None:
        self.emulator_url = emulator_url
        self.sessions: dict[tuple[str, str, int, int], list[bytes]] = {}
        self._loading: dict[tuple[str, str, int, int], asyncio.Task[list[bytes]]] = {}
        self.tail = pb.CheckTailResponse(tail=pb.StreamPosition(seq_num=10_000, timestamp=1_700_000_000_000))
        self.tail_bytes = self.tail.SerializeToString()
        self.read_bytes = read_response_bytes()
        self.feeds: dict[tuple[str, str], Feed] = {}

    async def read_session(self, request: pb.ReadSessionRequest, context: Any) -> AsyncIterator[bytes]:
        if request.HasField("tail_offset"):
            async for m in self.follow(request):
                yield m
            return
        key = (request.basin, request.stream, request.seq_num, request.count)
        messages = self.sessions.get(key)
        if messages is None:  # first call: fetch and merge once (the benchmark warms up with it)
            task = self._loading.get(key)
            if task is None:
                task = asyncio.ensure_future(
                    session_frames(self.emulator_url, request.basin, request.stream, request.seq_num, request.count)
                )
                self._loading[key] = task
            messages = self.sessions[key] = merge(await task)
        for m in messages:
            yield m

    async def follow(self, request: pb.ReadSessionRequest) -> AsyncIterator[bytes]:
        key = (request.basin, request.stream)
        feed = self.feeds.get(key)
        if feed is None:
            feed = self.feeds[key] = Feed(self.emulator_url, *key)
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        feed.subscribers.add(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            feed.subscribers.discard(queue)

    async def read(self, request: pb.ReadRequest, context: Any) -> bytes:
        return self.read_bytes

    async def check_tail(self, request: pb.CheckTailRequest, context: Any) -> bytes:
        return self.tail_bytes

    def handler(self) -> grpc.GenericRpcHandler[Any, Any]:
        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "ReadSession": grpc.unary_stream_rpc_method_handler(
                    self.read_session,
                    request_deserializer=pb.ReadSessionRequest.FromString,
                    response_serializer=_identity,
                ),
                "Read": grpc.unary_unary_rpc_method_handler(
                    self.read, request_deserializer=pb.ReadRequest.FromString, response_serializer=_identity
                ),
                "CheckTail": grpc.unary_unary_rpc_method_handler(
                    self.check_tail, request_deserializer=pb.CheckTailRequest.FromString, response_serializer=_identity
                ),
            },
        )


async def serve(listen: str, emulator_url: str) -> None:
    # The sidecar's own server options that matter here: an 8 MiB send limit.
    server = grpc.aio.server(options=[("grpc.max_send_message_length", 8 * 1024 * 1024)])
    server.add_generic_rpc_handlers([Ceiling(emulator_url).handler()])
    server.add_insecure_port(listen)
    await server.start()
    print(f"gRPC ceiling serving on {listen}", flush=True)
    await server.wait_for_termination()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--listen", required=True)
    parser.add_argument("--emulator", required=True, help="emulator URL, for ReadSession's frames")
    opts = parser.parse_args()
    import uvloop  # as the sidecar runs

    uvloop.run(serve(opts.listen, opts.emulator))


if __name__ == "__main__":
    main()
