"""The SSE parser and writer, without sockets."""

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar.errors import ProtocolError
from sidecar.wire.sse import SSEEvent, SSEParser, encode_event, format_event_id, parse_event_id

S2_STREAM = (
    b"event: batch\n"
    b"id: 1,2,20\n"
    b'data: {"records":[{"seq_num":0,"timestamp":5},{"seq_num":1,"timestamp":6}]}\n'
    b"\n"
    b": a comment\n"
    b"event: ping\n"
    b'data: {"timestamp":7,"tail":{"seq_num":2,"timestamp":6}}\n'
    b"\n"
    b"data: [DONE]\n"
    b"\n"
)
EXPECTED = [
    SSEEvent("batch", '{"records":[{"seq_num":0,"timestamp":5},{"seq_num":1,"timestamp":6}]}', "1,2,20"),
    SSEEvent("ping", '{"timestamp":7,"tail":{"seq_num":2,"timestamp":6}}'),
    SSEEvent("message", "[DONE]"),
]


def test_parses_s2_events_in_one_chunk() -> None:
    assert SSEParser().feed(S2_STREAM) == EXPECTED


@given(st.lists(st.integers(min_value=0, max_value=len(S2_STREAM)), max_size=12))
def test_any_chunking_gives_the_same_events(cuts: list[int]) -> None:
    parser = SSEParser()
    events = []
    bounds = [0, *sorted(cuts), len(S2_STREAM)]
    for lo, hi in itertools.pairwise(bounds):
        events += parser.feed(S2_STREAM[lo:hi])
    assert events == EXPECTED


def test_crlf_and_multiline_data() -> None:
    assert SSEParser().feed(b"event: x\r\ndata: a\r\ndata: b\r\n\r\n") == [SSEEvent("x", "a\nb")]


def test_long_line_within_cap_is_fine_and_beyond_cap_is_an_error() -> None:
    big = b"data: " + b"x" * 3_000_000 + b"\n\n"
    assert SSEParser().feed(big)[0].data == "x" * 3_000_000
    parser = SSEParser(max_line_bytes=1000)
    with pytest.raises(ProtocolError):
        parser.feed(b"data: " + b"y" * 2000)


def test_writer_output_is_what_the_spec_shows() -> None:
    assert encode_event('{"a":1}', event="batch", id="4,5,60") == b'event: batch\nid: 4,5,60\ndata: {"a":1}\n\n'
    assert encode_event("[DONE]") == b"data: [DONE]\n\n"


def test_event_ids() -> None:
    assert format_event_id(9, 10, 123) == "9,10,123"
    assert parse_event_id("9,10,123") == (9, 10, 123)
    for bad in ("", "1,2", "a,b,c", "1,2,3,4", "-1,0,0"):
        with pytest.raises(ValueError):
            parse_event_id(bad)
