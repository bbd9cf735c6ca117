"""The HTTP/2 upstream against real HTTP/2 servers on loopback.

Most tests run against the emulator (`sidecar/emulator`), scripted through its test hooks: GOAWAY
(`/_emulator/http2/goaway`), RST_STREAM (the `rst_stream` fault), its SETTINGS_MAX_CONCURRENT_STREAMS
(`h2_max_concurrent_streams`). The rest use the small test server (tests/upstream/h2server.py) for
what the emulator cannot script: counting the DATA bytes it sent one stream (a stalled reader's
window), holding a request's response headers back, a peer that goes silent (PING), raw bytes that
break HTTP/2, an oversized header block, and aborting every TCP connection at once."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from sidecar.emulator import AUTO_CREATE, Emulator, EmulatorConfig
from sidecar.errors import TransportError
from sidecar.types import ReadLimit, ReadQuery, SeqNum
from sidecar.upstream import BasinEndpoint, UpstreamClient, UpstreamProtocol, UpstreamSettings
from sidecar.upstream.http2 import STREAM_WINDOW
from tests.upstream.h2server import H2TestServer, raw_frame, wait_until

BASIN = "http2-tests"
MAX_APPEND_RECORDS = 1000  # S2's batch limit


class Emulated:
    """An emulator for the upstream's tests: records to read, and its HTTP/2 test hooks."""

    def __init__(self, emulator: Emulator, http: aiohttp.ClientSession) -> None:
        self.emulator = emulator
        self.http = http

    @property
    def url(self) -> str:
        return self.emulator.url

    async def append(self, stream: str, count: int) -> None:
        """`count` more records on `stream` (bodies: their positions in this call)."""
        for first in range(0, count, MAX_APPEND_RECORDS):
            records = [{"body": str(i)} for i in range(first, min(count, first + MAX_APPEND_RECORDS))]
            async with self.http.post(
                f"{self.url}/v1/streams/{stream}/records", json={"records": records}, headers={"s2-basin": BASIN}
            ) as r:
                assert r.status == 200, await r.text()

    async def hook(self, method: str, path: str) -> Any:
        async with self.http.request(method, f"{self.url}/_emulator/{path}") as r:
            assert r.status == 200, await r.text()
            return await r.json()

    async def http2_connections(self) -> list[dict[str, Any]]:
        connections: list[dict[str, Any]] = (await self.hook("GET", "http2/connections"))["connections"]
        return connections

    async def open_sessions(self) -> int:
        total: int = (await self.hook("GET", "stats"))["open_sessions_total"]
        return total

    async def wait_for_sessions(self, count: int, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while await self.open_sessions() != count:  # noqa: ASYNC110 - the emulator's stats are polled
                await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def emulated(client_ssl: ssl.SSLContext | None = None, **settings: Any) -> AsyncIterator[Emulated]:
    """An emulator with `settings` (EmulatorConfig's); `client_ssl`: how its helper trusts TLS."""
    config = EmulatorConfig(port=0, basins={BASIN: AUTO_CREATE}, heartbeat_min=0.2, heartbeat_max=0.3, **settings)
    connector = aiohttp.TCPConnector(ssl=client_ssl) if client_ssl is not None else None
    # aiohttp speaks HTTP/1.1: the helper's appends and hook calls add no HTTP/2 connection.
    async with Emulator(config) as emulator, aiohttp.ClientSession(connector=connector) as http:
        yield Emulated(emulator, http)


@contextlib.asynccontextmanager
async def h2_client(server: H2TestServer | Emulated, **settings: Any) -> AsyncIterator[UpstreamClient]:
    """A client of `server` over HTTP/2; `settings`: UpstreamSettings fields."""
    settings.setdefault("protocol", UpstreamProtocol.HTTP2)
    async with UpstreamClient(UpstreamSettings(BasinEndpoint.parse(server.url), **settings)) as client:
        yield client


async def collect(client: UpstreamClient, stream: str, start: int, count: int, wait: int | None = None) -> list[int]:
    """The seq_nums a session reads; with `wait`, it waits that long at the tail for the rest."""
    seqs: list[int] = []
    query = ReadQuery(start=SeqNum(start), limit=ReadLimit(count=count), wait=wait)
    async for batch in client.read_session(BASIN, stream, query):
        seqs.extend(r.seq_num for r in batch.records())
    return seqs


async def test_unary_calls_and_sessions_over_h2c() -> None:
    async with emulated() as emu, h2_client(emu) as client:
        await emu.append("s", 2500)
        tail = await client.check_tail(BASIN, "s")
        assert tail.seq_num == 2500
        batch = await client.read(BASIN, "s", ReadQuery(start=SeqNum(10)))
        assert [r.seq_num for r in batch.records()][:3] == [10, 11, 12]
        assert await collect(client, "s", 5, 2000) == list(range(5, 2005))
        stats = client.pool_stats()
        assert stats["connections_h2"] == 1 and stats.get("connections_h1", 0) == 0


async def test_many_sessions_share_few_connections() -> None:
    """300 concurrent sessions, 100 streams per connection: 3 connections, never more than N."""
    async with emulated(h2_max_concurrent_streams=100) as emu, h2_client(emu, h2_connections=4) as client:
        await emu.append("s", 50)
        gens = [client.read_session(BASIN, "s", ReadQuery(start=SeqNum(0))) for _ in range(300)]
        firsts = await asyncio.gather(*(g.__anext__() for g in gens))
        assert all(b.count == 50 for b in firsts)
        stats = client.pool_stats()
        assert stats["session_in_use"] == 300
        assert stats["connections_h2"] == 3 == len(await emu.http2_connections())
        assert stats["max_streams_per_connection_h2"] == 100
        for g in gens:
            await g.aclose()
        await wait_until(lambda: client.pool_stats()["streams_h2"] == 0)


async def test_connections_are_bounded_by_the_flag() -> None:
    """Past N connections full of streams, requests wait for a free stream."""
    async with emulated(h2_max_concurrent_streams=5) as emu, h2_client(emu, h2_connections=2) as client:
        await emu.append("s", 10)
        gens = [client.read_session(BASIN, "s", ReadQuery(start=SeqNum(0))) for _ in range(12)]
        tasks = [asyncio.ensure_future(g.__anext__()) for g in gens]
        await wait_until(lambda: sum(t.done() for t in tasks) == 10)
        await asyncio.sleep(0.1)
        assert sum(t.done() for t in tasks) == 10  # two wait for a slot
        assert len(await emu.http2_connections()) == 2
        await gens[0].aclose()
        await gens[1].aclose()
        await asyncio.wait_for(asyncio.gather(*tasks[2:]), 5)
        for g in gens[2:]:
            await g.aclose()


async def test_stalled_session_does_not_slow_the_others() -> None:
    """One session stops reading; 50 others on the same connection read 1 MiB each (50 MiB, far
    past the connection window), and the stalled one holds at most its stream window."""
    records = 1024
    async with (
        H2TestServer(records=records, body_size=1000, batch=64, max_streams=1000) as server,
        h2_client(server, h2_connections=1) as client,
    ):
        stalled = client.read_session(BASIN, "stalled", ReadQuery(start=SeqNum(0)))
        first = await stalled.__anext__()  # then never read again
        assert first.count
        seqs = await asyncio.wait_for(asyncio.gather(*(collect(client, f"fast{i}", 0, records) for i in range(50))), 60)
        assert all(s == list(range(records)) for s in seqs)
        assert client.pool_stats()["connections_h2"] == 1
        # The server could send the stalled stream its window and no more.
        assert server.sent["stalled"] <= STREAM_WINDOW + 256 * 1024
        await stalled.aclose()


async def test_rst_stream_fails_only_that_request() -> None:
    async with emulated() as emu, h2_client(emu) as client:
        await emu.append("a", 10)
        await emu.append("b", 10)
        b = client.read_session(BASIN, "b", ReadQuery(start=SeqNum(0)))
        await b.__anext__()
        # Session "a" gets its response headers, then RST_STREAM at its first byte of body.
        async with emu.http.post(
            f"{emu.url}/_emulator/faults", json={"kind": "session", "stream": "a", "rst_stream": True, "after_bytes": 0}
        ) as r:
            assert r.status == 200, await r.text()
        a = client.read_session(BASIN, "a", ReadQuery(start=SeqNum(0)))
        with pytest.raises(TransportError) as err:
            while True:
                await asyncio.wait_for(a.__anext__(), 5)
        assert err.value.retryable and "reset" in str(err.value)
        hb = await asyncio.wait_for(b.__anext__(), 5)  # the other stream carries on
        assert hb.tail is not None
        assert client.pool_stats()["connections_h2"] == 1
        await b.aclose()


async def test_goaway_graceful_lets_streams_finish_and_moves_new_ones() -> None:
    async with emulated() as emu, h2_client(emu) as client:
        await emu.append("s", 1000)
        await emu.append("t", 10)
        running = asyncio.ensure_future(collect(client, "s", 0, 3000, wait=30))
        await emu.wait_for_sessions(1)  # caught up at the tail, 2000 records to go
        # NO_ERROR, last_stream_id = the last one it saw
        assert await emu.hook("POST", "http2/goaway") == {"connections": 1}
        await emu.append("s", 2000)
        assert await asyncio.wait_for(running, 30) == list(range(3000))
        assert await collect(client, "t", 0, 10) == list(range(10))
        assert [c["goaway_sent"] for c in await emu.http2_connections()] == [False]  # a second connection


async def test_goaway_above_last_stream_is_sent_again_at_once() -> None:
    """Streams the server never processed (above last_stream_id) go to a new connection."""
    async with H2TestServer(records=10) as server, h2_client(server) as client:
        assert await collect(client, "warm", 0, 10) == list(range(10))
        server.hold.add("held")
        held = asyncio.ensure_future(collect(client, "held", 0, 10))
        await wait_until(lambda: any(r[1] == "held" for r in server.requests))
        server.hold.clear()
        server.goaway(0, last_stream_id=1)  # "held" (stream 3) was never processed
        assert await asyncio.wait_for(held, 5) == list(range(10))
        assert server.connections_opened == 2


async def test_goaway_with_error_fails_streams_retryably() -> None:
    async with emulated() as emu, h2_client(emu) as client:
        await emu.append("s", 10)
        gen = client.read_session(BASIN, "s", ReadQuery(start=SeqNum(0)))
        await gen.__anext__()
        await emu.hook("POST", "http2/goaway?error_code=INTERNAL_ERROR")  # then the emulator closes
        with pytest.raises(TransportError) as err:
            while True:
                await asyncio.wait_for(gen.__anext__(), 5)
        assert err.value.retryable
        assert await collect(client, "s", 0, 10) == list(range(10))  # a new connection


async def test_ping_finds_a_silent_dead_connection() -> None:
    """A long poll on a connection whose peer went silent (no FIN): PING finds it."""
    async with H2TestServer(records=10) as server, h2_client(server, heartbeat_timeout=1.0) as client:
        await client.check_tail(BASIN, "s")
        poll = asyncio.ensure_future(client.read(BASIN, "s", ReadQuery(start=SeqNum(10), wait=30)))
        await asyncio.sleep(0.1)
        server.silent = True
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(TransportError) as err:
            await asyncio.wait_for(poll, 10)
        assert loop.time() - started < 3
        assert err.value.retryable and "silent" in str(err.value)


@pytest.mark.parametrize(
    ("name", "bad"),
    [
        ("data on stream 0", raw_frame(0, 0, 0, b"abc")),
        ("window overflow", raw_frame(8, 0, 0, (2**31 - 1).to_bytes(4, "big")) * 2),
        ("garbage", b"\xff" * 64),
    ],
)
async def test_a_peer_that_breaks_http2_ends_requests_retryably(name: str, bad: bytes) -> None:
    async with H2TestServer(records=10) as server, h2_client(server) as client:
        gen = client.read_session(BASIN, "s", ReadQuery(start=SeqNum(0)))
        await gen.__anext__()
        server.send_raw(bad)
        with pytest.raises(TransportError) as err:
            while True:
                await asyncio.wait_for(gen.__anext__(), 5)
        assert err.value.retryable, name
        assert await collect(client, "s", 0, 10) == list(range(10))  # and the client goes on


async def test_header_block_too_large_ends_the_request_retryably() -> None:
    async with H2TestServer(records=10) as server, h2_client(server) as client:
        server.headers_extra = [(b"x-big", b"v" * 100_000)]
        with pytest.raises(TransportError) as err:
            await asyncio.wait_for(client.check_tail(BASIN, "s"), 5)
        assert err.value.retryable
        server.headers_extra = []
        assert (await client.check_tail(BASIN, "s")).seq_num == 10


def test_runs_on_uvloop() -> None:
    """The sidecar runs on uvloop, whose transports do not subclass asyncio.Transport."""
    import uvloop  # a dependency of the sidecar (not on Windows, where it does not run)

    async def main() -> list[int]:
        async with emulated() as emu, h2_client(emu) as client:
            await emu.append("s", 300)
            assert (await client.check_tail(BASIN, "s")).seq_num == 300
            return await collect(client, "s", 0, 300)

    assert uvloop.run(main()) == list(range(300))
