"""The gRPC servicer for `s2sidecar.v1.StreamService`. Thin: validate, call the read logic,
send batches, map errors. No S2 logic lives here.

Batches are sent as the bytes S2 sent: our response messages share S2's `ReadBatch` field
numbers, so `Read` and `ReadSession` register an identity serializer. A session message that
leaves the app caught up gets `caught_up` appended: serialized fields merge by concatenation.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any, NoReturn

import grpc

from sidecar import telemetry as tm
from sidecar._proto.s2sidecar.v1 import stream_pb2 as api_pb
from sidecar.api import errors
from sidecar.api.instrument import CallRecord, Instrumentation
from sidecar.api.requests import Undecodable, decoded, decoder, encryption_key, read_query, stream_ref
from sidecar.encryption import KeyFiles
from sidecar.errors import SidecarError
from sidecar.metrics import HistogramChild, Metrics
from sidecar.reads import ResumePlan, StreamReader, deliveries, read_answer
from sidecar.types import ReadQuery, SeqNum, StreamPosition
from sidecar.wire.protobuf import ReadBatch

log = logging.getLogger(__name__)

SERVICE_NAME = "s2sidecar.v1.StreamService"
_DRAINING = "the sidecar is shutting down"
_CAUGHT_UP = api_pb.ReadSessionResponse(caught_up=True).SerializeToString()  # the field alone


def _identity(data: bytes) -> bytes:
    return data


class StreamService:
    def __init__(
        self,
        reader: StreamReader,
        *,
        default_basin: str | None = None,
        tail_max_staleness: float = 1.0,
        instrumentation: Instrumentation | None = None,
        keys: KeyFiles | None = None,
    ) -> None:
        self.reader = reader
        self.keys = keys  # the sidecar's own encryption keys; an app's metadata wins for its call
        self.instr = instrumentation or Instrumentation(tm.Telemetry.disabled(), Metrics())
        self.default_basin = default_basin
        self.tail_max_staleness = tail_max_staleness
        self._draining = asyncio.Event()
        self._sessions: set[asyncio.Task[Any]] = set()  # tasks serving ReadSession calls
        self._waiting: set[asyncio.Task[Any]] = set()  # ...of which waiting for the next batch
        self.instr.metrics.sessions_open.set_function(lambda: len(self._sessions))

    @property
    def open_sessions(self) -> int:
        return len(self._sessions)

    def drain(self) -> None:
        """End every open session with UNAVAILABLE and its resume point (SIGTERM). Sessions that
        wait for upstream are interrupted by cancelling their tasks; the others stop after the
        message they are sending. No per-message race against a drain event."""
        self._draining.set()
        for task in list(self._waiting):
            task.cancel()

    async def _abort(
        self,
        context: grpc.aio.ServicerContext[Any, Any],
        rec: CallRecord,
        e: BaseException,
        *,
        next_seq_num: int | None = None,
        query: ReadQuery | None = None,
    ) -> NoReturn:
        if not isinstance(e, SidecarError):
            log.error("unexpected error in a call", exc_info=e)
        err = errors.from_exception(e, next_seq_num=next_seq_num, query=query)
        rec.code = err.code
        rec.set(tm.ERROR_TYPE, tm.error_type(e))
        await context.abort(err.code, err.message, err.trailing_metadata)
        raise AssertionError("unreachable: context.abort raises")

    async def _drained(
        self, context: grpc.aio.ServicerContext[Any, Any], rec: CallRecord, plan: ResumePlan
    ) -> NoReturn:
        """End a session on drain, saying where to resume when that is known."""
        resume = _resume_point(plan)
        if resume is None:
            # Nothing sent yet from a tail_offset/timestamp start: no seq_num to give.
            message = f"{_DRAINING}; no record was sent yet: retry the same request"
        else:
            message = f"{_DRAINING}; resume from the seq_num in trailing metadata s2-next-seq-num ({resume})"
        await self._abort(context, rec, errors.Draining(message), next_seq_num=resume)

    @staticmethod
    def _deadline(context: grpc.aio.ServicerContext[Any, Any]) -> float | None:
        remaining = context.time_remaining()
        return None if remaining is None else time.monotonic() + remaining

    async def read(
        self, request: api_pb.ReadRequest | Undecodable, context: grpc.aio.ServicerContext[Any, Any]
    ) -> bytes:
        with self.instr.call("Read", context) as rec:
            return await self._read(request, context, rec)

    async def _read(
        self, request: api_pb.ReadRequest | Undecodable, context: grpc.aio.ServicerContext[Any, Any], rec: CallRecord
    ) -> bytes:
        query: ReadQuery | None = None
        try:
            request = decoded(request)
            ref = stream_ref(request, self.default_basin)
            query = read_query(request, unary=True)
            rec.describe(ref.basin, ref.stream, query)
            key = encryption_key(context.invocation_metadata(), ref, self.keys)
            batch = await self.reader.read(
                ref.basin, ref.stream, query, deadline=self._deadline(context), call=rec, encryption=key
            )
        except Exception as e:
            await self._abort(context, rec, e, query=query)
        batch, ended_at = read_answer(batch, ignore_command_records=request.ignore_command_records)
        if ended_at is not None:  # records were left out: the app cannot see where the read ended
            context.set_trailing_metadata(((errors.NEXT_SEQ_NUM_KEY, str(ended_at)),))
        rec.sent(batch.count, len(batch.data))
        return batch.data

    async def check_tail(
        self, request: api_pb.CheckTailRequest | Undecodable, context: grpc.aio.ServicerContext[Any, Any]
    ) -> api_pb.CheckTailResponse:
        # Every call takes this path: one coroutine, and a response filled in place (README,
        # Performance).
        with self.instr.call("CheckTail", context) as rec:
            try:
                request = decoded(request)
                basin, stream = stream_ref(request, self.default_basin)
                rec.describe(basin, stream)
                max_age = (
                    request.max_staleness_ms / 1000 if request.HasField("max_staleness_ms") else self.tail_max_staleness
                )
                cached = await self.reader.check_tail(
                    basin, stream, max_age=max_age, deadline=self._deadline(context), call=rec
                )
            except Exception as e:
                await self._abort(context, rec, e)
            if rec.span is not None:
                rec.span.set_attribute(tm.S2_CACHE, tm.S2_CACHE_HIT if cached.hit else tm.S2_CACHE_MISS)
            response = api_pb.CheckTailResponse(age_ms=int(cached.age * 1000))
            tail = response.tail  # set in place: cheaper than building a StreamPosition to copy in
            tail.seq_num, tail.timestamp = cached.tail.seq_num, cached.tail.timestamp
            return response

    async def read_session(
        self, request: api_pb.ReadSessionRequest | Undecodable, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[bytes]:
        # An async generator (OpenTelemetry's aio interceptor needs this form) that sends with
        # context.write() itself and yields nothing. So a send that fails because the app went
        # away fails here, where it is expected, not in gRPC (which logs it as an ERROR), and the
        # call ends in its own task: never suspended at a `yield` that is finalized later from
        # another context.
        await self._read_session(request, context)
        return
        yield  # unreachable: makes this an async generator

    async def _read_session(
        self, request: api_pb.ReadSessionRequest | Undecodable, context: grpc.aio.ServicerContext[Any, Any]
    ) -> None:
        with self.instr.call("ReadSession", context) as rec:
            try:
                request = decoded(request)
                ref = stream_ref(request, self.default_basin)
                query = read_query(request, unary=False)
                rec.describe(ref.basin, ref.stream, query)
                encryption = encryption_key(context.invocation_metadata(), ref, self.keys)
            except Exception as e:
                await self._abort(context, rec, e)
            plan = ResumePlan(query)
            if self._draining.is_set():
                await self._drained(context, rec, plan)
            batches = deliveries(
                self.reader.session(ref.basin, ref.stream, query, plan=plan, call=rec, encryption=encryption),
                ignore_command_records=request.ignore_command_records,
            )
            key, tails, lag = (ref.basin, ref.stream), self.reader.tails, self.instr.metrics.session_lag.labels()
            task = asyncio.current_task()
            assert task is not None
            self._sessions.add(task)
            try:
                while True:
                    # drain() cancels only sessions waiting here; one busy sending checks the flag
                    # once the send is done, so it too ends with its resume point.
                    self._waiting.add(task)
                    try:
                        delivery = await anext(batches)
                    except StopAsyncIteration:
                        break
                    finally:
                        self._waiting.discard(task)
                    batch = delivery.batch
                    if batch.count:
                        rec.sent(batch.count, len(batch.data))
                    elif batch.tail is not None:
                        rec.event("heartbeat", {"s2.tail.seq_num": batch.tail.seq_num})
                    _observe_lag(lag, batch, tails.peek(key), plan.next_seq_num)
                    await _send(context, batch.data + _CAUGHT_UP if delivery.caught_up else batch.data)
                    if self._draining.is_set():
                        raise asyncio.CancelledError  # handled below like a drain while waiting
            except _CallGone:
                raise asyncio.CancelledError from None  # gRPC notes a cancelled call at debug level
            except asyncio.CancelledError:
                if not self._draining.is_set():
                    raise  # the app went away (or the deadline passed)
                if task.cancelling():
                    task.uncancel()  # cancelled by drain(): end with a status the app can act on
                await self._drained(context, rec, plan)
            except Exception as e:
                await self._abort(context, rec, e, next_seq_num=_resume_point(plan), query=query)
            finally:
                self._sessions.discard(task)
                await batches.aclose()  # closes the upstream request at once

    def handler(self) -> grpc.GenericRpcHandler[Any, Any]:
        return grpc.method_handlers_generic_handler(
            SERVICE_NAME,
            {
                "Read": grpc.unary_unary_rpc_method_handler(
                    self.read, request_deserializer=decoder(api_pb.ReadRequest), response_serializer=_identity
                ),
                "ReadSession": grpc.unary_stream_rpc_method_handler(
                    self.read_session,
                    request_deserializer=decoder(api_pb.ReadSessionRequest),
                    response_serializer=_identity,
                ),
                "CheckTail": grpc.unary_unary_rpc_method_handler(
                    self.check_tail,
                    request_deserializer=decoder(api_pb.CheckTailRequest),
                    response_serializer=api_pb.CheckTailResponse.SerializeToString,
                ),
            },
        )


def _observe_lag(lag: HistogramChild, batch: ReadBatch, known: StreamPosition | None, next_seq_num: int | None) -> None:
    """Records between the newest tail the sidecar knows for the stream (this message's own, a
    heartbeat's, a CheckTail answer, another session's) and the end of what this session is sending
    now. Catch-up batches carry no tail: they are observed only when the tail cache knows one."""
    tail = batch.tail.seq_num if batch.tail is not None else -1
    if known is not None and known.seq_num > tail:
        tail = known.seq_num
    if tail >= 0 and next_seq_num is not None:
        lag.observe(max(0, tail - next_seq_num))


class _CallGone(Exception):
    """A send failed because the call is over: the app cancelled, the connection dropped, or
    the server's grace period ran out. Nobody is left to tell."""


async def _send(context: grpc.aio.ServicerContext[Any, Any], data: bytes) -> None:
    try:
        await context.write(data)
    except (asyncio.CancelledError, grpc.aio.InternalError) as e:  # InternalError: a failed send batch
        raise _CallGone from e


def _resume_point(plan: ResumePlan) -> int | None:
    """Where the app should resume: after the last record sent, or where it asked to start."""
    if plan.next_seq_num is not None:
        return plan.next_seq_num
    start = plan.query.start
    return start.value if isinstance(start, SeqNum) else None
