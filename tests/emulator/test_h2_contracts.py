"""What the HTTP/2 code under test relies on from `h2` and `hyperframe` (versions locked in
requirements/): each test fails loudly when an upgrade changes it, naming what to revisit."""

from __future__ import annotations

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import hyperframe.frame
import pytest
from hyperframe.frame import DataFrame, GoAwayFrame, HeadersFrame

from sidecar.emulator import h2server
from tests.emulator.h2client import FrameSplitter, Goaway, graceful_goaway


def test_hyperframe_still_has_the_private_repr_the_emulator_shortens() -> None:
    """`h2server.shorten_frame_reprs` patches hyperframe's private `_raw_data_repr`: if it is gone,
    every received frame's payload is hex-encoded again for h2's trace log (a CPU cost)."""
    assert callable(getattr(hyperframe.frame, "_raw_data_repr", None)), "hyperframe dropped _raw_data_repr"
    assert h2server.shorten_frame_reprs()
    frame = DataFrame(1, data=b"x" * 100_000)
    assert "<100000 bytes>" in repr(frame) and len(repr(frame)) < 200


def _server_after_goaway() -> tuple[h2.connection.H2Connection, h2.connection.H2Connection]:
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    server = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    client.initiate_connection()
    server.initiate_connection()
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    client.send_headers(1, [(":method", "GET"), (":path", "/"), (":scheme", "http"), (":authority", "x")])
    server.receive_data(client.data_to_send())
    return client, server


def test_h2_stops_a_connection_at_any_goaway_it_receives() -> None:
    """Why the test client reads a graceful GOAWAY itself (`graceful_goaway`) instead of giving it
    to h2: after any GOAWAY h2 refuses the frames of the streams the server may still finish
    (RFC 9113 section 6.8). If h2 starts allowing them, that detour can go."""
    client, server = _server_after_goaway()
    server.send_headers(1, [(":status", "200")])
    headers = server.data_to_send()
    goaway = GoAwayFrame(0, last_stream_id=1, error_code=0).serialize()
    events = client.receive_data(goaway)
    assert any(isinstance(e, h2.events.ConnectionTerminated) for e in events)
    with pytest.raises(h2.exceptions.ProtocolError):
        client.receive_data(headers)


def test_h2_refuses_to_send_after_its_own_goaway() -> None:
    """Why the emulator and the test server write a graceful GOAWAY with hyperframe, past h2:
    after `close_connection()` h2 refuses to send on the streams that should finish."""
    _client, server = _server_after_goaway()
    server.close_connection(error_code=0, last_stream_id=1)
    with pytest.raises(h2.exceptions.ProtocolError):
        server.send_headers(1, [(":status", "200")])


def test_the_test_client_splits_frames_and_takes_only_graceful_goaways() -> None:
    graceful = GoAwayFrame(0, last_stream_id=5, error_code=0).serialize()
    failing = GoAwayFrame(0, last_stream_id=5, error_code=2).serialize()
    headers = HeadersFrame(1, data=b"").serialize()
    splitter = FrameSplitter()
    wire = headers + graceful + failing
    assert splitter.feed(wire[:4]) == []
    assert splitter.feed(wire[4:20]) == [headers]
    assert splitter.feed(wire[20:]) == [graceful, failing]
    assert [graceful_goaway(f) for f in (headers, graceful, failing)] == [None, Goaway(5, 0), None]
