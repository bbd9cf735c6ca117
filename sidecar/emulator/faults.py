"""Test hooks that are not S2: injected faults and request statistics (`/_emulator/...`)."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from sidecar.errors import S2Error

from .exchange import H2_ERROR_CODES, h2_error_code

# What a request is, for fault matching and for statistics. "read" is a one-shot read,
# "session" an SSE or s2s read session; other stream operations count as "streams" and as their
# operation ("list" for `GET /v1/streams`, under the key `basin/`: how many listings a basin had).
KINDS = ("read", "session", "tail", "append", "streams")
# "list" is a stream listing (`GET /v1/streams`); its `stream` is the listing's `prefix`.
FAULT_KINDS = ("read", "session", "tail", "append", "list", "any")


@dataclass(frozen=True, slots=True)
class Fail:
    """Answer with this S2 error (and a `retry-after-ms` header when given)."""

    error: S2Error


@dataclass(frozen=True, slots=True)
class Cut:
    """End the answer abruptly after this many response-body bytes: HTTP/1.1 aborts the TCP
    connection; HTTP/2 resets the stream (RST_STREAM with `error_code`, default INTERNAL_ERROR)
    and the connection's other streams go on. `before_headers`: end it before any response."""

    after_bytes: int
    error_code: int | None = None
    before_headers: bool = False


@dataclass(frozen=True, slots=True)
class Stall:
    """Send the response headers, then nothing for this many seconds, then go on."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Corrupt:
    """Put garbage where the first message (or the whole body) should be."""


Action = Fail | Cut | Stall | Corrupt


@dataclass(slots=True)
class Fault:
    kind: str
    basin: str | None
    stream: str | None
    remaining: int
    action: Action

    def matches(self, kind: str, basin: str | None, stream: str | None) -> bool:
        if kind == "list" and self.kind == "any":
            stream = None  # a listing names a prefix, not a stream: `any` takes it only when naming no stream
        return (
            self.remaining > 0
            and (self.kind == "any" or self.kind == kind)
            and (self.basin is None or self.basin == basin)
            and (self.stream is None or self.stream == stream)
        )


def _int(obj: dict[str, Any], name: str, default: int | None = None, minimum: int = 0) -> int:
    value = obj.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}")
    return value


def parse_fault(obj: Any) -> Fault:
    """A fault from its JSON description; `ValueError` says what is wrong."""
    if not isinstance(obj, dict):
        raise ValueError("expected a JSON object")
    kind = obj.get("kind", "any")
    if kind not in FAULT_KINDS:
        raise ValueError(f"`kind` must be one of {', '.join(FAULT_KINDS)}")
    basin, stream = obj.get("basin"), obj.get("stream")
    if not all(v is None or isinstance(v, str) for v in (basin, stream)):
        raise ValueError("`basin` and `stream` must be strings")
    actions = [k for k in ("fail", "cut_after_bytes", "stall_seconds", "corrupt", "rst_stream") if k in obj]
    if len(actions) != 1:
        raise ValueError("give exactly one of `fail`, `cut_after_bytes`, `stall_seconds`, `corrupt`, `rst_stream`")
    error_code = h2_error_code(obj.get("error_code"), H2_ERROR_CODES["INTERNAL_ERROR"])
    action: Action
    if actions[0] == "fail":
        times = _int(obj, "fail", minimum=1)
        retry = obj.get("retry_after_ms")
        if retry is not None:
            retry = _int(obj, "retry_after_ms")
        code, message = obj.get("code", "unavailable"), obj.get("message", "injected fault")
        if not isinstance(code, str) or not isinstance(message, str):
            raise ValueError("`code` and `message` must be strings")
        status = _int(obj, "status", 503, minimum=400)
        if status > 599:
            raise ValueError("`status` must be an HTTP error status")
        action = Fail(S2Error(status, code, message, retry))
    else:
        times = _int(obj, "times", 1, minimum=1)
        if actions[0] == "cut_after_bytes":
            action = Cut(_int(obj, "cut_after_bytes"), error_code)
        elif actions[0] == "rst_stream":
            if obj["rst_stream"] is not True:
                raise ValueError("`rst_stream` must be true")
            after = obj.get("after_bytes")
            if after is None:
                action = Cut(0, error_code, before_headers=True)
            else:
                action = Cut(_int(obj, "after_bytes"), error_code)
        elif actions[0] == "stall_seconds":
            seconds = obj["stall_seconds"]
            if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
                raise ValueError("`stall_seconds` must be a non-negative number")
            action = Stall(float(seconds))
        else:
            if obj["corrupt"] is not True:
                raise ValueError("`corrupt` must be true")
            action = Corrupt()
    return Fault(kind, basin, stream, times, action)


class Faults:
    """Pending faults, oldest first. A request takes at most one: the oldest that matches."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> None:
        self._faults.append(fault)

    def clear(self) -> None:
        self._faults.clear()

    def take(self, kind: str, basin: str | None, stream: str | None) -> Action | None:
        for fault in self._faults:
            if fault.matches(kind, basin, stream):
                fault.remaining -= 1
                if fault.remaining == 0:
                    self._faults.remove(fault)
                return fault.action
        return None

    def __len__(self) -> int:
        return len(self._faults)


class Stats:
    """Request counts per `basin/stream` and request kind, and open sessions per stream."""

    def __init__(self) -> None:
        self.requests: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.open_sessions: Counter[str] = Counter()
        self.total = 0
        # Records served by reads (one-shot and sessions), and their stored protobuf bytes, per
        # `basin/stream`: what a reader's upstream traffic is, for tests of the history cache.
        self.read_records: Counter[str] = Counter()
        self.read_bytes: Counter[str] = Counter()

    def count(self, key: str, *kinds: str) -> None:
        self.total += 1
        self.requests[key].update(kinds)

    def served(self, key: str, records: int, nbytes: int) -> None:
        self.read_records[key] += records
        self.read_bytes[key] += nbytes

    def reset(self) -> None:
        self.requests.clear()
        self.read_records.clear()
        self.read_bytes.clear()
        self.total = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": {key: dict(c) for key, c in self.requests.items()},
            "open_sessions": {key: n for key, n in self.open_sessions.items() if n > 0},
            "open_sessions_total": sum(self.open_sessions.values()),
            "requests_total": self.total,
            "read_records": dict(self.read_records),
            "read_bytes": dict(self.read_bytes),
        }
