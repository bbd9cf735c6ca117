"""The async client: `S2SidecarClient`."""

from __future__ import annotations

from types import TracebackType
from typing import Self

import grpc

from s2sidecar_client import _convert
from s2sidecar_client._proto.s2sidecar.v1 import stream_pb2 as pb
from s2sidecar_client.errors import SidecarError, from_rpc_error
from s2sidecar_client.types import ReadBatch, ReadLimit, SeqNum, Start, StreamPosition, Timestamp


class S2SidecarClient:
    """Reads S2 streams through an s2-sidecar.

        async with S2SidecarClient("127.0.0.1:50051") as client:
            batch = await client.read("orders", start=SeqNum(0), limit=ReadLimit(count=100))
            async for batch in client.read_session("orders", start=TailOffset(10)):
                ...

    `target` is any gRPC target: "host:port", "unix:/path/to.sock", "unix:///abs/path".
    `basin` is sent with every call; `None` uses the sidecar's default basin. `token` is the
    sidecar's app token (sent as `authorization: Bearer <token>`), for a sidecar started with
    S2_SIDECAR_APP_TOKEN. `timeout` (seconds) applies to `read` and `check_tail`, on top of any
    `wait`; sessions have none.
    Failed calls raise a `SidecarError` subclass (see `s2sidecar_client.errors`).
    """

    def __init__(
        self,
        target: str = "127.0.0.1:50051",
        basin: str | None = None,
        *,
        token: str | None = None,
        timeout: float | None = 30.0,
        channel: grpc.aio.Channel | None = None,
    ) -> None:
        self.basin = basin
        self._metadata = _convert.auth_metadata(token)
        self.timeout = timeout
        self._own_channel = channel is None
        self._channel = channel or grpc.aio.insecure_channel(target)
        self._read: grpc.aio.UnaryUnaryMultiCallable[pb.ReadRequest, pb.ReadResponse] = self._channel.unary_unary(
            _convert.SERVICE + "Read", pb.ReadRequest.SerializeToString, pb.ReadResponse.FromString
        )
        self._session: grpc.aio.UnaryStreamMultiCallable[pb.ReadSessionRequest, pb.ReadSessionResponse] = (
            self._channel.unary_stream(
                _convert.SERVICE + "ReadSession",
                pb.ReadSessionRequest.SerializeToString,
                pb.ReadSessionResponse.FromString,
            )
        )
        self._check_tail: grpc.aio.UnaryUnaryMultiCallable[pb.CheckTailRequest, pb.CheckTailResponse] = (
            self._channel.unary_unary(
                _convert.SERVICE + "CheckTail", pb.CheckTailRequest.SerializeToString, pb.CheckTailResponse.FromString
            )
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the channel (unless it was passed in)."""
        if self._own_channel:
            await self._channel.close(None)

    async def read(
        self,
        stream: str,
        start: Start | None = SeqNum(0),
        limit: ReadLimit | None = None,
        until: int | Timestamp | None = None,
        clamp: bool = False,
        wait: int | None = None,
    ) -> ReadBatch:
        """One batch (at most 1000 records / 1 MiB metered). `start=None` means the tail; `until`
        is an exclusive timestamp in ms; `wait` (seconds, at most 60) long-polls at the tail."""
        req = _convert.read_request(pb.ReadRequest, self.basin, stream, start, limit, until, clamp, wait)
        timeout = None if self.timeout is None else self.timeout + (wait or 0)
        try:
            resp = await self._read(req, timeout=timeout, metadata=self._metadata)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None
        return _convert.batch(resp)

    def read_session(
        self,
        stream: str,
        start: Start | None = None,
        limit: ReadLimit | None = None,
        until: int | Timestamp | None = None,
        clamp: bool = False,
        wait: int | None = None,
        *,
        heartbeats: bool = False,
    ) -> ReadSession:
        """Batches from `start` (default: the tail), in order, each record exactly once.

        With no stop (`limit`, `until`) the session follows the stream for ever; with one it ends
        there, or at the tail unless `wait` (seconds without a record) says how long to wait.
        Heartbeats (no records, `tail` set: caught up and healthy) are skipped unless
        `heartbeats=True`, in which case they arrive as batches with `is_heartbeat` true.
        If the session fails it raises a `SidecarError`; an `Unavailable` carries
        `next_seq_num` to resume from with `start=SeqNum(e.next_seq_num)`.
        """
        req = _convert.read_request(pb.ReadSessionRequest, self.basin, stream, start, limit, until, clamp, wait)
        return ReadSession(self._session(req, metadata=self._metadata), heartbeats=heartbeats)

    async def check_tail(self, stream: str, *, max_staleness_ms: int | None = None) -> StreamPosition:
        """The seq_num the next record will get, and the last record's timestamp.

        `max_staleness_ms`: how old a tail the sidecar may answer from its cache (0: ask S2,
        unless a live session vouches for the tail); None: the sidecar's default (1 s)."""
        req = pb.CheckTailRequest(basin=self.basin or "", stream=stream, max_staleness_ms=max_staleness_ms)
        try:
            resp = await self._check_tail(req, timeout=self.timeout, metadata=self._metadata)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None
        return _convert.position(resp.tail)


class ReadSession:
    """An open session: an async iterator of `ReadBatch`. Use it as an async context manager
    (or call `aclose()`) to end it early; breaking out of `async for` leaves that to the GC."""

    def __init__(
        self, call: grpc.aio.UnaryStreamCall[pb.ReadSessionRequest, pb.ReadSessionResponse], *, heartbeats: bool
    ) -> None:
        self._call = call
        self._heartbeats = heartbeats
        self._iter = call.__aiter__()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> ReadBatch:
        while True:
            try:
                msg = await self._iter.__anext__()
            except grpc.RpcError as e:
                raise from_rpc_error(e) from None
            result = _convert.batch(msg)
            if result.records or self._heartbeats:
                return result

    async def aclose(self) -> None:
        """End the session (cancels the call; a no-op if it already ended)."""
        self._call.cancel()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


__all__ = ["ReadSession", "S2SidecarClient", "SidecarError"]
