"""What the async client (`client.py`) and the sync client (`sync.py`) share: their settings and
every request they build. Retries and resume (`_resume`) are shared the same way, so the two
clients differ only in how they wait: `await` or block."""

from __future__ import annotations

import enum
from typing import Final, Literal

from s2sidecar_client import _convert
from s2sidecar_client._convert import EncryptionKey
from s2sidecar_client._proto.s2sidecar.v1 import stream_pb2 as pb
from s2sidecar_client._resume import NO_RETRY, RetryPolicy, SessionState
from s2sidecar_client.errors import RangeNotSatisfiable
from s2sidecar_client.types import ReadLimit, Start, Timestamp

Metadata = tuple[tuple[str, str], ...]


class _ClientTimeout(enum.Enum):
    CLIENT_TIMEOUT = enum.auto()


# The default of a call's `timeout`: the client's. `None` cannot be it, as it means "no deadline".
CLIENT_TIMEOUT: Final = _ClientTimeout.CLIENT_TIMEOUT
CallTimeout = float | None | Literal[_ClientTimeout.CLIENT_TIMEOUT]

# (method path, request serializer, response deserializer) of each call, for `channel.unary_*`.
READ = (_convert.SERVICE + "Read", pb.ReadRequest.SerializeToString, pb.ReadResponse.FromString)
READ_SESSION = (
    _convert.SERVICE + "ReadSession",
    pb.ReadSessionRequest.SerializeToString,
    pb.ReadSessionResponse.FromString,
)
CHECK_TAIL = (_convert.SERVICE + "CheckTail", pb.CheckTailRequest.SerializeToString, pb.CheckTailResponse.FromString)


class ClientBase:
    def __init__(
        self,
        target: str | None,
        basin: str | None,
        token: str | None,
        timeout: float | None,
        retry: RetryPolicy,
        encryption_key: EncryptionKey | None,
    ) -> None:
        self.basin = basin
        self._metadata = _convert.auth_metadata(token)
        self._key = None if encryption_key is None else _convert.encryption_key_metadata(encryption_key)
        self.timeout = timeout
        self.retry = retry
        self.target = target or _convert.default_target()
        # Until a first answer, calls wait for the channel to connect (gRPC's wait_for_ready): an app
        # that starts before its sidecar waits for it instead of failing fast.
        self._answered = False

    def _answer(self) -> None:
        self._answered = True

    def _reads_metadata(self, encryption_key: EncryptionKey | None) -> Metadata | None:
        """Metadata for a `Read` or `ReadSession`: the call's key, else the client's (`CheckTail`
        takes none: S2 answers tails without one)."""
        key = self._key if encryption_key is None else _convert.encryption_key_metadata(encryption_key)
        return self._metadata if key is None else (*(self._metadata or ()), key)

    def _read_request(
        self,
        stream: str,
        start: Start | None,
        limit: ReadLimit | None,
        until: int | Timestamp | None,
        clamp: bool,
        wait: int | None,
        ignore_command_records: bool,
        timeout: CallTimeout,
    ) -> tuple[pb.ReadRequest, float | None]:
        """A `Read`'s request, and its time budget: the call's timeout (else the client's) on top
        of any `wait`."""
        req = _convert.read_request(
            pb.ReadRequest, self.basin, stream, start, limit, until, clamp, wait, ignore_command_records
        )
        within = self._within(timeout)
        return req, None if within is None else within + (wait or 0)

    def _within(self, timeout: CallTimeout) -> float | None:
        """A call's timeout: its own, else the client's."""
        return self.timeout if timeout is CLIENT_TIMEOUT else timeout

    @staticmethod
    def _note_tail_read(err: BaseException, req: pb.ReadRequest) -> None:
        """A read with no start reads at the tail (the proto's default), where nothing is yet: say
        on the error how to read what is there, for an app that expected the first record."""
        if isinstance(err, RangeNotSatisfiable) and req.WhichOneof("start") is None and not req.HasField("wait"):
            err.add_note(
                "read() with no start reads at the tail, as the proto says: pass a start "
                "(start=SeqNum(0) reads from the first record) or set wait to wait for the next record"
            )

    def _session_state(
        self,
        stream: str,
        start: Start | None,
        limit: ReadLimit | None,
        until: int | Timestamp | None,
        clamp: bool,
        wait: int | None,
        resume: bool,
        ignore_command_records: bool,
    ) -> SessionState:
        if ignore_command_records and limit is not None and (limit.count or limit.bytes):
            # The sidecar counts the command records it leaves out toward the limit (as S2's SDKs
            # do), but the client never sees them, so a resume could not reduce the limit right.
            raise ValueError(
                "read_session: ignore_command_records with a count or bytes limit cannot resume exactly "
                "(the records left out count toward the limit but are never delivered): "
                "leave the limit to the app (stop iterating), or drop ignore_command_records"
            )
        req = _convert.read_request(
            pb.ReadSessionRequest, self.basin, stream, start, limit, until, clamp, wait, ignore_command_records
        )
        return SessionState(req, self.retry if resume else NO_RETRY)

    def _tail_request(self, stream: str, max_staleness_ms: int | None) -> pb.CheckTailRequest:
        return pb.CheckTailRequest(basin=self.basin or "", stream=stream, max_staleness_ms=max_staleness_ms)


class SessionView:
    """Where an open session stands, for both clients' session objects (one definition: the async
    and sync sessions cannot drift apart)."""

    _state: SessionState

    @property
    def next_seq_num(self) -> int | None:
        """Where the session stands: after the last record delivered, or at the last heartbeat's tail."""
        return self._state.next_seq_num

    def is_caught_up(self) -> bool:
        """Whether the last message (a hidden heartbeat included) said every record before the tail
        was delivered, as S2's SDKs' `is_caught_up()`; false again after a resume until one says so."""
        return self._state.caught_up
