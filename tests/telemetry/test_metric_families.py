"""The contract of the sidecar's /metrics that dashboards and alerts depend on: every metric
family's name, type, HELP and label names, and the exposition content type, scraped from a
running sidecar after traffic that gives every labelled family a sample. The table is written
out here on purpose: a change to it is a change to what users see."""

from __future__ import annotations

import aiohttp
import grpc
import pytest

from sidecar._proto.s2sidecar.v1 import stream_pb2 as pb
from sidecar.testing import SidecarHarness
from tests.telemetry.exposition import FamilyTable, check

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

SIDECAR_FAMILIES: FamilyTable = {
    "s2_sidecar_rpcs_total": ("counter", ("method", "code")),
    "s2_sidecar_rpc_duration_seconds": ("histogram", ("method",)),
    "s2_sidecar_upstream_requests_total": ("counter", ("kind", "status")),
    "s2_sidecar_upstream_request_duration_seconds": ("histogram", ("kind",)),
    "s2_sidecar_upstream_retries_total": ("counter", ("kind", "reason")),
    "s2_sidecar_session_reconnects_total": ("counter", ("reason",)),
    "s2_sidecar_trimmed_records_skipped_total": ("counter", ()),
    "s2_sidecar_advised_reconnects_total": ("counter", ()),
    "s2_sidecar_sessions_open": ("gauge", ()),
    "s2_sidecar_shared_session_subscribers": ("gauge", ()),
    "s2_sidecar_tail_cache_requests_total": ("counter", ("result",)),
    "s2_sidecar_history_cache_records_total": ("counter", ("result",)),
    "s2_sidecar_history_cache_bytes_total": ("counter", ("result",)),
    "s2_sidecar_history_upstream_read_bytes_total": ("counter", ()),
    "s2_sidecar_history_cache_bytes": ("gauge", ()),
    "s2_sidecar_history_cache_evictions_total": ("counter", ()),
    "s2_sidecar_history_cache_basins": ("gauge", ("mode",)),
    "s2_sidecar_history_cache_confirmations_total": ("counter", ("result",)),
    "s2_sidecar_upstream_connections_in_use": ("gauge", ("pool",)),
    "s2_sidecar_upstream_connections_limit": ("gauge", ("pool",)),
    "s2_sidecar_upstream_connections": ("gauge", ("protocol",)),
    "s2_sidecar_upstream_streams_per_connection": ("gauge", ("protocol",)),
    "s2_sidecar_records_sent_total": ("counter", ("method",)),
    "s2_sidecar_bytes_sent_total": ("counter", ("method",)),
    "s2_sidecar_upstream_up": ("gauge", ()),
    "s2_sidecar_session_lag_records": ("histogram", ()),
    "s2_sidecar_info": ("gauge", ("version",)),
    # What every Prometheus client library exports (Linux /proc, CPython's collector).
    "process_virtual_memory_bytes": ("gauge", ()),
    "process_resident_memory_bytes": ("gauge", ()),
    "process_start_time_seconds": ("gauge", ()),
    "process_cpu_seconds_total": ("counter", ()),
    "process_open_fds": ("gauge", ()),
    "process_max_fds": ("gauge", ()),
    "python_gc_objects_collected_total": ("counter", ("generation",)),
    "python_gc_objects_uncollectable_total": ("counter", ("generation",)),
    "python_gc_collections_total": ("counter", ("generation",)),
    "python_info": ("gauge", ("implementation", "major", "minor", "patchlevel", "version")),
}


async def test_sidecar_metric_families() -> None:
    async with SidecarHarness(admin_listen="127.0.0.1:0", retry_base_delay=0.01) as h:
        assert h.sidecar is not None and h.sidecar.admin is not None
        await h.append_many("m", 300, size=100)
        for _ in range(2):  # the second is answered by the history cache
            await h.stub.Read(pb.ReadRequest(stream="m", seq_num=0, count=10))
        with pytest.raises(grpc.aio.AioRpcError):
            await h.stub.Read(pb.ReadRequest(stream="nope", seq_num=0))
        await h.stub.CheckTail(pb.CheckTailRequest(stream="m", max_staleness_ms=0))
        await h.inject_fault(kind="read", stream="m", fail=1, status=503, code="unavailable")
        await h.stub.Read(pb.ReadRequest(stream="m", seq_num=100))  # a retry
        await h.inject_fault(kind="session", stream="m", cut_after_bytes=3000)
        async for _ in h.stub.ReadSession(pb.ReadSessionRequest(stream="m", seq_num=0, count=300)):
            pass  # a reconnect, and the session's lag
        async with aiohttp.ClientSession() as http, http.get(f"{h.sidecar.admin.url}/metrics") as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"] == CONTENT_TYPE
            text = await resp.text()
    check(text, SIDECAR_FAMILIES)
