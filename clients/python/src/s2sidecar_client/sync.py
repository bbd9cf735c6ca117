"""A blocking client with the same methods, for scripts and threads: `S2SidecarSyncClient`."""

from __future__ import annotations

from collections.abc import Iterator
from types import TracebackType
from typing import Self

import grpc

from s2sidecar_client import _convert
from s2sidecar_client._proto.s2sidecar.v1 import stream_pb2 as pb
from s2sidecar_client.errors import from_rpc_error
from s2sidecar_client.types import ReadBatch, ReadLimit, SeqNum, Start, StreamPosition, Timestamp


class S2SidecarSyncClient:
    """Same arguments and semantics as `S2SidecarClient`, without asyncio.

    with S2SidecarSyncClient("127.0.0.1:50051") as client:
        for batch in client.read_session("orders", start=SeqNum(0), limit=ReadLimit(count=10)):
            ...
    """

    def __init__(
        self,
        target: str = "127.0.0.1:50051",
        basin: str | None = None,
        *,
        token: str | None = None,
        timeout: float | None = 30.0,
    ) -> None:
        self.basin = basin
        self._metadata = _convert.auth_metadata(token)
        self.timeout = timeout
        self._channel = grpc.insecure_channel(target)
        self._read: grpc.UnaryUnaryMultiCallable[pb.ReadRequest, pb.ReadResponse] = self._channel.unary_unary(
            _convert.SERVICE + "Read", pb.ReadRequest.SerializeToString, pb.ReadResponse.FromString
        )
        self._session: grpc.UnaryStreamMultiCallable[pb.ReadSessionRequest, pb.ReadSessionResponse] = (
            self._channel.unary_stream(
                _convert.SERVICE + "ReadSession",
                pb.ReadSessionRequest.SerializeToString,
                pb.ReadSessionResponse.FromString,
            )
        )
        self._check_tail: grpc.UnaryUnaryMultiCallable[pb.CheckTailRequest, pb.CheckTailResponse] = (
            self._channel.unary_unary(
                _convert.SERVICE + "CheckTail", pb.CheckTailRequest.SerializeToString, pb.CheckTailResponse.FromString
            )
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def read(
        self,
        stream: str,
        start: Start | None = SeqNum(0),
        limit: ReadLimit | None = None,
        until: int | Timestamp | None = None,
        clamp: bool = False,
        wait: int | None = None,
    ) -> ReadBatch:
        req = _convert.read_request(pb.ReadRequest, self.basin, stream, start, limit, until, clamp, wait)
        timeout = None if self.timeout is None else self.timeout + (wait or 0)
        try:
            return _convert.batch(self._read(req, timeout=timeout, metadata=self._metadata))
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None

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
    ) -> Iterator[ReadBatch]:
        """A generator of batches; closing it (or breaking out of a `for`) cancels the call."""
        req = _convert.read_request(pb.ReadSessionRequest, self.basin, stream, start, limit, until, clamp, wait)
        call = self._session(req, metadata=self._metadata)
        try:
            for msg in call:
                result = _convert.batch(msg)
                if result.records or heartbeats:
                    yield result
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None
        finally:
            call.cancel()  # type: ignore[no-untyped-call]  # grpc-stubs leaves it untyped

    def check_tail(self, stream: str, *, max_staleness_ms: int | None = None) -> StreamPosition:
        req = pb.CheckTailRequest(basin=self.basin or "", stream=stream, max_staleness_ms=max_staleness_ms)
        try:
            return _convert.position(self._check_tail(req, timeout=self.timeout, metadata=self._metadata).tail)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None
