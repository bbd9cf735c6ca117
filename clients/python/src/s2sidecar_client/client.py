"""The async client: `S2SidecarClient`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType
from typing import Self, TypeVar

import grpc

from s2sidecar_client import _base, _convert
from s2sidecar_client._base import CLIENT_TIMEOUT, CallTimeout, ClientBase, SessionView
from s2sidecar_client._convert import EncryptionKey
from s2sidecar_client._proto.s2sidecar.v1 import stream_pb2 as pb
from s2sidecar_client._resume import CallRetries, RetryPolicy, SessionState
from s2sidecar_client.errors import SidecarError
from s2sidecar_client.types import ReadBatch, ReadLimit, Start, StreamPosition, Timestamp

T = TypeVar("T")
SessionCall = grpc.aio.UnaryStreamCall[pb.ReadSessionRequest, pb.ReadSessionResponse]


class S2SidecarClient(ClientBase):
    """Reads S2 streams through an s2-sidecar.

        async with S2SidecarClient() as client:  # $S2_SIDECAR_ADDRESS, else 127.0.0.1:50051
            batch = await client.read("orders", start=SeqNum(0), limit=ReadLimit(count=100))  # no start: the tail
            async for batch in client.read_session("orders", start=TailOffset(10)):
                ...

    `target` is any gRPC target: "host:port", "unix:/path/to.sock", "unix:///abs/path"; None
    means $S2_SIDECAR_ADDRESS, else "127.0.0.1:50051".
    `basin` is sent with every call; `None` uses the sidecar's default basin. `token` is the
    sidecar's app token (sent as `authorization: Bearer <token>`), for a sidecar started with
    S2_SIDECAR_APP_TOKEN. `timeout` (seconds) applies to `read` and `check_tail`, on top of any
    `wait`; sessions have none. `retry` says how calls ride out a sidecar restart (clients/RESUME.md):
    sessions resume where they stood, `read` and `check_tail` retry within their timeout;
    `RetryPolicy(max_attempts=1)` turns that off.
    `encryption_key` is the key of encrypted streams (docs/encryption.md), sent as
    `s2-encryption-key` with every `read` and `read_session` (and each of its resumes): the 32 raw
    bytes as `bytes`, or their base64 as `str`. Those calls take an `encryption_key` of their own,
    which wins over the client's. A key is never logged nor shown in an error.
    Failed calls raise a `SidecarError` subclass (see `s2sidecar_client.errors`).
    """

    def __init__(
        self,
        target: str | None = None,
        basin: str | None = None,
        *,
        token: str | None = None,
        timeout: float | None = 30.0,
        retry: RetryPolicy = RetryPolicy(),
        encryption_key: EncryptionKey | None = None,
        channel: grpc.aio.Channel | None = None,
    ) -> None:
        super().__init__(target, basin, token, timeout, retry, encryption_key)
        self._own_channel = channel is None
        self._channel = channel or grpc.aio.insecure_channel(self.target, options=retry.channel_options())
        self._read: grpc.aio.UnaryUnaryMultiCallable[pb.ReadRequest, pb.ReadResponse] = self._channel.unary_unary(
            *_base.READ
        )
        self._session: grpc.aio.UnaryStreamMultiCallable[pb.ReadSessionRequest, pb.ReadSessionResponse] = (
            self._channel.unary_stream(*_base.READ_SESSION)
        )
        self._check_tail: grpc.aio.UnaryUnaryMultiCallable[pb.CheckTailRequest, pb.CheckTailResponse] = (
            self._channel.unary_unary(*_base.CHECK_TAIL)
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def wait_for_ready(self, timeout: float | None = None) -> None:  # noqa: ASYNC109  (as the sync client)
        """Wait until the sidecar accepts connections (at start, before the first call); raises
        TimeoutError after `timeout` seconds."""
        try:
            await asyncio.wait_for(self._channel.channel_ready(), timeout)
        except TimeoutError:
            raise TimeoutError(f"s2-sidecar at {self.target} is not ready after {timeout} s") from None

    async def close(self) -> None:
        """Close the channel (unless it was passed in)."""
        if self._own_channel:
            await self._channel.close(None)

    async def read(
        self,
        stream: str,
        start: Start | None = None,
        limit: ReadLimit | None = None,
        until: int | Timestamp | None = None,
        clamp: bool = False,
        wait: int | None = None,
        *,
        encryption_key: EncryptionKey | None = None,
        ignore_command_records: bool = False,
        timeout: CallTimeout = CLIENT_TIMEOUT,  # noqa: ASYNC109  (the client's meaning, as in the sync client)
    ) -> ReadBatch:
        """One batch (at most 1000 records / 1 MiB metered). `start=None` (the default) means the
        tail, as the proto says, where nothing is yet: pass a start, or `wait`; `until`
        is an exclusive timestamp in ms; `wait` (seconds, at most 60) long-polls at the tail;
        `encryption_key` (bytes or base64 str) replaces the client's for this call.
        `ignore_command_records` leaves command records (fence, trim) out; they still count
        toward `limit`, as in S2's SDKs, so the batch may hold fewer records than asked.
        `timeout` (seconds; None: none) replaces the client's for this call, with its meaning: the
        `wait` comes on top, retries are included."""
        req, timeout = self._read_request(stream, start, limit, until, clamp, wait, ignore_command_records, timeout)
        metadata = self._reads_metadata(encryption_key)
        try:
            resp = await self._retrying(
                lambda t: self._read(req, timeout=t, metadata=metadata, wait_for_ready=not self._answered), timeout
            )
        except SidecarError as e:
            self._note_tail_read(e, req)
            raise
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
        resume: bool = True,
        encryption_key: EncryptionKey | None = None,
        ignore_command_records: bool = False,
    ) -> ReadSession:
        """Batches from `start` (default: the tail), in order, each record exactly once.

        With no stop (`limit`, `until`) the session follows the stream for ever; with one it ends
        there, or at the tail unless `wait` (seconds without a record) says how long to wait.
        Heartbeats (no records, `tail` set: caught up and healthy) are skipped unless
        `heartbeats=True`, in which case they arrive as batches with `is_heartbeat` true.

        If the sidecar restarts the session resumes after the last record it delivered (see
        `RetryPolicy`); `resume=False` raises the first failure instead. A failure it does not
        retry raises a `SidecarError` whose `next_seq_num` is where to resume.
        `encryption_key` (bytes or base64 str) replaces the client's for this session, resumes included.
        `ignore_command_records` leaves command records (fence, trim) out; with it, a `count` or
        `bytes` limit raises ValueError (the records left out count toward it but are never
        delivered, so a resume could not reduce it exactly): stop iterating instead.
        `ReadSession.is_caught_up()` says whether the backlog is done.
        """
        state = self._session_state(stream, start, limit, until, clamp, wait, resume, ignore_command_records)
        metadata = self._reads_metadata(encryption_key)  # every resume sends the same key
        return ReadSession(
            lambda r: self._session(r, metadata=metadata, wait_for_ready=not self._answered),
            state,
            heartbeats=heartbeats,
            on_answer=self._answer,
        )

    async def check_tail(
        self,
        stream: str,
        *,
        max_staleness_ms: int | None = None,
        timeout: CallTimeout = CLIENT_TIMEOUT,  # noqa: ASYNC109  (the client's meaning, as in the sync client)
    ) -> StreamPosition:
        """The seq_num the next record will get, and the last record's timestamp.

        `max_staleness_ms`: how old a tail the sidecar may answer from its cache (0: ask S2,
        unless a live session vouches for the tail); None: the sidecar's default (1 s).
        `timeout` (seconds; None: none) replaces the client's for this call, retries included."""
        req = self._tail_request(stream, max_staleness_ms)
        resp = await self._retrying(
            lambda t: self._check_tail(req, timeout=t, metadata=self._metadata, wait_for_ready=not self._answered),
            self._within(timeout),
        )
        return _convert.position(resp.tail)

    async def _retrying(self, call: Callable[[float | None], Awaitable[T]], within: float | None) -> T:
        """`call(seconds left)` until it succeeds, fails for good, or `within` seconds leave no
        room for another attempt."""
        retries = CallRetries(self.retry, within)
        while True:
            try:
                result = await call(retries.remaining())
                self._answered = True
                return result
            except grpc.RpcError as e:
                err, delay = retries.failed(e)
            if delay is None:
                raise err
            await asyncio.sleep(delay)


class ReadSession(SessionView):
    """An open session: an async iterator of `ReadBatch` that resumes across sidecar restarts.
    Use it as an async context manager (or call `aclose()`) to end it early; breaking out of
    `async for` leaves that to the GC."""

    def __init__(
        self,
        open_call: Callable[[pb.ReadSessionRequest], SessionCall],
        state: SessionState,
        *,
        heartbeats: bool,
        on_answer: Callable[[], None] = lambda: None,
    ) -> None:
        self._open = open_call
        self._on_answer = on_answer
        self._state = state
        self._heartbeats = heartbeats
        self._call: SessionCall | None = None
        self._iter: AsyncIterator[pb.ReadSessionResponse] | None = None
        self._closed = False

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> ReadBatch:
        while not self._closed:
            if self._iter is None:
                req = self._state.request()
                if req is None:  # a count or bytes limit was used up before the failure
                    break
                self._call = self._open(req)
                self._iter = self._call.__aiter__()
            try:
                msg = await self._iter.__anext__()
            except StopAsyncIteration:
                break
            except grpc.RpcError as e:
                self._call = self._iter = None
                err, delay = self._state.failed(e)
                if delay is None:
                    self._closed = True
                    raise err from None
                await asyncio.sleep(delay)
                continue
            self._on_answer()
            if (result := self._state.on_message(msg, self._heartbeats)) is not None:
                return result
        self._closed = True
        raise StopAsyncIteration

    async def aclose(self) -> None:
        """End the session (cancels the call; a no-op if it already ended)."""
        self._closed = True
        if self._call is not None:
            self._call.cancel()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


__all__ = ["ReadSession", "S2SidecarClient", "SidecarError"]
