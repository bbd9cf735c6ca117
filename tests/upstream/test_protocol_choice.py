"""--upstream-protocol: TLS with ALPN (a trustme CA), `auto`, CA files, spans and metrics.

HTTP/2 runs against the emulator (with TLS from the trustme CA), except where the test reads the
request headers the server got: the test server (tests/upstream/h2server.py) records them."""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import trustme
from aiohttp import web
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from sidecar import telemetry as tm
from sidecar.errors import TransportError
from sidecar.metrics import Metrics
from sidecar.types import ReadLimit, ReadQuery, SeqNum
from sidecar.upstream import BasinEndpoint, UpstreamClient, UpstreamProtocol, UpstreamSettings
from sidecar.upstream.http1 import Http1Transport
from tests.upstream.h2server import H2TestServer  # records request headers, which the emulator does not
from tests.upstream.test_http2 import BASIN, Emulated, collect, emulated


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


def server_tls(ca: trustme.CA, alpn: list[str] | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


@contextlib.asynccontextmanager
async def emulated_tls(ca: trustme.CA, directory: Path) -> AsyncIterator[Emulated]:
    """The emulator serving TLS (ALPN `h2` and `http/1.1`) with a certificate from `ca`."""
    cert = ca.issue_cert("127.0.0.1")
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    client_ssl = ssl.create_default_context()
    ca.configure_trust(client_ssl)
    async with emulated(client_ssl, tls_cert=cert_file, tls_key=key_file) as emu:
        yield emu


@pytest.fixture
def spans() -> Iterator[tuple[tm.Telemetry, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield tm.Telemetry.from_provider(provider), exporter
    provider.shutdown()


async def test_auto_negotiates_h2_by_alpn_with_a_ca_file(
    ca: trustme.CA, ca_file: str, spans: tuple[tm.Telemetry, InMemorySpanExporter], tmp_path: Path
) -> None:
    telemetry, exporter = spans
    async with (
        emulated_tls(ca, tmp_path) as emu,
        UpstreamClient(UpstreamSettings(BasinEndpoint.parse(emu.url), ca_file=ca_file), telemetry=telemetry) as client,
    ):
        await emu.append("s", 100)
        assert (await client.check_tail(BASIN, "s")).seq_num == 100
        assert await collect(client, "s", 0, 100) == list(range(100))
        stats = client.pool_stats()
        assert stats["connections_h2"] == 1 and stats["connections_h1"] == 0
    versions = {s.attributes.get(tm.NETWORK_PROTOCOL_VERSION) for s in exporter.get_finished_spans() if s.attributes}
    assert versions == {"2"}


async def test_http2_honours_ssl_cert_file(
    ca: trustme.CA, ca_file: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", ca_file)
    async with (
        emulated_tls(ca, tmp_path) as emu,
        UpstreamClient(UpstreamSettings(BasinEndpoint.parse(emu.url), protocol=UpstreamProtocol.HTTP2)) as client,
    ):
        await emu.append("s", 10)
        assert (await client.check_tail(BASIN, "s")).seq_num == 10


async def test_untrusted_certificate_is_a_transport_error(ca: trustme.CA, tmp_path: Path) -> None:
    async with (
        emulated_tls(ca, tmp_path) as emu,
        UpstreamClient(UpstreamSettings(BasinEndpoint.parse(emu.url), protocol=UpstreamProtocol.HTTP2)) as client,
    ):
        with pytest.raises(TransportError, match="certificate not trusted") as err:
            await client.check_tail(BASIN, "s")
        assert "S2_SIDECAR_UPSTREAM_CA_FILE" in str(err.value)  # says what to set for a private CA


async def test_auto_speaks_http1_when_alpn_does_not_offer_h2(
    ca: trustme.CA, ca_file: str, spans: tuple[tm.Telemetry, InMemorySpanExporter]
) -> None:
    telemetry, exporter = spans

    async def tail(_request: web.Request) -> web.Response:
        return web.json_response({"tail": {"seq_num": 7, "timestamp": 0}})

    app = web.Application()
    app.router.add_get("/v1/streams/{stream}/records/tail", tail)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_tls(ca, ["http/1.1"]))
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with UpstreamClient(
            UpstreamSettings(BasinEndpoint.parse(f"https://127.0.0.1:{port}"), ca_file=ca_file), telemetry=telemetry
        ) as client:
            assert (await client.check_tail(BASIN, "s")).seq_num == 7
            assert (await client.check_tail(BASIN, "s")).seq_num == 7
            stats = client.pool_stats()
            assert stats["connections_h1"] == 1 and stats["connections_h2"] == 0
    finally:
        await runner.cleanup()
    versions = {s.attributes.get(tm.NETWORK_PROTOCOL_VERSION) for s in exporter.get_finished_spans() if s.attributes}
    assert versions == {"1.1"}


def test_auto_on_http_is_http1() -> None:
    client = UpstreamClient(UpstreamSettings(BasinEndpoint.parse("http://127.0.0.1:1")))
    assert isinstance(client.transport, Http1Transport)


async def test_metrics_show_connections_per_protocol_and_streams_per_connection() -> None:
    metrics = Metrics()
    async with (
        emulated() as emu,
        UpstreamClient(
            UpstreamSettings(BasinEndpoint.parse(emu.url), protocol=UpstreamProtocol.HTTP2), metrics=metrics
        ) as client,
    ):
        await emu.append("s", 10)
        # `wait`: each session stays open at the tail after its first batch
        query = ReadQuery(start=SeqNum(0), limit=ReadLimit(count=100), wait=30)
        gens = [client.read_session(BASIN, "s", query) for _ in range(5)]
        for g in gens:
            await g.__anext__()
        text = metrics.render()
        assert 's2_sidecar_upstream_connections{protocol="2"} 1' in text
        assert 's2_sidecar_upstream_streams_per_connection{protocol="2"} 5' in text
        for g in gens:
            await g.aclose()


async def test_http2_against_an_http1_only_server_says_so() -> None:
    app = web.Application()
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with UpstreamClient(
            UpstreamSettings(BasinEndpoint.parse(f"http://127.0.0.1:{port}"), protocol=UpstreamProtocol.HTTP2)
        ) as client:
            with pytest.raises(TransportError, match=r"answered HTTP/1\.1") as err:
                await client.check_tail(BASIN, "s")
            assert err.value.retryable
    finally:
        await runner.cleanup()


async def test_headers_and_trace_context_go_upstream_over_h2(spans: tuple[tm.Telemetry, InMemorySpanExporter]) -> None:
    telemetry, exporter = spans
    async with (
        H2TestServer(records=10) as server,
        UpstreamClient(
            UpstreamSettings(BasinEndpoint.parse(server.url), protocol=UpstreamProtocol.HTTP2, access_token="tok"),
            telemetry=telemetry,
        ) as client,
    ):
        await client.check_tail(BASIN, "s")
    (hdrs,) = server.request_headers
    (span,) = exporter.get_finished_spans()
    assert span.context is not None
    assert hdrs["traceparent"].split("-")[1] == format(span.context.trace_id, "032x")
    assert hdrs["authorization"] == "Bearer tok"
    assert hdrs["s2-basin"] == BASIN
    assert hdrs[":authority"] == f"127.0.0.1:{server.port}"
    assert hdrs[":path"] == "/v1/streams/s/records/tail"
