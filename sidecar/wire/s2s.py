"""S2's binary session framing (`Content-Type: s2s/proto`), sans-IO.

A frame is a 3-byte big-endian length (of flag + body), a flag byte `[T][CC][A][RRRR]`
(T: terminal, CC: compression 0 none / 1 zstd / 2 gzip, A: reconnect advised), and the body: a
protobuf message, or for a terminal frame a 2-byte HTTP status followed by S2's JSON error body.

A (0x10) is set by a server that is handing its sessions over (S2's SDKs: `reconnectAdvised`):
the client should finish with this frame and reconnect, resuming after it. Terminal frames
ignore it.
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from enum import IntEnum

import zstandard

from sidecar.errors import ProtocolError

CONTENT_TYPE = "s2s/proto"
MAX_FRAME_BYTES = 2**24 - 1  # what a 3-byte length can say
PREFIX_BYTES = 3

_TERMINAL = 0x80
_COMPRESSION_SHIFT = 5
_COMPRESSION_MASK = 0x60
_RECONNECT_ADVISED = 0x10


class Compression(IntEnum):
    NONE = 0
    ZSTD = 1
    GZIP = 2


@dataclass(frozen=True, slots=True)
class Frame:
    """A decoded frame: a message body, or (terminal) an HTTP status and error body."""

    body: bytes
    terminal: bool = False
    status: int | None = None  # terminal frames only
    reconnect_advised: bool = False  # regular frames only


def frame_length(prefix: bytes) -> int:
    """Length of flag + body from the 3-byte prefix."""
    n = int.from_bytes(prefix, "big")
    if n == 0:
        raise ProtocolError("s2s frame with zero length (no flag byte)")
    return n


def parse_frame(payload: bytes) -> Frame:
    """Decode flag + body (the `frame_length` bytes after the prefix)."""
    flag = payload[0]
    body = payload[1:]
    compression = (flag & _COMPRESSION_MASK) >> _COMPRESSION_SHIFT
    if compression == Compression.GZIP:
        try:
            body = gzip.decompress(body)
        except (OSError, EOFError, zlib.error) as e:
            raise ProtocolError(f"bad gzip in s2s frame: {e}") from None
    elif compression == Compression.ZSTD:
        body = _zstd_decompress(body)
    elif compression != Compression.NONE:
        raise ProtocolError(f"s2s frame uses unknown compression {compression}")
    if flag & _TERMINAL:
        if len(body) < 2:
            raise ProtocolError("terminal s2s frame shorter than its 2-byte status")
        return Frame(body[2:], terminal=True, status=int.from_bytes(body[:2], "big"))
    return Frame(body, reconnect_advised=bool(flag & _RECONNECT_ADVISED))


def encode_frame(body: bytes, *, compression: Compression = Compression.NONE, reconnect_advised: bool = False) -> bytes:
    """A regular frame carrying `body` (compressed here when asked)."""
    if compression == Compression.GZIP:
        body = gzip.compress(body, compresslevel=1)
    elif compression == Compression.ZSTD:
        # A content size in the frame header lets readers decompress in one call.
        body = zstandard.ZstdCompressor(level=1, write_content_size=True).compress(body)
    elif compression != Compression.NONE:
        raise ValueError(f"cannot encode compression {compression!r}")
    n = len(body) + 1
    if n > MAX_FRAME_BYTES:
        raise ValueError(f"s2s frame of {n} bytes exceeds the 3-byte length")
    flag = compression << _COMPRESSION_SHIFT | (_RECONNECT_ADVISED if reconnect_advised else 0)
    return n.to_bytes(3, "big") + bytes([flag]) + body


def _zstd_decompress(body: bytes) -> bytes:
    """One zstd frame; S2 (Rust `zstd::encode_all`) writes the content size, but stream mode
    also reads frames that lack it."""
    try:
        return zstandard.ZstdDecompressor().decompressobj().decompress(body)
    except zstandard.ZstdError as e:
        raise ProtocolError(f"bad zstd compression in s2s frame: {e}") from None


def encode_terminal(status: int, error_json: bytes) -> bytes:
    """A terminal frame: the session ends with this HTTP status and error body."""
    body = status.to_bytes(2, "big") + error_json
    return (len(body) + 1).to_bytes(3, "big") + bytes([_TERMINAL]) + body


class FrameDecoder:
    """Incremental decoder: feed bytes, get whole frames. The I/O layer may instead read the
    prefix and payload with `readexactly` and call `frame_length` / `parse_frame` itself."""

    def __init__(self, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        self._buf = bytearray()
        self._max = max_frame_bytes

    def feed(self, chunk: bytes) -> list[Frame]:
        self._buf += chunk
        frames: list[Frame] = []
        pos = 0
        buf = self._buf
        while len(buf) - pos >= PREFIX_BYTES:
            n = frame_length(bytes(buf[pos : pos + PREFIX_BYTES]))
            if n > self._max:
                raise ProtocolError(f"s2s frame of {n} bytes exceeds the limit of {self._max}")
            if len(buf) - pos - PREFIX_BYTES < n:
                break
            start = pos + PREFIX_BYTES
            frames.append(parse_frame(bytes(buf[start : start + n])))
            pos = start + n
        del buf[:pos]
        return frames

    @property
    def pending(self) -> int:
        """Bytes held that do not yet make a whole frame (non-zero at EOF means truncation)."""
        return len(self._buf)
