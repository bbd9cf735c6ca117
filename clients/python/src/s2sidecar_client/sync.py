"""A blocking client with the same methods, for scripts and threads: `S2SidecarSyncClient`."""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
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


class S2SidecarSyncClient(ClientBase):
    """Same arguments and semantics as `S2SidecarClient` (resume included), without asyncio.

    with S2SidecarSyncClient() as client:  # $S2_SIDECAR_ADDRESS, else 127.0.0.1:50051
        for batch in client.read_session("orders", start=SeqNum(0), limit=ReadLimit(count=10)):
            ...
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
    ) -> None:
        super().__init__(target, basin, token, timeout, retry, encryption_key)
        self._channel = grpc.insecure_channel(self.target, options=retry.channel_options())
        self._read: grpc.UnaryUnaryMultiCallable[pb.ReadRequest, pb.ReadResponse] = self._channel.unary_unary(
            *_base.READ
        )
        self._session: grpc.UnaryStreamMultiCallable[pb.ReadSessionRequest, pb.ReadSessionResponse] = (
            self._channel.unary_stream(*_base.READ_SESSION)
        )
        self._check_tail: grpc.UnaryUnaryMultiCallable[pb.CheckTailRequest, pb.CheckTailResponse] = (
            self._channel.unary_unary(*_base.CHECK_TAIL)
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def wait_for_ready(self, timeout: float | None = None) -> None:
        """Wait until the sidecar accepts connections; raises TimeoutError after `timeout` seconds."""
        try:
            grpc.channel_ready_future(self._channel).result(timeout=timeout)
        except grpc.FutureTimeoutError:
            raise TimeoutError(f"s2-sidecar at {self.target} is not ready after {timeout} s") from None

    def close(self) -> None:
        self._channel.close()

    def read(
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
        timeout: CallTimeout = CLIENT_TIMEOUT,
    ) -> ReadBatch:
        req, timeout = self._read_request(stream, start, limit, until, clamp, wait, ignore_command_records, timeout)
        metadata = self._reads_metadata(encryption_key)
        try:
            resp = self._retrying(
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
    ) -> SyncReadSession:
        """An iterator of batches that resumes across sidecar restarts (as `S2SidecarClient`'s);
        `close()` (or leaving a `with`) cancels the call."""
        state = self._session_state(stream, start, limit, until, clamp, wait, resume, ignore_command_records)
        return SyncReadSession(self._session_batches(state, heartbeats, encryption_key), state)

    def _session_batches(
        self, state: SessionState, heartbeats: bool, encryption_key: EncryptionKey | None
    ) -> Generator[ReadBatch, None, None]:
        metadata = self._reads_metadata(encryption_key)  # every resume sends the same key
        while (req := state.request()) is not None:  # None: a count or bytes limit is used up
            call = self._session(req, metadata=metadata, wait_for_ready=not self._answered)
            try:
                for msg in call:
                    self._answered = True
                    if (result := state.on_message(msg, heartbeats)) is not None:
                        yield result
                return
            except grpc.RpcError as e:
                err, delay = state.failed(e)
            finally:
                call.cancel()  # type: ignore[no-untyped-call]  # grpc-stubs leaves it untyped
            if delay is None:
                raise err
            time.sleep(delay)

    def check_tail(
        self, stream: str, *, max_staleness_ms: int | None = None, timeout: CallTimeout = CLIENT_TIMEOUT
    ) -> StreamPosition:
        req = self._tail_request(stream, max_staleness_ms)
        resp = self._retrying(
            lambda t: self._check_tail(req, timeout=t, metadata=self._metadata, wait_for_ready=not self._answered),
            self._within(timeout),
        )
        return _convert.position(resp.tail)

    def _retrying(self, call: Callable[[float | None], T], within: float | None) -> T:
        """`call(seconds left)` until it succeeds, fails for good, or `within` seconds leave no
        room for another attempt."""
        retries = CallRetries(self.retry, within)
        while True:
            try:
                result = call(retries.remaining())
                self._answered = True
                return result
            except grpc.RpcError as e:
                err, delay = retries.failed(e)
            if delay is None:
                raise err
            time.sleep(delay)


class SyncReadSession(SessionView):
    """An open session of the sync client: an iterator of `ReadBatch` (a generator underneath;
    `close()` or leaving a `with` cancels the call)."""

    def __init__(self, batches: Generator[ReadBatch, None, None], state: SessionState) -> None:
        self._batches = batches
        self._state = state

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> ReadBatch:
        return next(self._batches)

    def close(self) -> None:
        """End the session (cancels the call)."""
        self._batches.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
