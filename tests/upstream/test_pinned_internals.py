"""What the transports read or write inside aiohttp, h2 and hyperframe, where no public API does
it (the versions are locked in requirements/). Each test fails loudly if a version moves what the
code relies on; a gauge reading 0, or an h2 connection refusing a finishing stream, would not."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, cast

import aiohttp
import h2.config
import h2.connection
import h2.events
import h2.exceptions
import hyperframe.frame
import pytest
from aiohttp import web

from sidecar.types import ReadQuery, SeqNum
from sidecar.upstream import BasinEndpoint, UpstreamSettings
from sidecar.upstream import http2 as h2t
from sidecar.upstream.http1 import Http1Transport, connections
from sidecar.upstream.http2 import MAX_FRAME_SIZE
from tests.upstream.h2server import H2TestServer
from tests.upstream.test_http2 import BASIN, collect, h2_client

# -- aiohttp: the pool gauges count its connector's connections -------------------------------------


@pytest.fixture
async def held_server() -> AsyncIterator[tuple[str, asyncio.Event]]:
    """An HTTP/1.1 server whose /hold answers one byte, then the rest once the event is set."""
    release = asyncio.Event()

    async def hold(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        await resp.write(b"x")
        await release.wait()
        await resp.write(b"y")
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_get("/hold", hold)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}", release
    finally:
        await runner.cleanup()


async def test_the_pool_gauges_count_aiohttps_connections(held_server: tuple[str, asyncio.Event]) -> None:
    url, release = held_server
    transport = Http1Transport(UpstreamSettings(BasinEndpoint.parse(url)))
    await transport.start()
    try:
        assert transport.pool_stats() == {
            "unary_in_use": 0,
            "long_poll_in_use": 0,
            "session_in_use": 0,
            "connections_h1": 0,
        }
        async with transport.get(url + "/hold", headers={}) as resp:
            assert await resp.body.readexactly(1) == b"x"
            stats = transport.pool_stats()
            assert (stats["unary_in_use"], stats["connections_h1"]) == (1, 1)
            release.set()
            assert await resp.body.read() == b"y"
        stats = transport.pool_stats()
        assert (stats["unary_in_use"], stats["connections_h1"]) == (0, 1)  # idle, kept alive
    finally:
        await transport.close()


def test_a_connector_without_those_counts_fails_loudly() -> None:
    with pytest.raises(RuntimeError, match=r"has no _acquired: .*requirements/runtime.txt"):
        connections(cast(aiohttp.BaseConnector, object()))


# -- h2: the pending frame header, and receiving after GOAWAY ----------------------------------------


def _connected() -> tuple[h2.connection.H2Connection, h2.connection.H2Connection]:
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    server = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding=None))
    client.initiate_connection()
    server.initiate_connection()
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    server.receive_data(client.data_to_send())
    return client, server


def test_h2_keeps_a_partial_frame_where_the_early_length_check_reads_it() -> None:
    client, _ = _connected()
    header = (MAX_FRAME_SIZE + 1).to_bytes(3, "big") + bytes([0, 0]) + (1).to_bytes(4, "big")
    assert client.receive_data(header) == []  # h2 waits for the whole frame before checking it
    assert bytes(h2t._pending_frame_bytes(client)) == header


@pytest.mark.parametrize("keep_receiving", [False, True])
def test_h2_refuses_the_data_of_a_finishing_stream_after_goaway_unless_kept_receiving(keep_receiving: bool) -> None:
    """If h2 ever accepts it on its own, the False case fails: `_keep_receiving` can go then."""
    client, server = _connected()
    sid = client.get_next_available_stream_id()
    client.send_headers(
        sid, [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"x"), (b":path", b"/")], end_stream=True
    )
    server.receive_data(client.data_to_send())
    server.send_headers(sid, [(b":status", b"200")])
    head = server.data_to_send()
    server.send_data(sid, b"records", end_stream=True)
    body = server.data_to_send()
    goaway = hyperframe.frame.GoAwayFrame(0, last_stream_id=sid).serialize()  # the stream may finish

    client.receive_data(head)
    assert any(isinstance(e, h2.events.ConnectionTerminated) for e in client.receive_data(goaway))
    if not keep_receiving:
        with pytest.raises(h2.exceptions.ProtocolError):
            client.receive_data(body)
        return
    h2t._keep_receiving(client)
    events = client.receive_data(body)
    assert [type(e) for e in events if not isinstance(e, h2.events.WindowUpdated)][:2] == [
        h2.events.DataReceived,
        h2.events.StreamEnded,
    ]


def test_missing_h2_internals_fail_the_import(monkeypatch: pytest.MonkeyPatch) -> None:
    class Bare:
        def __init__(self, **_: Any) -> None:
            self.incoming_buffer = object()
            self.state_machine = object()

    monkeypatch.setattr(h2.connection, "H2Connection", Bare)
    with pytest.raises(
        ImportError, match=r"incoming_buffer\._data or .*state_machine\.state.*requirements/runtime\.txt"
    ):
        h2t._check_h2_internals()


async def test_a_frame_longer_than_allowed_fails_at_its_header() -> None:
    """Not once 16 MiB have arrived (or the heartbeat timeout has passed): at the 9-byte header."""
    async with H2TestServer(records=10) as server, h2_client(server) as client:
        gen = client.read_session(BASIN, "s", ReadQuery(start=SeqNum(0)))
        await gen.__anext__()
        server.send_raw((2**24 - 1).to_bytes(3, "big") + bytes([0, 0]) + (1).to_bytes(4, "big"))
        with pytest.raises(Exception, match="SETTINGS_MAX_FRAME_SIZE"):
            while True:
                await asyncio.wait_for(gen.__anext__(), 5)
        assert await collect(client, "s", 0, 10) == list(range(10))  # and the client goes on


# -- hyperframe: the cheap repr of frame payloads ---------------------------------------------------


def test_frame_payloads_are_not_hex_encoded_for_h2s_trace_log() -> None:
    assert "<1000 bytes>" in repr(hyperframe.frame.DataFrame(1, data=b"x" * 1000))
