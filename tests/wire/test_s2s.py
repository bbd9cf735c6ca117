"""s2s framing, checked against bytes written by hand from the framing `sidecar/wire/s2s.py` describes."""

import gzip

import pytest

from sidecar.errors import ProtocolError
from sidecar.wire.s2s import Compression, Frame, FrameDecoder, encode_frame, encode_terminal, parse_frame

# A heartbeat: ReadBatch{tail{seq_num:3,timestamp:7}} = 12 04 08 03 10 07; length 7 = flag + 6.
HEARTBEAT = b"\x00\x00\x07\x00" + b"\x12\x04\x08\x03\x10\x07"
# Terminal: flag 0x80, status 416 = 0x01a0, then JSON.
TERMINAL_BODY = b'{"tail":{"seq_num":3,"timestamp":7}}'
TERMINAL = (3 + len(TERMINAL_BODY)).to_bytes(3, "big") + b"\x80\x01\xa0" + TERMINAL_BODY


def test_encoder_writes_the_spec_bytes() -> None:
    assert encode_frame(b"\x12\x04\x08\x03\x10\x07") == HEARTBEAT
    assert encode_terminal(416, TERMINAL_BODY) == TERMINAL


def test_decoder_reads_frames_split_anywhere() -> None:
    data = HEARTBEAT + TERMINAL
    for cut in range(len(data) + 1):
        dec = FrameDecoder()
        frames = dec.feed(data[:cut]) + dec.feed(data[cut:])
        assert frames == [
            Frame(b"\x12\x04\x08\x03\x10\x07"),
            Frame(TERMINAL_BODY, terminal=True, status=416),
        ]
        assert dec.pending == 0


def test_truncation_is_visible_as_pending_bytes() -> None:
    dec = FrameDecoder()
    assert dec.feed(HEARTBEAT[:-2]) == []
    assert dec.pending == len(HEARTBEAT) - 2


def test_gzip_frames() -> None:
    body = b"\x0a" * 5000
    payload = gzip.compress(body)
    frame = (len(payload) + 1).to_bytes(3, "big") + b"\x40" + payload  # CC=10: gzip
    assert FrameDecoder().feed(frame) == [Frame(body)]
    assert FrameDecoder().feed(encode_frame(body, compression=Compression.GZIP)) == [Frame(body)]


def test_zstd_and_oversized_frames_are_protocol_errors() -> None:
    with pytest.raises(ProtocolError):
        parse_frame(b"\x20abc")  # CC=01: zstd, which we never ask for
    with pytest.raises(ProtocolError):
        FrameDecoder(max_frame_bytes=10).feed(b"\x00\x00\x20\x00")
    with pytest.raises(ProtocolError):
        FrameDecoder().feed(b"\x00\x00\x00")  # zero length: no flag byte
