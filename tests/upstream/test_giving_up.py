"""How a unary call gives up on an upstream that keeps failing, through a real sidecar: against
a port where nothing listens (transient: retried within the attempts and the time budget, then
one WARNING and a status marked as already retried), and against a host name that does not exist
(not transient: failed at once, FAILED_PRECONDITION naming the host). Attempts are counted from
the log lines, never timed. The Python client's side: tests/clients/test_python_retry_budget.py."""

from __future__ import annotations

import dataclasses
import logging

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from sidecar._proto.s2sidecar.v1 import stream_pb2 as pb
from sidecar.testing import SidecarHarness, SidecarProcess, free_port
from sidecar.upstream.retry import UNARY_RETRY_BUDGET, RetryPolicy
from tests.api.helpers import error_info, trailing
from tests.telemetry.test_admin import get, sample

READER = "sidecar.reads.reader"
UNRESOLVABLE = "nonexistent.invalid"  # .invalid never resolves (RFC 6761)


def _lines(caplog: pytest.LogCaptureFixture, level: int, needle: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == level and needle in r.getMessage()]


def _has_retry_info(err: grpc.aio.AioRpcError) -> bool:
    raw = trailing(err)["grpc-status-details-bin"]
    assert isinstance(raw, bytes)
    return any(d.Is(error_details_pb2.RetryInfo.DESCRIPTOR) for d in status_pb2.Status.FromString(raw).details)


@pytest.mark.parametrize("protocol", ["http1", "http2"])
async def test_an_unreachable_port_is_retried_then_given_up_once_at_warning(
    caplog: pytest.LogCaptureFixture, protocol: str
) -> None:
    caplog.set_level(logging.DEBUG, logger=READER)
    port = free_port()  # nothing listens there
    async with SidecarHarness(
        basin_endpoint=f"http://127.0.0.1:{port}/v1", upstream_protocol=protocol, retry_attempts=4,
        retry_base_delay=0.01,
    ) as h:  # fmt: skip
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await h.stub.CheckTail(pb.CheckTailRequest(stream="s"), timeout=30)  # no cache: max_staleness_ms 0
    err = info.value
    assert err.code() == grpc.StatusCode.UNAVAILABLE
    assert "connection refused" in (err.details() or "") and "(tried 5 times over " in (err.details() or "")
    # Marked as retried, so that clients do not retry it again; RetryInfo stays, for apps retrying later.
    assert error_info(err).metadata["attempts"] == "5"
    assert error_info(err).reason == "upstream_unreachable"
    assert _has_retry_info(err)
    # One line per retry: the first at INFO, the rest at DEBUG; the give-up once, at WARNING.
    assert len(_lines(caplog, logging.INFO, "; retry 1 in")) == 1
    assert len(_lines(caplog, logging.DEBUG, "; retry ")) == 3
    gave_up = _lines(caplog, logging.WARNING, "giving up")
    assert len(gave_up) == 1, gave_up
    assert gave_up[0].startswith(f"check tail {h.basin}/s: giving up after 5 attempts over ")
    assert "connection refused" in gave_up[0]
    assert not [r for r in caplog.records if r.name == READER and r.levelno > logging.WARNING]


async def test_a_call_without_a_deadline_stops_retrying_within_the_time_budget(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Attempts enough for minutes, a budget of 1 s: the budget ends the retrying (the count shows it)."""
    caplog.set_level(logging.DEBUG, logger=READER)
    port = free_port()
    async with SidecarHarness(
        basin_endpoint=f"http://127.0.0.1:{port}/v1", retry_attempts=10_000, retry_base_delay=0.05
    ) as h:
        assert h.sidecar is not None and h.sidecar.reader is not None
        h.sidecar.reader.policy = dataclasses.replace(h.sidecar.reader.policy, max_total=1.0)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await h.stub.Read(pb.ReadRequest(stream="s", seq_num=0))  # no deadline
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    attempts = int(error_info(info.value).metadata["attempts"])
    # Delays of 0.05 s to 2 s (doubling, jittered): 1 s of them is at least 2 and at most 20 attempts.
    assert 2 <= attempts <= 20, attempts
    gave_up = _lines(caplog, logging.WARNING, "giving up")
    assert len(gave_up) == 1 and f"after {attempts} attempts" in gave_up[0] and "within 1s" in gave_up[0]


def test_the_default_budget_bounds_a_call_without_a_deadline() -> None:
    assert RetryPolicy().max_total == UNARY_RETRY_BUDGET == 15.0
    assert RetryPolicy().within_budget(14.0, 1.0) and not RetryPolicy().within_budget(14.0, 1.01)


@pytest.mark.parametrize("protocol", ["http1", "http2"])
async def test_a_host_that_does_not_exist_fails_at_once_naming_it(
    caplog: pytest.LogCaptureFixture, protocol: str
) -> None:
    caplog.set_level(logging.DEBUG, logger=READER)
    async with SidecarHarness(
        basin_endpoint=f"http://{UNRESOLVABLE}:8080/v1", upstream_protocol=protocol, retry_attempts=10,
        admin_listen="127.0.0.1:0",
    ) as h:  # fmt: skip
        for call in (
            h.stub.CheckTail(pb.CheckTailRequest(stream="s"), timeout=30),
            h.stub.Read(pb.ReadRequest(stream="s", seq_num=0), timeout=30),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await call
            err = info.value
            assert err.code() == grpc.StatusCode.FAILED_PRECONDITION, err
            assert f"cannot resolve {UNRESOLVABLE}: no such host (" in (err.details() or "")
            assert error_info(err).reason == "upstream_host_not_found"
            assert not _has_retry_info(err)
        assert h.sidecar is not None and h.sidecar.admin is not None
        _, text = await get(f"{h.sidecar.admin.url}/metrics")
        # One request each, no retry; the upstream is down (no connection could be made).
        for kind in ("tail", "read"):
            assert sample(text, "s2_sidecar_upstream_requests_total", kind=kind, status="host_not_found") == 1
        assert "s2_sidecar_upstream_retries_total{" not in text
        assert sample(text, "s2_sidecar_upstream_up") == 0
    assert not _lines(caplog, logging.INFO, "; retry") and not _lines(caplog, logging.DEBUG, "; retry")
    assert not _lines(caplog, logging.WARNING, "giving up")  # nothing was retried, nothing given up


async def test_a_session_to_a_host_that_does_not_exist_fails_at_once() -> None:
    async with SidecarHarness(basin_endpoint=f"http://{UNRESOLVABLE}:8080/v1", retry_attempts=10) as h:
        call = h.stub.ReadSession(pb.ReadSessionRequest(stream="s", seq_num=0), timeout=30)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            async for _ in call:
                pass
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert UNRESOLVABLE in (info.value.details() or "")


def _warnings(output: str, needle: str) -> list[str]:
    return [line for line in output.splitlines() if "WARNING" in line and needle in line]


async def test_an_https_endpoint_without_a_token_is_warned_about_once_at_start() -> None:
    port = free_port()
    no_token = {"S2_ACCESS_TOKEN": ""}
    async with SidecarProcess("--basin-endpoint", f"https://127.0.0.1:{port}/v1", env=no_token) as sc:
        pass
    assert len(_warnings(sc.output, "S2_ACCESS_TOKEN is not set")) == 1, sc.output
    async with SidecarProcess("--basin-endpoint", f"https://127.0.0.1:{port}/v1", env={"S2_ACCESS_TOKEN": "t"}) as sc:
        pass
    assert not _warnings(sc.output, "S2_ACCESS_TOKEN"), sc.output
    async with SidecarProcess("--basin-endpoint", f"http://127.0.0.1:{port}/v1", env=no_token) as sc:
        pass  # the emulator, s2-lite: no token needed
    assert not _warnings(sc.output, "S2_ACCESS_TOKEN"), sc.output
