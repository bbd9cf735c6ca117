"""Server-sent events as S2 uses them: a sans-IO parser (bytes in, events out) and a writer.

S2's `data:` lines reach ~1.4 MB (a batch of 1000 x 1 KiB records in base64), so the parser
splits on newlines itself with an explicit cap instead of relying on a reader's line limit.
"""

from __future__ import annotations

from dataclasses import dataclass

from sidecar.errors import ProtocolError

# Largest S2 event: 1 MiB metered of binary data, base64 (4/3) plus JSON framing, with headroom.
MAX_LINE_BYTES = 4 * 1024 * 1024

DONE = "[DONE]"


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One dispatched event. `event` is "message" when the stream gave no `event:` field."""

    event: str
    data: str
    id: str | None = None


class SSEParser:
    """Incremental SSE parser (WHATWG rules that S2 uses: event, data, id; comments ignored)."""

    def __init__(self, max_line_bytes: int = MAX_LINE_BYTES) -> None:
        self._buf = bytearray()
        self._scan_from = 0
        self._max = max_line_bytes
        self._event = ""
        self._data: list[str] = []
        self._id: str | None = None

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Add bytes; return the events they complete."""
        self._buf += chunk
        events: list[SSEEvent] = []
        start = 0
        buf = self._buf
        while True:
            nl = buf.find(b"\n", max(start, self._scan_from))
            if nl < 0:
                break
            end = nl - 1 if nl > start and buf[nl - 1] == 0x0D else nl
            line = bytes(buf[start:end])
            start = nl + 1
            self._scan_from = start
            event = self._line(line)
            if event is not None:
                events.append(event)
        del buf[:start]
        self._scan_from = len(buf)
        if len(buf) > self._max:
            raise ProtocolError(f"SSE line longer than {self._max} bytes from upstream")
        return events

    def _line(self, line: bytes) -> SSEEvent | None:
        if not line:
            if not self._data and not self._event:
                self._id = None
                return None
            event = SSEEvent(self._event or "message", "\n".join(self._data), self._id)
            self._event, self._data, self._id = "", [], None
            return event
        if line[0] == 0x3A:  # ":" comment
            return None
        text = line.decode("utf-8", "replace")
        name, sep, value = text.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            self._id = value
        return None


def encode_event(data: str, event: str | None = None, id: str | None = None) -> bytes:
    """One SSE event, terminated by a blank line."""
    parts = []
    if event is not None:
        parts.append(f"event: {event}\n")
    if id is not None:
        parts.append(f"id: {id}\n")
    parts.extend(f"data: {line}\n" for line in data.split("\n"))
    parts.append("\n")
    return "".join(parts).encode()


def format_event_id(last_seq_num: int, count: int, metered_bytes: int) -> str:
    """S2's batch event id: last seq_num in the batch, records so far, metered bytes so far."""
    return f"{last_seq_num},{count},{metered_bytes}"


def parse_event_id(value: str) -> tuple[int, int, int]:
    """Parse `s,c,b`; `ValueError` if it is not three non-negative integers."""
    parts = value.split(",")
    if len(parts) != 3 or not all(p.isascii() and p.isdigit() for p in parts):
        raise ValueError(f"event id must be `seq_num,count,bytes`, got {value!r:.100}")
    return int(parts[0]), int(parts[1]), int(parts[2])
