"""`auto` against the embedded emulator on TLS negotiates HTTP/2 by ALPN (a trustme test CA):
the sidecar's Read and ReadSession go upstream over h2, end to end through gRPC."""

from __future__ import annotations

from pathlib import Path

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from sidecar import telemetry as tm
from sidecar._proto.s2sidecar.v1 import stream_pb2 as pb
from sidecar.emulator import EmulatorConfig
from sidecar.testing import SidecarHarness
from sidecar.upstream import UpstreamProtocol
from tests.api.helpers import collect
from tests.emulator.helpers import make_tls


async def test_auto_against_the_tls_emulator_negotiates_h2_by_alpn(tmp_path: Path) -> None:
    tls = make_tls(tmp_path)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    emulator = EmulatorConfig(port=0, heartbeat_min=1.0, heartbeat_max=2.0, tls_cert=tls.cert, tls_key=tls.key)
    async with SidecarHarness(
        emulator=emulator,
        tracer_provider=provider,
        upstream_ca_file=str(tls.ca),
        upstream_protocol=UpstreamProtocol.AUTO,  # explicitly: not S2_SIDECAR_TEST_UPSTREAM_PROTOCOL
    ) as h:
        assert h.emulator.url.startswith("https://")
        assert h.sidecar is not None and h.sidecar.config.basin_endpoint.startswith("https://")
        await h.append_many("tls", 50)
        resp = await h.stub.Read(pb.ReadRequest(stream="tls", seq_num=0, count=10))
        assert [r.seq_num for r in resp.records] == list(range(10))
        records, _ = await collect(h.stub.ReadSession(pb.ReadSessionRequest(stream="tls", seq_num=0, count=50)))
        assert [r.seq_num for r in records] == list(range(50))
        assert h.sidecar.client is not None
        stats = h.sidecar.client.pool_stats()
        assert stats.get("connections_h2", 0) >= 1 and stats.get("connections_h1", 0) == 0, stats
    client_spans = [s for s in exporter.get_finished_spans() if s.kind == SpanKind.CLIENT]
    assert len(client_spans) >= 2  # the Read and the session
    versions = {(s.attributes or {}).get(tm.NETWORK_PROTOCOL_VERSION) for s in client_spans}
    assert versions == {"2"}, versions
    provider.shutdown()
